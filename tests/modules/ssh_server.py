"""A real SSH server on 127.0.0.1 for the ssh:* module tests (asyncssh, in its own thread).

Commands run for real: each exec request starts ``/bin/sh -c COMMAND`` as a
subprocess in its own process group, wired to the channel; an SSH signal request
(``TERM``, ``KILL``) is delivered to that group, and a closed channel kills it, so
a client-side timeout can be proved by the process being gone. SFTP is
asyncssh's SFTPServer chrooted to a temp directory (``server.sftp_root``).

The command DISCONNECT closes the client's connection from the server side.

Logins: USER with PASSWORD, or USER with the key in ``server.client_key_file``
(also ``client_key_encrypted_file``, passphrase PASSPHRASE).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

USER = "gxo"
PASSWORD = "s3cret-ssh-pass"
PASSPHRASE = "key-passphrase-9"
DISCONNECT = "gxo-test-disconnect"  # a command that makes the server close the connection


@dataclass
class SshServer:
    port: int
    host_key: Any  # the server's private host key
    host_key_line: str  # "ssh-ed25519 AAAA..."
    fingerprint: str  # SHA256:...
    client_key: Any
    client_key_text: str
    client_key_file: Path
    client_key_encrypted_file: Path
    known_hosts: Path
    wrong_known_hosts: Path
    sftp_root: Path
    home: Path
    pids: list[int] = field(default_factory=list)
    signals: list[tuple[int, str]] = field(default_factory=list)  # (pid, "TERM") received
    connections: list[Any] = field(default_factory=list)  # open server-side connections
    accepted: int = 0
    tmpdir: str | None = None  # TMPDIR of the commands (None: unset, so /tmp)
    loop: asyncio.AbstractEventLoop | None = None

    def open_connections(self) -> int:
        return sum(1 for c in self.connections if not c.is_closed())


class _Server(asyncssh.SSHServer):
    def __init__(self, state: SshServer) -> None:
        self.state = state
        self.conn: Any = None

    def connection_made(self, conn: Any) -> None:
        self.conn = conn
        self.state.accepted += 1
        self.state.connections.append(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        with contextlib.suppress(ValueError):
            self.state.connections.remove(self.conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == USER and password == PASSWORD


async def _handle(state: SshServer, process: Any) -> None:
    """Run the exec request's command as a real subprocess wired to the channel."""
    command = process.command
    if command == DISCONNECT:  # the server drops the client's whole connection
        process.get_extra_info("connection").close()
        return
    if command is None:
        process.stderr.write(b"this server runs commands only\n")
        process.exit(1)
        return
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(state.home)}
    if state.tmpdir is not None:
        env["TMPDIR"] = state.tmpdir
    env.update(process.env or {})
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=state.home,
        env=env,
        start_new_session=True,
    )
    state.pids.append(proc.pid)

    def kill(sig: int) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    # The session object asyncssh hands us gets the channel's signal and close events.
    def on_signal(name: str) -> None:
        state.signals.append((proc.pid, name))
        kill(getattr(signal, f"SIG{name}", signal.SIGTERM))

    process.signal_received = on_signal
    lost = process.connection_lost

    def on_lost(exc: Exception | None) -> None:
        kill(signal.SIGKILL)  # a safety net: the tests check that signals came first
        lost(exc)

    process.connection_lost = on_lost

    async def pump_out(reader: asyncio.StreamReader, writer: Any) -> None:
        while data := await reader.read(65536):
            with contextlib.suppress(Exception):
                writer.write(data)

    async def pump_in() -> None:
        assert proc.stdin is not None
        try:
            while data := await process.stdin.read(65536):
                proc.stdin.write(data)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
            pass
        finally:
            proc.stdin.close()

    feeder = asyncio.create_task(pump_in())
    assert proc.stdout is not None and proc.stderr is not None
    await asyncio.gather(
        pump_out(proc.stdout, process.stdout), pump_out(proc.stderr, process.stderr)
    )
    code = await proc.wait()
    feeder.cancel()
    await asyncio.gather(feeder, return_exceptions=True)
    with contextlib.suppress(Exception):
        if code < 0:
            process.exit_with_signal(signal.Signals(-code).name[3:])
        else:
            process.exit(code)


@contextlib.contextmanager
def serve(tmp: Path) -> Iterator[SshServer]:
    """Start the server in a thread with its own event loop; stop it and its connections after."""
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    other_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    for sub in ("sftp", "home", "keys"):
        (tmp / sub).mkdir()
    key_file = tmp / "keys" / "id_ed25519"
    key_file.write_bytes(client_key.export_private_key())
    key_file.chmod(0o600)
    enc_file = tmp / "keys" / "id_ed25519_enc"
    enc_file.write_bytes(client_key.export_private_key(passphrase=PASSPHRASE, rounds=50))
    enc_file.chmod(0o600)
    line = host_key.export_public_key().decode().strip()
    ready = threading.Event()
    stop: asyncio.Event | None = None
    state = SshServer(
        port=0,
        host_key=host_key,
        host_key_line=line,
        fingerprint=host_key.get_fingerprint("sha256"),
        client_key=client_key,
        client_key_text=client_key.export_private_key().decode(),
        client_key_file=key_file,
        client_key_encrypted_file=enc_file,
        known_hosts=tmp / "keys" / "known_hosts",
        wrong_known_hosts=tmp / "keys" / "wrong_known_hosts",
        sftp_root=tmp / "sftp",
        home=tmp / "home",
    )
    errors: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        acceptor = await asyncssh.create_server(
            lambda: _Server(state),
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=authorized,
            process_factory=lambda process: _handle(state, process),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(state.sftp_root)),
            encoding=None,
        )
        state.port = acceptor.sockets[0].getsockname()[1]
        ready.set()
        try:
            await stop.wait()
        finally:
            acceptor.close()
            await acceptor.wait_closed()
            for conn in list(state.connections):
                conn.close()
                await conn.wait_closed()

    def run() -> None:
        loop = asyncio.new_event_loop()
        state.loop = loop
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # pragma: no cover - reported by the fixture
            errors.append(exc)
            ready.set()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="ssh-test-server", daemon=True)
    thread.start()
    ready.wait(30)
    if errors:
        raise errors[0]
    state.known_hosts.write_text(f"[127.0.0.1]:{state.port} {line}\n")
    state.wrong_known_hosts.write_text(
        f"[127.0.0.1]:{state.port} {other_key.export_public_key().decode().strip()}\n"
    )
    try:
        yield state
    finally:
        assert state.loop is not None and stop is not None
        state.loop.call_soon_threadsafe(stop.set)
        thread.join(30)
