"""S3 client plumbing shared by ``object_storage:*`` and ``artifact:*`` (boto3, imported lazily).

The leading underscore keeps the registry from importing this file as a module.
Every boto3 call is blocking: callers run them with ``ctx.to_thread``.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from pydantic import Field

from gxo.modules.base import ModuleParams

__all__ = [
    "SHA256_META",
    "S3Params",
    "bucket_field",
    "describe_error",
    "error_code",
    "file_digests",
    "make_client",
]

# User metadata key holding the SHA-256 of an object GXO uploaded (x-amz-meta-gxo-sha256).
SHA256_META = "gxo-sha256"
CHUNK = 1024 * 1024
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


def bucket_field(description: str = "Bucket name") -> Any:
    """The ``bucket`` param: S3's naming rules (3-63 lowercase letters, digits, dots, hyphens)."""
    return Field(..., pattern=BUCKET_PATTERN, description=description)


class S3Params(ModuleParams):
    """Connection params common to every S3 module."""

    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint, e.g. http://127.0.0.1:9000 (MinIO); omit for AWS",
    )
    region: str | None = Field(
        None, description="Region (default: the AWS chain's, else us-east-1)"
    )
    access_key: str | None = Field(
        None,
        description="Access key id; omit both keys to use the AWS chain (environment, profile, role)",
    )
    secret_key: str | None = Field(
        None, description="Secret access key, e.g. \"{{ secret('S3_SECRET') }}\""
    )
    session_token: str | None = Field(None, description="Session token of temporary credentials")
    path_style: bool | None = Field(
        None,
        description="Path-style addressing (bucket in the path); default: on when endpoint_url is set",
    )


def check_credentials(params: S3Params) -> str | None:
    """An error message when only one of access_key / secret_key is given."""
    if (params.access_key is None) != (params.secret_key is None):
        return "give both access_key and secret_key, or neither (to use the AWS credential chain)"
    return None


_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def make_client(params: S3Params) -> Any:
    """A boto3 S3 client for ``params`` (blocking; the caller closes it).

    With explicit keys, clients come from one shared boto3 session (its loaded
    service models make a client ~30x cheaper to create); without them a fresh
    session resolves the AWS chain, so changed environment or profile files count.
    """
    import boto3.session
    from botocore.config import Config

    global _SESSION
    path_style = params.path_style if params.path_style is not None else bool(params.endpoint_url)
    with _SESSION_LOCK:  # sessions are not thread-safe
        if params.access_key is not None:
            if _SESSION is None:
                _SESSION = boto3.session.Session()
            session = _SESSION
        else:
            session = boto3.session.Session(region_name=params.region)
        region = params.region or session.region_name or "us-east-1"
        config = Config(
            region_name=region,
            connect_timeout=10,
            read_timeout=60,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path" if path_style else "auto"},
        )
        return session.client(
            "s3",
            endpoint_url=params.endpoint_url,
            region_name=region,
            aws_access_key_id=params.access_key,
            aws_secret_access_key=params.secret_key,
            aws_session_token=params.session_token,
            config=config,
        )


def error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError ('' for other errors)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


_HINTS = {
    "NoSuchBucket": "the bucket does not exist",
    "404": "not found",
    "NoSuchKey": "the object does not exist",
    "403": "access denied (check the credentials)",
    "AccessDenied": "access denied (check the credentials)",
    "InvalidAccessKeyId": "the access key is not known to the server",
    "SignatureDoesNotMatch": "the secret key is wrong",
    "BucketNotEmpty": "the bucket is not empty (force: true deletes its objects first)",
    "InvalidBucketName": "invalid bucket name (3-63 lowercase letters, digits, dots, hyphens)",
}


def describe_error(exc: BaseException, what: str) -> str:
    """A one-line message for a boto3/botocore error while doing ``what``."""
    code = error_code(exc)
    if code:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "") or "")
        hint = _HINTS.get(code)
        detail = hint if hint else message or code
        if hint and message and message.lower() not in hint:
            detail = f"{hint}: {message}"
        return f"{what}: {detail} ({code})"
    name = type(exc).__name__
    if name == "NoCredentialsError":
        return f"{what}: no credentials: set access_key/secret_key or configure the AWS chain"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return f"{what}: cannot reach the endpoint: {exc}"
    return f"{what}: {exc}"


def file_digests(path: Any) -> tuple[str, str, int]:
    """``(md5 hex, sha256 hex, size)`` of a file, read in chunks."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            size += len(chunk)
    return md5.hexdigest(), sha.hexdigest(), size


def bytes_digests(data: bytes) -> tuple[str, str, int]:
    return (
        hashlib.md5(data, usedforsecurity=False).hexdigest(),
        hashlib.sha256(data).hexdigest(),
        len(data),
    )


def remote_matches(head: dict[str, Any] | None, md5_hex: str, sha_hex: str, size: int) -> bool:
    """Whether a HEAD answer describes an object with this content."""
    if head is None or int(head.get("ContentLength", -1)) != size:
        return False
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    if SHA256_META in meta:
        return bool(meta[SHA256_META] == sha_hex)
    etag = str(head.get("ETag", "")).strip('"')
    return etag == md5_hex


def head_object(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """HEAD an object; None when it does not exist (other errors propagate)."""
    try:
        return dict(client.head_object(Bucket=bucket, Key=key))
    except Exception as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _url_password(url: str | None) -> str | None:
    """The password of an endpoint URL with credentials (``https://u:pw@host``)."""
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


async def open_client(ctx: Any, params: S3Params) -> Any:
    """Check the connection params, register the secret key for redaction, build a client."""
    problem = check_credentials(params)
    if problem:
        raise ctx.fail(problem)
    for value in (params.secret_key, params.session_token, _url_password(params.endpoint_url)):
        if value:
            ctx.run.secrets.add(value)
    try:
        return await ctx.to_thread(make_client, params)
    except Exception as exc:  # bad region name, unparsable endpoint ...
        raise ctx.fail(describe_error(exc, "cannot create the S3 client")) from None


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"
