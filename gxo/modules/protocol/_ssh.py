"""What the ``ssh:*`` modules share: connection params, host key policy, pooling, output.

asyncssh is imported inside the functions: ``import gxo`` never pays for it.

A connection is registered in the run's connection manager (kind ``ssh``) under the
pooling key ``user@host:port`` when its host key was verified, and under
``user@host:port#insecure`` when ``insecure_skip_host_key_check`` skipped that: a
verified request never reuses a connection whose server was not checked.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator, model_validator

from gxo.config.durations import Duration
from gxo.modules.base import ModuleParams

if TYPE_CHECKING:
    from gxo.engine.connections import ConnectionManager
    from gxo.engine.context import ModuleContext

KIND = "ssh"
MAX_CAPTURE = 16 * 1024 * 1024  # bytes kept per output stream
LOG_LINE_CAP = 8192  # characters of one output line kept in the log
READ_CHUNK = 32768
KILL_GRACE = 2.0  # seconds between TERM and KILL sent to a remote command on timeout
CONNECT_FIELDS = (
    "host",
    "port",
    "username",
    "password",
    "private_key",
    "private_key_file",
    "passphrase",
    "agent",
    "known_hosts",
    "host_key",
    "insecure_skip_host_key_check",
)
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
MIN_SECRET = 6  # shorter credentials are not masked in output (they would mask common words)

# One lock per pooling key and run: two workloads reaching the same host at once
# open one connection, not two.
_POOL_LOCKS: weakref.WeakKeyDictionary[ConnectionManager, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


class ConnectParams(ModuleParams):
    """How to reach and trust an SSH server (``ssh:connect``, and inline in the others)."""

    host: str | None = Field(None, min_length=1, description="Host name or address of the server")
    port: int = Field(22, ge=1, le=65535, description="SSH port")
    username: str | None = Field(
        None, min_length=1, description="User to log in as (default: the local user)"
    )
    password: str | None = Field(
        None, min_length=1, description="Password (use secret('NAME')); never shown"
    )
    private_key: str | None = Field(
        None,
        min_length=1,
        description="Private key text, OpenSSH or PEM (use secret('NAME')); never shown",
    )
    private_key_file: str | None = Field(
        None, min_length=1, description="Path of a private key file (relative to the workspace)"
    )
    passphrase: str | None = Field(
        None, min_length=1, description="Passphrase of an encrypted private key; never shown"
    )
    agent: bool = Field(
        False, description="Also offer the keys of the SSH agent ($SSH_AUTH_SOCK) and ~/.ssh"
    )
    known_hosts: str | None = Field(
        None,
        min_length=1,
        description="known_hosts file trusted for the server's host key (default: ~/.ssh/known_hosts)",
    )
    host_key: str | None = Field(
        None,
        min_length=1,
        description='The server\'s pinned host key: a public key line ("ssh-ed25519 AAAA...") or its fingerprint ("SHA256:...")',
    )
    insecure_skip_host_key_check: bool = Field(
        False,
        description="Accept any host key (man-in-the-middle risk; logs a warning). Never the default",
    )
    connect_timeout: Duration = Field(
        "30s", validate_default=True, description="Time allowed to connect and log in"
    )

    @field_validator("connect_timeout")
    @classmethod
    def _positive_connect_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("connect_timeout must be more than 0")
        return value

    @model_validator(mode="after")
    def _connect_consistent(self) -> ConnectParams:
        if getattr(self, "connection_id", None) is not None:
            given = [n for n in CONNECT_FIELDS if n in self.model_fields_set]
            if given:
                raise ValueError(
                    f"give either connection_id or connection params, not both (got {', '.join(given)})"
                )
            return self
        if self.host is None:
            raise ValueError(
                "host is required (or connection_id from ssh:connect)"
                if "connection_id" in type(self).model_fields
                else "host is required"
            )
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("give private_key or private_key_file, not both")
        if self.passphrase is not None and self.private_key is None and not self.private_key_file:
            raise ValueError("passphrase needs private_key or private_key_file")
        if not (self.password or self.private_key or self.private_key_file or self.agent):
            raise ValueError(
                "no credentials: give password, private_key, private_key_file or agent: true"
            )
        if self.insecure_skip_host_key_check and (self.known_hosts or self.host_key):
            raise ValueError(
                "insecure_skip_host_key_check: true ignores known_hosts and host_key: give one or the other"
            )
        if self.known_hosts and self.host_key:
            raise ValueError("give known_hosts or host_key, not both")
        return self


class UsingParams(ConnectParams):
    """Params of a module that uses a connection: ``connection_id`` or the inline params."""

    connection_id: str | None = Field(
        None, min_length=1, description="Handle from ssh:connect (instead of host, username ...)"
    )


def local_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no passwd entry, no $USER
        return "root"


def pool_key(params: ConnectParams) -> str:
    user = params.username or local_user()
    key = f"{user}@{params.host}:{params.port}"
    return key + "#insecure" if params.insecure_skip_host_key_check else key


def target(params: ConnectParams) -> str:
    return f"{params.username or local_user()}@{params.host}:{params.port}"


async def connection(ctx: ModuleContext, params: UsingParams) -> tuple[str, Any, bool]:
    """``(connection_id, asyncssh connection, reused)`` for ``connection_id`` or the inline params."""
    manager = ctx.connections
    if params.connection_id is not None:
        conn = manager.get(params.connection_id, KIND)
        return params.connection_id, conn, True
    return await pooled(ctx, params)


async def pooled(ctx: ModuleContext, params: ConnectParams) -> tuple[str, Any, bool]:
    """The run's open connection to this user@host:port, or a new one registered for reuse."""
    manager = ctx.connections
    key = pool_key(params)
    lock = _POOL_LOCKS.setdefault(manager, {}).setdefault(key, asyncio.Lock())
    async with lock:
        cid = manager.find(KIND, key)
        if cid is not None:
            conn = manager.get(cid, KIND)
            if not conn.is_closed():
                if params.host_key is not None:
                    check_pinned(ctx, params, conn.get_server_host_key())
                elif not params.insecure_skip_host_key_check:
                    await check_known(ctx, params, conn)
                ctx.log(f"reusing SSH connection {cid} to {target(params)}")
                return cid, conn, True
            await manager.close(cid)  # the server went away: connect again
        conn = await open_connection(ctx, params)
        info: dict[str, Any] = {
            "host": params.host,
            "port": params.port,
            "username": params.username or local_user(),
            "host_key_fingerprint": fingerprint(conn),
            "verified": not params.insecure_skip_host_key_check,
        }
        try:
            cid = manager.add(KIND, conn, _closer(conn), key=key, info=info)
        except BaseException:  # too many open connections, or the run has ended
            await _closer(conn)()
            raise
        return cid, conn, False


def _closer(conn: Any) -> Any:
    async def close() -> None:
        conn.close()
        await conn.wait_closed()

    return close


def fingerprint(conn: Any) -> str | None:
    key = conn.get_server_host_key()
    return key.get_fingerprint("sha256") if key is not None else None


def check_pinned(ctx: ModuleContext, params: ConnectParams, key: Any) -> None:
    """A reused connection must match a pinned host_key too."""
    assert params.host_key is not None
    pin = params.host_key.strip()
    offered = key.get_fingerprint("sha256") if key is not None else "none"
    if pin.startswith(("SHA256:", "MD5:")):
        ok = key is not None and key.get_fingerprint(pin.split(":", 1)[0].lower()) == pin
    else:
        ok = key is not None and _public_key_line(pin) == key.export_public_key().split()[1]
    if not ok:
        raise ctx.fail(_untrusted_message(params, offered))


async def check_known(ctx: ModuleContext, params: ConnectParams, conn: Any) -> None:
    """A reused connection must be trusted by this request's known_hosts too (the one
    that opened it may have trusted the server through another file)."""
    trust, _ = await _trust(ctx, params)
    key = conn.get_server_host_key()
    if isinstance(trust, tuple):  # no default known_hosts file: nothing is trusted
        host_keys, ca_keys, revoked = trust
    else:
        peer = conn.get_extra_info("peername") or ("",)
        host_keys, ca_keys, revoked, *_ = trust.match(params.host, str(peer[0]), params.port)
    if key is None:
        ok = False
    elif hasattr(key, "signing_key"):  # a host certificate: signed by a trusted CA
        ok = any(ca.public_data == key.signing_key.public_data for ca in ca_keys)
    else:
        ok = any(k.public_data == key.public_data for k in host_keys)
    if key is not None and any(r.public_data == key.public_data for r in revoked):
        ok = False
    if not ok:
        offered = key.get_fingerprint("sha256") if key is not None else "none"
        raise ctx.fail(_untrusted_message(params, offered))


def _public_key_line(text: str) -> bytes | None:
    """The base64 blob of an OpenSSH public key line (``[host] type blob [comment]``)."""
    parts = text.split()
    for i, part in enumerate(parts):
        if part.startswith(("ssh-", "ecdsa-", "sk-")) and i + 1 < len(parts):
            return parts[i + 1].encode()
    return None


def _untrusted_message(params: ConnectParams, offered: str) -> str:
    where = f"{params.host}:{params.port}"
    if params.host_key is not None:
        why = "does not match the pinned host_key"
    elif params.known_hosts is not None:
        why = f"is not in known_hosts {params.known_hosts}"
    else:
        why = (
            f"is not in {DEFAULT_KNOWN_HOSTS} (no known_hosts or host_key given); "
            "add it there, pin it with host_key, or set insecure_skip_host_key_check: true"
        )
    return f"SSH host key verification failed for {where}: the server's key {offered} {why}"


async def open_connection(ctx: ModuleContext, params: ConnectParams) -> Any:
    """Connect and log in, verifying the host key by the params' policy."""
    import asyncssh

    if params.agent and getattr(ctx.run.paths, "confined", False):
        raise ctx.fail(
            "agent: true is refused in a confined run (the daemon, gxo run --confine): "
            "it would log in with the keys of the user running GXO; give private_key"
        )
    for value in (params.password, params.passphrase, params.private_key):
        if value is not None and len(value.strip()) >= MIN_SECRET:
            ctx.run.secrets.add(value)  # a literal credential is masked like a secret()
    trust, pin = await _trust(ctx, params)
    keys = await _client_keys(ctx, params)
    offered: list[Any] = []

    class _Client(asyncssh.SSHClient):
        def validate_host_public_key(self, host: str, addr: str, port: int, key: Any) -> bool:
            offered.append(key)
            return pin is not None and key.get_fingerprint(pin.split(":", 1)[0].lower()) == pin

    options: dict[str, Any] = {
        "port": params.port,
        "username": params.username or local_user(),
        "known_hosts": trust,
        "config": None,  # no ~/.ssh/config: the params say everything
        "connect_timeout": params.connect_timeout,
        "client_factory": _Client,
    }
    if params.password is not None:
        options["password"] = params.password
    if keys is not None:
        options["client_keys"] = keys
        options["agent_path"] = () if params.agent else None
    elif params.agent:
        options["client_keys"] = ()  # the agent's keys and ~/.ssh's
    else:
        options["client_keys"] = None
        options["agent_path"] = None
    if params.insecure_skip_host_key_check:
        ctx.log(
            f"WARNING: the host key of {params.host}:{params.port} is not checked "
            "(insecure_skip_host_key_check: true): a man-in-the-middle would not be noticed",
            level="warning",
        )
    where = target(params)
    try:
        conn = await asyncssh.connect(params.host, **options)
    except asyncssh.HostKeyNotVerifiable:
        shown = offered[-1].get_fingerprint("sha256") if offered else "(unknown)"
        raise ctx.fail(_untrusted_message(params, shown)) from None
    except asyncssh.PermissionDenied:
        raise ctx.fail(f"SSH login to {where} refused: wrong username, password or key") from None
    except asyncssh.KeyImportError as exc:
        raise ctx.fail(f"SSH private key unusable: {exc}") from None
    except TimeoutError:
        raise ctx.fail(
            f"SSH connection to {where} timed out after {params.connect_timeout:g}s"
        ) from None
    except (OSError, asyncssh.Error) as exc:
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
        raise ctx.fail(f"SSH connection to {where} failed: {ctx.redact(reason)}") from None
    ctx.log(f"connected to {where} (host key {fingerprint(conn)})")
    return conn


async def _trust(ctx: ModuleContext, params: ConnectParams) -> tuple[Any, str | None]:
    """``(known_hosts argument for asyncssh, pinned fingerprint or None)``."""
    import asyncssh

    if params.insecure_skip_host_key_check:
        return None, None
    if params.host_key is not None:
        pin = params.host_key.strip()
        if pin.startswith(("SHA256:", "MD5:")):
            return ([], [], []), pin  # nothing trusted up front: the fingerprint decides
        try:
            key = asyncssh.import_public_key(" ".join(_key_words(pin)))
        except (asyncssh.KeyImportError, ValueError):
            raise ctx.fail(
                "host_key must be an OpenSSH public key line (ssh-ed25519 AAAA...) "
                "or a fingerprint (SHA256:...)"
            ) from None
        return ([key], [], []), None
    if params.known_hosts is not None:
        path = ctx.resolve_path(params.known_hosts, param="known_hosts")
    else:
        path = Path(await ctx.to_thread(os.path.expanduser, DEFAULT_KNOWN_HOSTS))
    try:
        text = await ctx.to_thread(path.read_text, encoding="utf-8")
    except FileNotFoundError:
        if params.known_hosts is not None:
            raise ctx.fail(f"known_hosts file not found: {path}") from None
        return ([], [], []), None  # no default file: every host is unknown, so refused
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail(f"cannot read known_hosts {path}: {exc}") from None
    try:
        return asyncssh.import_known_hosts(text), None
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise ctx.fail(f"known_hosts {path} is not a known_hosts file: {exc}") from None


def _key_words(line: str) -> list[str]:
    """``type blob`` of a key line that may start with host patterns."""
    parts = line.split()
    for i, part in enumerate(parts):
        if part.startswith(("ssh-", "ecdsa-", "sk-")):
            return parts[i : i + 2]
    return parts


async def _client_keys(ctx: ModuleContext, params: ConnectParams) -> list[Any] | None:
    import asyncssh

    if params.private_key is None and params.private_key_file is None:
        return None
    if params.private_key_file is not None:
        path = ctx.resolve_path(params.private_key_file, param="private_key_file")
        try:
            data = await ctx.to_thread(path.read_bytes)
        except OSError as exc:
            raise ctx.fail(f"cannot read private_key_file {path}: {exc.strerror or exc}") from None
        source = f"private_key_file {path}"
    else:
        assert params.private_key is not None
        data = params.private_key.encode()
        source = "private_key"
    try:
        return [asyncssh.import_private_key(data, params.passphrase)]
    except asyncssh.KeyEncryptionError:
        raise ctx.fail(
            f"{source} is encrypted: "
            + ("wrong passphrase" if params.passphrase else "give its passphrase")
        ) from None
    except (asyncssh.KeyImportError, ValueError) as exc:
        if "Passphrase must be specified" in str(exc):
            raise ctx.fail(f"{source} is encrypted: give its passphrase") from None
        raise ctx.fail(f"{source} is not a private key (OpenSSH or PEM)") from None


# -- running commands ------------------------------------------------------------------


def with_env(command: str, env: dict[str, str]) -> str:
    """``command`` prefixed with ``export K=V`` for each variable (POSIX shell quoting).

    Variables are exported by the remote shell rather than sent as SSH ``env``
    requests, which sshd drops unless its ``AcceptEnv`` lists them.
    """
    if not env:
        return command
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    return f"export {exports}; {command}"


class Output:
    """One output stream: captured up to MAX_CAPTURE bytes, logged line by line as it arrives."""

    def __init__(self, ctx: ModuleContext, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0
        self.line = bytearray()

    async def pump(self, stream: Any) -> None:
        while True:
            data = await stream.read(READ_CHUNK)
            if not data:
                break
            self.feed(data)
            await asyncio.sleep(0)
        if self.line:
            self._log_line()

    def feed(self, data: bytes) -> None:
        room = MAX_CAPTURE - self.size
        kept = data[: max(room, 0)]
        self.parts.append(kept)
        self.size += len(kept)
        self.dropped += len(data) - len(kept)
        start = 0
        while True:
            nl = data.find(b"\n", start)
            piece = data[start:] if nl < 0 else data[start:nl]
            self.line += piece
            if nl < 0:
                break
            self._log_line()
            start = nl + 1

    def _log_line(self) -> None:
        text = bytes(self.line[:LOG_LINE_CAP]).decode("utf-8", "replace")
        if len(self.line) > LOG_LINE_CAP:
            secrets = self.ctx.run.secrets
            text = secrets.mask_cut_edge(secrets.redact_str(text))
            text += f" [... {len(self.line) - LOG_LINE_CAP} more bytes]"
        self.ctx.log(text.rstrip("\r"), stream=self.name)
        self.line.clear()

    def text(self) -> str:
        text = b"".join(self.parts).decode("utf-8", "replace")
        if self.dropped:
            secrets = self.ctx.run.secrets
            text = secrets.mask_cut_edge(secrets.redact_str(text))
            text += f"\n[... output truncated at {MAX_CAPTURE} bytes]\n"
        return text


def strip_nl(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


async def run_remote(
    ctx: ModuleContext,
    conn: Any,
    command: str,
    *,
    stdin: bytes | None = None,
    limit: float | None = None,
    log: bool = True,
) -> tuple[int | None, str, str, bool]:
    """Run ``command``; ``(exit_code, stdout, stderr, timed_out)``; output logged live.

    After ``limit`` seconds (or on cancellation) the remote command gets SIGTERM, then SIGKILL after
    KILL_GRACE, and its channel is closed (sshd hangs up on the command's session).
    """
    import asyncssh

    try:
        process = await conn.create_process(command, encoding=None)
    except (asyncssh.Error, OSError) as exc:
        raise ctx.fail(f"cannot run a command over SSH: {describe(conn, exc)}") from None
    outputs = (Output(ctx, "stdout"), Output(ctx, "stderr"))
    if not log:
        for out in outputs:
            out._log_line = out.line.clear  # type: ignore[method-assign]
    pumps = [
        asyncio.create_task(outputs[0].pump(process.stdout)),
        asyncio.create_task(outputs[1].pump(process.stderr)),
    ]
    timed_out = False
    try:
        if stdin is not None:
            process.stdin.write(stdin)
        process.stdin.write_eof()
        try:
            async with asyncio.timeout(limit):
                await asyncio.gather(*pumps)
                completed = await process.wait(check=False)
        except TimeoutError:
            timed_out = True
            await _kill(process)
            completed = None
        except (asyncssh.Error, OSError):
            # The session ended underneath the command (a reset connection): no exit
            # status. The connection closes with it; the caller names that.
            completed = None
            try:
                await asyncio.wait_for(conn.wait_closed(), KILL_GRACE)
            except (TimeoutError, asyncssh.Error, OSError):
                pass
    except BaseException:
        await _kill(process)
        raise
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        process.close()
        try:
            await asyncio.wait_for(process.wait_closed(), KILL_GRACE)
        except (TimeoutError, asyncssh.Error, OSError):
            pass
    code = None if completed is None else _exit_code(completed)
    return code, outputs[0].text(), outputs[1].text(), timed_out


def describe(conn: Any, exc: BaseException) -> str:
    """Why an operation on ``conn`` failed, naming a connection that is gone as such."""
    if conn.is_closed():
        return "the connection is closed (the server or the network dropped it)"
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(reason) or type(exc).__name__


async def start_sftp(ctx: ModuleContext, conn: Any) -> Any:
    """An SFTP client on ``conn`` (``async with`` it), or a clear failure."""
    import asyncssh

    try:
        return await conn.start_sftp_client()
    except (asyncssh.Error, OSError) as exc:
        raise ctx.fail(f"cannot start SFTP over SSH: {describe(conn, exc)}") from None


def _exit_code(completed: Any) -> int | None:
    if completed.exit_status is not None and completed.exit_status >= 0:
        return int(completed.exit_status)
    if completed.exit_signal:
        import signal

        name = completed.exit_signal[0]
        try:
            return -int(signal.Signals[f"SIG{name}"])
        except KeyError:
            return -1
    return None


async def _kill(process: Any) -> None:
    """SIGTERM, then SIGKILL after KILL_GRACE if the command has not exited."""
    import asyncssh

    for sig, wait in (("TERM", KILL_GRACE), ("KILL", KILL_GRACE)):
        # (not is_closing(): that is true as soon as stdin got its EOF)
        if process.exit_status is not None or process.exit_signal is not None:
            return
        try:
            process.send_signal(sig)
        except (asyncssh.Error, OSError):
            return
        try:
            await asyncio.shield(asyncio.wait_for(process.wait(check=False), wait))
            return
        except (TimeoutError, asyncssh.Error, OSError):
            continue
