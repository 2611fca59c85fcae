"""Secret providers behind ``secret()``: the environment, and references with a scheme.

``secret('NAME')``
    The environment variable NAME (as always).
``secret('file:///run/secrets/db')``
    The file's content, one trailing newline removed (Docker/Kubernetes secret files).
    ``file:///run/secrets/app.json#password``: the key of a JSON object in the file.
``secret('aws-sm://prod/db#password')``
    AWS Secrets Manager (boto3, the usual AWS credential chain): the SecretString of
    secret ``prod/db``; with ``#key`` that key of it parsed as JSON. ``?region=`` picks a
    region; ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` / ``AWS_ENDPOINT_URL`` an endpoint.
``secret('vault://secret/app/db#password')``
    HashiCorp Vault KV (the client of the ``vault:*`` modules): mount ``secret``, path
    ``app/db``, key ``password`` (default: the only key, else an error). KV v2 unless
    ``?kv_version=1``. ``VAULT_ADDR``, ``VAULT_TOKEN``, ``VAULT_NAMESPACE`` and
    ``VAULT_CACERT`` come from the environment.

Values are fetched once per run (:class:`RunProviders`, one per ``SecretRegistry``) and
cached, failures included. ``secret()`` is synchronous inside Jinja: a reference is
fetched in the calling thread, bounded by ``GXO_SECRET_TIMEOUT`` seconds (default 10).
Every literal ``secret('...')`` of a playbook is pre-resolved when the run starts
(``SecretRegistry.preload_names``), so templates rendered later read the cache and do
not wait on the network.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

from gxo.errors import SecretError

__all__ = ["SCHEMES", "RunProviders", "resolve", "timeout"]

SCHEMES = ("file", "aws-sm", "vault")
DEFAULT_TIMEOUT = 10.0


def timeout() -> float:
    """Seconds one reference may take (``GXO_SECRET_TIMEOUT``, default 10)."""
    try:
        value = float(os.environ.get("GXO_SECRET_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def _split(ref: str) -> tuple[str, str, dict[str, str], str | None]:
    """``scheme://body?query#key`` → (scheme, body, query, key)."""
    from urllib.parse import parse_qsl, unquote

    scheme, _, rest = ref.partition("://")
    rest, hash_, key = rest.partition("#")
    body, _, query = rest.partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    return scheme.lower(), unquote(body), params, (unquote(key) if hash_ else None)


def _pick(ref: str, value: Any, key: str | None, what: str) -> str:
    """``value`` (text or a mapping) as the secret: the ``key`` of it, if given."""
    if key is None:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            only = next(iter(value.values()))
            if isinstance(only, str):
                return only
        keys = ", ".join(sorted(value)) if isinstance(value, dict) else ""
        raise SecretError(f"secret {ref!r}: {what} holds several keys ({keys}): add #KEY")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SecretError(
                f"secret {ref!r}: {what} is not JSON, so it has no key {key!r}"
            ) from None
    if not isinstance(value, dict):
        raise SecretError(f"secret {ref!r}: {what} is not a JSON object, so it has no key {key!r}")
    if key not in value:
        keys = ", ".join(sorted(str(k) for k in value)) or "none"
        raise SecretError(f"secret {ref!r}: {what} has no key {key!r} (keys: {keys})")
    found = value[key]
    if isinstance(found, str):
        return found
    return json.dumps(found)


def _file(ref: str, body: str, params: dict[str, str], key: str | None) -> str:
    if params:
        raise SecretError(f"secret {ref!r}: file:// takes no ?parameters")
    if not body.startswith("/"):
        raise SecretError(f"secret {ref!r}: expected file:///ABSOLUTE/PATH")
    try:
        with open(body, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise SecretError(f"secret {ref!r}: file {body} does not exist") from None
    except IsADirectoryError:
        raise SecretError(f"secret {ref!r}: {body} is a directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SecretError(f"secret {ref!r}: cannot read {body}: {reason}") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return _pick(ref, text, key, f"file {body}")


def _aws_sm(ref: str, body: str, params: dict[str, str], key: str | None) -> str:
    unknown = set(params) - {"region", "version_stage"}
    if unknown:
        raise SecretError(f"secret {ref!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
    if not body:
        raise SecretError(f"secret {ref!r}: expected aws-sm://SECRET_NAME[#KEY]")
    import boto3.session
    from botocore.config import Config

    limit = timeout()
    session = boto3.session.Session(region_name=params.get("region"))
    region = params.get("region") or session.region_name or "us-east-1"
    config = Config(
        region_name=region,
        connect_timeout=min(limit, 5),
        read_timeout=limit,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    client = session.client("secretsmanager", region_name=region, config=config)
    request = {"SecretId": body}
    if params.get("version_stage"):
        request["VersionStage"] = params["version_stage"]
    try:
        answer = client.get_secret_value(**request)
    except Exception as exc:
        from gxo.modules.integration._s3 import describe_error

        raise SecretError(describe_error(exc, f"secret {ref!r}: AWS Secrets Manager")) from None
    finally:
        client.close()
    value = answer.get("SecretString")
    if value is None:
        raise SecretError(f"secret {ref!r}: the secret is binary (SecretBinary): not supported")
    return _pick(ref, value, key, f"AWS secret {body!r}")


def _vault(ref: str, body: str, params: dict[str, str], key: str | None) -> str:
    unknown = set(params) - {"kv_version", "version"}
    if unknown:
        raise SecretError(f"secret {ref!r}: unknown parameter(s) {', '.join(sorted(unknown))}")
    mount, _, path = body.strip("/").partition("/")
    if not mount or not path:
        raise SecretError(f"secret {ref!r}: expected vault://MOUNT/PATH[#KEY]")
    kv_version = params.get("kv_version", "2")
    if kv_version not in ("1", "2"):
        raise SecretError(f"secret {ref!r}: kv_version must be 1 or 2")
    version = params.get("version")
    if version is not None and not version.isdigit():
        raise SecretError(f"secret {ref!r}: version must be a number")
    from gxo.modules.integration._hcvault import KvParams, VaultApiError, kv_client

    kv = KvParams.model_validate(
        {
            "path": path,
            "mount": mount,
            "kv_version": int(kv_version),
            "namespace": os.environ.get("VAULT_NAMESPACE") or None,
            "ca_cert": os.environ.get("VAULT_CACERT") or None,
            "timeout": timeout(),
        }
    )
    shim = _Shim(ref)

    async def fetch() -> dict[str, Any] | None:
        client = await kv_client(shim, kv)
        try:
            return await client.read(int(version) if version else None)
        finally:
            await client.aclose()

    try:
        found = _run_async(fetch, timeout() + 1)
    except VaultApiError as exc:
        raise SecretError(f"secret {ref!r}: {exc}") from None
    if found is None:
        raise SecretError(f"secret {ref!r}: Vault has no secret at {mount}/{path}")
    return _pick(ref, found["data"], key, f"Vault secret {mount}/{path}")


class _Shim:
    """The little of a ModuleContext the Vault client uses (errors, paths, redaction)."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        self.run = self

    def fail(self, message: str) -> SecretError:
        return SecretError(f"secret {self.ref!r}: {message}")

    def resolve_path(self, path: str, *, param: str = "path") -> str:
        return os.path.abspath(path)

    @property
    def secrets(self) -> Any:
        return _NoRegistry()


class _NoRegistry:
    def add(self, value: str) -> None:
        return None  # the token is the environment's; the value is registered by secret()

    def add_derived(self, value: str) -> bool:
        return False


def _run_async(factory: Callable[[], Any], limit: float) -> Any:
    """Run a coroutine to completion in a thread of its own (its own event loop).

    ``secret()`` may be called from inside the run's event loop (a template): the loop
    thread waits for at most ``limit`` seconds."""
    import asyncio

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(asyncio.wait_for(factory(), limit))
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="gxo-secret", daemon=True)
    thread.start()
    thread.join(limit + 1)
    if thread.is_alive():
        raise SecretError(f"timed out after {limit:g}s")
    if "error" in box:
        error = box["error"]
        if isinstance(error, TimeoutError):
            raise SecretError(f"timed out after {limit - 1:g}s")
        raise error
    return box.get("value")


_RESOLVERS: dict[str, Callable[[str, str, dict[str, str], str | None], str]] = {
    "file": _file,
    "aws-sm": _aws_sm,
    "vault": _vault,
}


def resolve(ref: str) -> str:
    """The value of a reference with a scheme; :class:`SecretError` if it cannot be read."""
    scheme, body, params, key = _split(ref)
    resolver = _RESOLVERS.get(scheme)
    if resolver is None:
        raise SecretError(
            f"secret {ref!r}: unknown provider {scheme!r} (known: {', '.join(SCHEMES)}; "
            "a plain NAME reads the environment)"
        )
    try:
        return resolver(ref, body, params, key)
    except SecretError as exc:
        if str(exc).startswith(f"secret {ref!r}") or str(exc).startswith("secret '"):
            raise
        raise SecretError(f"secret {ref!r}: {exc}") from None


class RunProviders:
    """The provider of one run's ``SecretRegistry``: the environment for NAMEs, the
    providers above for references, each reference fetched once (thread-safe)."""

    def __init__(self, env: Callable[[str], str | None] | None = None) -> None:
        self._env = env or os.environ.get
        self._cache: dict[str, str | SecretError] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        # A confined run (the daemon, gxo run --confine): file:// reads only the paths
        # its path params may reach (gxo/engine/confine.py PathResolver.contains).
        self.file_guard: Callable[[str], bool] | None = None
        self.file_roots = ""

    def __call__(self, name: str) -> str | None:
        if "://" not in name:
            return self._env(name)
        if self.file_guard is not None and name[:7].lower() == "file://":
            self._guard_file(name)
        cached = self._cache.get(name)
        if cached is None:
            with self._lock:
                lock = self._locks.setdefault(name, threading.Lock())
            with lock:  # two threads asking at once: one fetch
                cached = self._cache.get(name)
                if cached is None:
                    try:
                        cached = resolve(name)
                    except SecretError as exc:
                        cached = exc
                    self._cache[name] = cached
        if isinstance(cached, SecretError):
            raise SecretError(str(cached))
        return cached

    def _guard_file(self, name: str) -> None:
        assert self.file_guard is not None
        _, body, _, _ = _split(name)
        if body.startswith("/") and not self.file_guard(body):
            roots = f" ({self.file_roots})" if self.file_roots else ""
            raise SecretError(
                f"secret {name!r}: {body} is outside the directories this confined run "
                f"may read{roots}"
            )
