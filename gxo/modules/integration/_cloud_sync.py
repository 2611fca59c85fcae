"""What ``gcp:gcs_sync`` and ``azure:blob_sync`` share: the local file walk, the plan
(upload / delete / unchanged by size and MD5), and OAuth2 service-account tokens for GCP.

The services are spoken to over their REST APIs with httpx (no SDK). The leading
underscore keeps the registry from importing this file as a module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from gxo.config.durations import Duration
from gxo.modules.base import ModuleParams

MAX_LISTED = 1000
CHUNK = 1024 * 1024


class SyncParams(ModuleParams):
    """The directory-to-prefix params of every ``*_sync`` module."""

    source: str = Field(..., min_length=1, description="Local directory to upload")
    prefix: str = Field("", description="Object name prefix (e.g. site/); empty for the root")
    delete: bool = Field(False, description="Delete objects under prefix with no local file")
    dry_run: bool = Field(False, description="Compute the changes, make none")
    exclude_hidden: bool = Field(False, description="Skip files and directories named .*")
    timeout: Duration = Field(60.0, description="Seconds per request")


def local_files(root: Path, exclude_hidden: bool) -> dict[str, Path]:
    """Relative POSIX path → file, symbolic links followed, sorted."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        if exclude_hidden:
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        dirnames.sort()
        for name in sorted(filenames):
            if exclude_hidden and name.startswith("."):
                continue
            path = Path(dirpath, name)
            if path.is_file():
                out[path.relative_to(root).as_posix()] = path
    return dict(sorted(out.items()))


def md5_b64(path: Path) -> tuple[str, int]:
    """Base64 MD5 (the form GCS and Azure report) and size of a file."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return base64.b64encode(digest.digest()).decode(), size


@dataclass
class Plan:
    upload: list[tuple[str, Path, str, int]] = field(default_factory=list)  # key, path, md5, size
    delete: list[str] = field(default_factory=list)
    unchanged: int = 0

    def summary(self, dry_run: bool, **extra: Any) -> dict[str, Any]:
        return {
            **extra,
            "uploaded": len(self.upload),
            "deleted": len(self.delete),
            "unchanged": self.unchanged,
            "uploaded_keys": [u[0] for u in self.upload][:MAX_LISTED],
            "deleted_keys": self.delete[:MAX_LISTED],
            "bytes_uploaded": sum(u[3] for u in self.upload),
            "dry_run": dry_run,
            "changed": bool(self.upload or self.delete),
        }


def make_plan(
    root: Path,
    prefix: str,
    remote: dict[str, tuple[int, str | None]],
    *,
    delete: bool,
    exclude_hidden: bool,
) -> Plan:
    """Compare the files under ``root`` with ``remote`` (key → (size, base64 MD5 or None))."""
    plan = Plan()
    local = local_files(root, exclude_hidden)
    for rel, path in local.items():
        key = prefix + rel
        md5, size = md5_b64(path)
        have = remote.get(key)
        if have is not None and have[0] == size and have[1] == md5:
            plan.unchanged += 1
        else:
            plan.upload.append((key, path, md5, size))
    if delete:
        wanted = {prefix + rel for rel in local}
        plan.delete = sorted(k for k in remote if k not in wanted)
    return plan


SYNC_SUMMARY = {
    "uploaded": "number of files uploaded (or to upload, with dry_run)",
    "deleted": "number of objects deleted (or to delete)",
    "unchanged": "number of files already in place (same size and MD5)",
    "uploaded_keys": "names uploaded (first 1000)",
    "deleted_keys": "names deleted (first 1000)",
    "bytes_uploaded": "bytes uploaded (or to upload)",
    "dry_run": "true when nothing was changed (dry_run or --check)",
    "changed": "true when anything was (or would be) uploaded or deleted",
}


# -- GCP credentials ------------------------------------------------------------------------


class GcpAuthParams(ModuleParams):
    token: str | None = Field(
        None,
        description="OAuth2 access token (default: $GOOGLE_OAUTH_ACCESS_TOKEN, else credentials_file)",
    )
    credentials_file: str | None = Field(
        None,
        description="Service-account JSON key (default: $GOOGLE_APPLICATION_CREDENTIALS)",
    )


SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def _jwt(info: dict[str, Any], now: float) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "JWT"}
    if info.get("private_key_id"):
        header["kid"] = info["private_key_id"]
    claims = {
        "iss": info["client_email"],
        "scope": SCOPE,
        "aud": info["token_uri"],
        "iat": int(now),
        "exp": int(now) + 3600,
    }
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr, call-arg, arg-type]
    return f"{signing_input}.{b64(signature)}"


async def gcp_token(ctx: Any, params: GcpAuthParams, http: Any) -> str:
    """An access token: given, from the environment, or exchanged for a signed JWT of a
    service-account key (its ``token_uri``). Every credential is registered as a secret."""
    token = params.token or os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN")
    if token:
        ctx.run.secrets.add(token)
        return token
    source = params.credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not source:
        raise ctx.fail(
            "no GCP credentials: set token (or GOOGLE_OAUTH_ACCESS_TOKEN), or credentials_file "
            "(or GOOGLE_APPLICATION_CREDENTIALS) to a service-account key"
        )
    path = ctx.resolve_path(source, param="credentials_file")
    try:
        info = json.loads(await ctx.to_thread(path.read_text, encoding="utf-8"))
    except OSError as exc:
        raise ctx.fail(f"cannot read credentials_file {path}: {exc.strerror or exc}") from None
    except ValueError:
        raise ctx.fail(f"credentials_file {path} is not JSON") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ctx.fail(f"credentials_file {path} is not a service-account key")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ctx.fail(f"credentials_file {path} lacks {', '.join(missing)}")
    ctx.run.secrets.add(info["private_key"])
    try:
        assertion = await ctx.to_thread(_jwt, info, time.time())
    except (ValueError, TypeError) as exc:
        raise ctx.fail(
            f"credentials_file {path}: cannot sign with its private_key: {exc}"
        ) from None
    import httpx

    try:
        answer = await http.post(
            info["token_uri"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
    except httpx.HTTPError as exc:
        raise ctx.fail(f"cannot reach the token endpoint {info['token_uri']}: {exc}") from None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code != 200 or not body.get("access_token"):
        detail = body.get("error_description") or body.get("error") or answer.text[:200]
        raise ctx.fail(
            f"service-account token exchange refused: HTTP {answer.status_code}: {detail}"
        )
    token = str(body["access_token"])
    ctx.run.secrets.add(token)
    return token


def api_error(what: str, answer: Any) -> str:
    """A one-line message for a refused request (GCP JSON errors, Azure XML errors)."""
    text = answer.text or ""
    detail = ""
    try:
        body = answer.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            detail = str(error.get("message") or error.get("status") or "")
        elif isinstance(error, str):
            detail = error
    except ValueError:
        import re

        code = re.search(r"<Code>([^<]*)</Code>", text)
        message = re.search(r"<Message>([^<\n]*)", text)
        detail = " ".join(x.group(1) for x in (code, message) if x)
    return f"{what}: HTTP {answer.status_code}" + (f": {detail}" if detail else "")
