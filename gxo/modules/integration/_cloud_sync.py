"""What the GCP and Azure modules share: the local file walk and the plan of the ``*_sync``
modules (upload / delete / unchanged by size and MD5), google-auth credentials for the
``gcp:*`` modules, and one-line messages for the client libraries' errors.

The services are spoken to through their official client libraries (google-cloud-*,
azure-*), imported lazily inside the functions that need them: importing this file costs
none of them. The leading underscore keeps the registry from importing it as a module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

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


async def load_libraries(ctx: Any, package: str, *names: str) -> None:
    """Import client libraries in a worker thread: some take seconds (google-cloud-compute
    loads ~70 MB of generated code), and an import on the event loop would block it. A
    missing library (an install without the dependencies) is a clear error."""
    import importlib

    def load() -> None:
        for name in names:
            importlib.import_module(name)

    try:
        await ctx.to_thread(load)
    except ImportError as exc:
        raise ctx.fail(f"{exc.name or package} is not installed (pip install {package})") from None


GOOGLE_AUTH = (
    "requests",
    "google.auth",
    "google.auth.exceptions",
    "google.auth.credentials",
    "google.auth.transport.requests",
    "google.oauth2.credentials",
    "google.oauth2.service_account",
    "google.api_core.exceptions",
)


# -- GCP credentials ------------------------------------------------------------------------


class GcpAuthParams(ModuleParams):
    token: str | None = Field(
        None,
        description="OAuth2 access token (default: $GOOGLE_OAUTH_ACCESS_TOKEN, else credentials_file)",
    )
    credentials_file: str | None = Field(
        None,
        description=(
            "Credentials JSON (service-account key, authorized user ...; default: "
            "$GOOGLE_APPLICATION_CREDENTIALS, else Application Default Credentials)"
        ),
    )
    anonymous: bool = Field(
        False, description="Send no credentials (an emulator, e.g. for Cloud Storage)"
    )

    @model_validator(mode="after")
    def _anonymous_alone(self) -> GcpAuthParams:
        if self.anonymous and (self.token is not None or self.credentials_file is not None):
            raise ValueError("anonymous sends no credentials: give no token or credentials_file")
        return self


SCOPE = "https://www.googleapis.com/auth/cloud-platform"
# Fields of a credentials file that are secrets (registered before anything can echo them).
_SECRET_FIELDS = ("private_key", "client_secret", "refresh_token", "access_token")


# The credential types a credentials_file may hold (validated, as google-auth asks of
# configurations from outside: no external-account executables run on a file's say-so).
FILE_TYPES = ("service_account", "authorized_user")


def _from_info(info: dict[str, Any]) -> Any:
    if info.get("type") == "service_account":
        from google.oauth2 import service_account

        return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    import google.oauth2.credentials

    return google.oauth2.credentials.Credentials.from_authorized_user_info(info, scopes=[SCOPE])


def _default() -> Any:
    import google.auth

    credentials, _project = google.auth.default(scopes=[SCOPE])
    return credentials


def _refresh(credentials: Any, timeout: float) -> None:
    import google.auth.transport.requests

    request = google.auth.transport.requests.Request()
    credentials.refresh(lambda *a, **kw: request(*a, **{"timeout": timeout, **kw}))


async def gcp_credentials(ctx: Any, params: GcpAuthParams, refresh_timeout: float = 30.0) -> Any:
    """google-auth credentials, refreshed (a refused key fails here, with the token
    endpoint's reason): ``anonymous``; ``token`` / $GOOGLE_OAUTH_ACCESS_TOKEN;
    ``credentials_file`` / $GOOGLE_APPLICATION_CREDENTIALS; else Application Default
    Credentials (gcloud's, or the metadata server's on Google Cloud). Every token, key
    and client secret met is registered as a secret of the run."""
    await load_libraries(ctx, "google-auth", *GOOGLE_AUTH)
    from google.auth import exceptions

    if params.anonymous:
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()
    token = params.token or os.environ.get("GOOGLE_OAUTH_ACCESS_TOKEN")
    if token:
        ctx.run.secrets.add(token)
        return _bare_token(token)
    source = params.credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if source:
        path = ctx.resolve_path(source, param="credentials_file")
        try:
            info = json.loads(await ctx.to_thread(path.read_text, encoding="utf-8"))
        except OSError as exc:
            raise ctx.fail(f"cannot read credentials_file {path}: {exc.strerror or exc}") from None
        except ValueError:
            raise ctx.fail(f"credentials_file {path} is not JSON") from None
        if not isinstance(info, dict) or info.get("type") not in FILE_TYPES:
            kind = info.get("type") if isinstance(info, dict) else None
            raise ctx.fail(
                f"credentials_file {path}: type {kind!r} is not one of {', '.join(FILE_TYPES)}"
            )
        for name in _SECRET_FIELDS:
            if isinstance(info.get(name), str) and info[name]:
                ctx.run.secrets.add(info[name])
        try:
            credentials = await ctx.to_thread(_from_info, info)
        except (exceptions.GoogleAuthError, ValueError, TypeError, KeyError) as exc:
            reason = ctx.redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise ctx.fail(f"cannot load credentials_file {path}: {reason}") from None
    else:
        try:
            credentials = await ctx.to_thread(_default)
        except exceptions.DefaultCredentialsError:
            raise ctx.fail(
                "no GCP credentials: set token (or GOOGLE_OAUTH_ACCESS_TOKEN), or "
                "credentials_file (or GOOGLE_APPLICATION_CREDENTIALS), or configure "
                "Application Default Credentials (gcloud auth application-default login)"
            ) from None
    if not credentials.valid:
        try:
            await ctx.to_thread(_refresh, credentials, refresh_timeout)
        except exceptions.GoogleAuthError as exc:
            raise ctx.fail(f"GCP credentials refused: {ctx.redact(_auth_reason(exc))}") from None
    if credentials.token:
        ctx.run.secrets.add(credentials.token)
    return credentials


def _bare_token(token: str) -> Any:
    """Credentials of a bare access token. The client libraries ask for a refresh when
    the service answers 401; a bare token has none: say so (not google-auth's list of
    the fields a refresh would need)."""
    import google.oauth2.credentials
    from google.auth import exceptions

    class BareToken(google.oauth2.credentials.Credentials):  # type: ignore[misc]
        def refresh(self, request: Any) -> None:
            raise exceptions.RefreshError(
                "HTTP 401: the access token was refused (a bare token cannot be renewed)"
            )

    return BareToken(token)


def _auth_reason(exc: BaseException) -> str:
    # RefreshError(message, response-body): the message names the server's error.
    first = exc.args[0] if exc.args else ""
    return str(first or type(exc).__name__).splitlines()[0]


def gcp_error(what: str, exc: BaseException) -> str:
    """A one-line message for an error raised by a google-cloud client library call."""
    from google.api_core import exceptions

    if isinstance(exc, exceptions.RetryError) and exc.cause is not None:
        return gcp_error(what, exc.cause) + " (retried until the timeout)"
    if isinstance(exc, exceptions.GoogleAPICallError):
        code = exc.code if isinstance(exc.code, int) else getattr(exc.code, "value", exc.code)
        import re

        message = str(exc.message or "").splitlines()[0] if exc.message else ""
        # REST transports prefix the request ("GET http://...: "): the caller names it.
        message = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", message)
        if isinstance(code, int) and code >= 100:
            return f"{what}: HTTP {code}" + (f": {message}" if message else "")
        return f"{what}: {type(exc).__name__}" + (f": {message}" if message else "")
    return f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(
        ": "
    )


def gcp_retry(timeout: float) -> Any:
    """google-cloud-storage's default retry (transient errors, backing off), bounded by
    ``timeout`` seconds in all instead of its 120."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    bounded = getattr(DEFAULT_RETRY, "with_timeout", None) or DEFAULT_RETRY.with_deadline
    return bounded(timeout)


def gcp_call_errors() -> tuple[type[BaseException], ...]:
    """What a google-cloud call raises on a refused request, a lost connection or a
    refused credential refresh (``requests`` transport)."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    return (api.GoogleAPIError, auth.GoogleAuthError, requests.RequestException)


# -- Azure ----------------------------------------------------------------------------------


def azure_error(what: str, exc: BaseException) -> str:
    """A one-line message for an error raised by an azure-* client library call:
    ``HTTP status: ErrorCode first line of the message``."""
    from azure.core.exceptions import HttpResponseError

    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        error = getattr(exc, "error", None)  # an ODataV4Format: ARM's {"error": {...}}
        code = getattr(exc, "error_code", None) or (error.code if error is not None else None)
        code = getattr(code, "value", code)  # azure-storage's StorageErrorCode enum
        message = error.message if error is not None and error.message else exc.message
        line = str(message or exc.reason or "").strip().splitlines()
        text = " ".join(x for x in (str(code) if code else "", line[0] if line else "") if x)
        # A long-running operation that failed is reported on a 200 of its status URL.
        head = f"{what}: HTTP {status}" if status and status >= 400 else what
        return head + (f": {text}" if text else "")
    line = str(exc).strip().splitlines()
    return f"{what}: {type(exc).__name__}" + (f": {line[0]}" if line else "")


class StaticToken:
    """A fixed OAuth2 bearer token as an azure-core async TokenCredential (the
    `token` param of the azure:* modules)."""

    def __init__(self, token: str) -> None:
        self.token = token

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        import time

        from azure.core.credentials import AccessToken

        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> StaticToken:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass
