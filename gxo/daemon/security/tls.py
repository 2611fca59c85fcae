"""Mutual TLS 1.3 on ``--listen HOST:PORT``, terminated before gRPC.

grpc's own server credentials can require a client certificate signed by a CA, but
cannot refuse TLS 1.2 nor check an allowlist in the handshake. So the daemon
terminates TLS itself (Python's ``ssl``, OpenSSL): TLS 1.3 only, ALPN ``h2``, a client
certificate required and verified against ``--client-ca`` (chain, validity dates,
the ``ssl_client`` purpose). Right after the handshake, before one byte is read from
the client, the certificate is checked again here: inside its validity period, an
extended key usage that includes clientAuth, and — trust model ``allowlist`` — its
SHA-256 fingerprint listed in ``--client-allowlist``. A refused client is disconnected
and logged (and audited); gRPC never sees it.

An accepted connection is relayed to the daemon's own unix socket from a socket bound
to a fresh path in a private 0700 directory. gRPC reports that path as the peer
(``unix:<path>``), and :class:`TlsListener` maps it to the client's
:class:`~gxo.daemon.security.identity.Identity` for the RBAC interceptor. Only the
daemon's user can create paths in that directory, and that user is the socket's
local identity anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import socket
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gxo.daemon.security.identity import Identity, fingerprint

__all__ = ["TlsConfig", "TlsError", "TlsListener", "load_allowlist", "tls_config"]

log = logging.getLogger("gxo.daemon.tls")

HANDSHAKE_TIMEOUT = 10.0
CHUNK = 256 * 1024


class TlsError(Exception):
    """Bad TLS options or material: the message names the flag or file (exit 2)."""


@dataclass
class TlsConfig:
    host: str
    port: int
    cert: str
    key: str
    ca: str
    allowlist: frozenset[str] | None  # None: trust model pki

    @property
    def trust(self) -> str:
        return "pki" if self.allowlist is None else "allowlist"


def split_hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TlsError(f"--listen {value}: expected HOST:PORT (e.g. 127.0.0.1:7443)")
    return host, int(port)


def load_allowlist(path: str) -> frozenset[str]:
    """``sha256:<hex>`` lines; ``#`` starts a comment; blank lines are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise TlsError(f"--client-allowlist {path}: cannot read: {why}") from None
    found = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip().lower()
        if not line:
            continue
        hexpart = line.removeprefix("sha256:")
        if not line.startswith("sha256:") or len(hexpart) != 64 or not _is_hex(hexpart):
            raise TlsError(
                f"{path}:{number}: expected a certificate fingerprint sha256:<64 hex digits>"
            )
        found.add(line)
    return frozenset(found)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def tls_config(options: Any) -> TlsConfig:
    """The ``--listen`` settings from :class:`~gxo.daemon.options.DaemonOptions`."""
    host, port = split_hostport(options.listen)
    cert, key, ca = options.tls_cert, options.tls_key, options.client_ca
    if options.tls_dir:
        folder = Path(options.tls_dir).expanduser()
        if not folder.is_dir():
            raise TlsError(f"--tls-dir {options.tls_dir}: not a directory")
        cert = cert or str(folder / "server.pem")
        key = key or str(folder / "server-key.pem")
        ca = ca or str(folder / "ca.pem")
    missing = [
        flag
        for flag, value in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", ca))
        if not value
    ]
    if missing:
        raise TlsError(
            f"--listen {options.listen} needs mutual TLS: give {', '.join(missing)} "
            "(or --tls-dir DIR holding server.pem, server-key.pem, ca.pem; "
            "`gxo admin pki` makes them)"
        )
    for flag, value in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", ca)):
        if not Path(value).is_file():
            raise TlsError(f"{flag} {value}: no such file")
    mode = os.stat(key).st_mode & 0o777
    if mode & 0o077:
        log.warning("--tls-key %s can be read by other users (mode %04o): chmod 600 it", key, mode)
    allowlist = load_allowlist(options.client_allowlist) if options.client_allowlist else None
    config = TlsConfig(host, port, str(cert), str(key), str(ca), allowlist)
    server_context(config)  # refuse bad material now, with the flag's name
    return config


def server_context(config: TlsConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.set_alpn_protocols(["h2"])
    try:
        context.load_cert_chain(config.cert, config.key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"--tls-cert {config.cert} / --tls-key {config.key}: cannot load the server "
            f"certificate and key ({getattr(exc, 'reason', None) or exc})"
        ) from None
    try:
        context.load_verify_locations(cafile=config.ca)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"--client-ca {config.ca}: not a PEM CA bundle ({getattr(exc, 'reason', None) or exc})"
        ) from None
    return context


def check_client(der: bytes, allowlist: frozenset[str] | None) -> tuple[Identity | None, str]:
    """The identity of a verified client certificate, or (identity or None, why refused)."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    fp = fingerprint(der)
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None, "unparsable certificate"
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else None
    identity = Identity(cn or fp, "tls", cn=cn, fingerprint=fp)
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return identity, "certificate outside its validity period"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return identity, "certificate has no extended key usage clientAuth"
    if ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return identity, "certificate is not for client authentication (no clientAuth usage)"
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        return identity, "certificate key usage does not allow digitalSignature"
    if allowlist is not None and fp not in allowlist:
        return identity, "certificate fingerprint is not in --client-allowlist"
    return identity, ""


# The relay's start-up self-check: an identity no role can name (its transport is
# neither "unix" nor "tls"), so the interceptor must deny it — and does not audit it.
PROBE = Identity("gxo-relay-probe", "probe")


class TlsListener:
    """Accepts mutual-TLS clients on HOST:PORT and relays them to the unix socket."""

    def __init__(self, config: TlsConfig, upstream: Path, audit: Any = None) -> None:
        self.config = config
        self.upstream = str(upstream)
        self.audit = audit
        self.context = server_context(config)
        self.peers: dict[str, Identity] = {}  # "unix:<bound path>" → who
        # 0700, ours: the bound client paths must stay under the 107-byte AF_UNIX limit
        parent = upstream.parent if len(str(upstream.parent)) < 80 else None
        self._dir = tempfile.mkdtemp(prefix=".gxo-tls-", dir=parent)
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def identity(self, peer: str) -> Identity | None:
        return self.peers.get(peer)

    async def start(self) -> str:
        """Check the relay's attribution, then listen; returns the bound HOST:PORT (PORT
        0 picks a free port)."""
        await self._check_attribution()
        self._server = await asyncio.start_server(
            self._accept, self.config.host, self.config.port, reuse_address=True
        )
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def _check_attribution(self) -> None:
        """Fail closed: before any client is accepted, prove that gRPC reports a relayed
        connection's bound path as its peer — were it not (another gRPC version), every
        TLS client would look like the unix socket's local identity. A probe connection
        is relayed with :data:`PROBE` as its identity; the interceptor must deny it."""
        import grpc

        from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb
        from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc

        path = os.path.join(self._dir, "probe.sock")

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self._relay(reader, writer, PROBE)
            finally:
                writer.close()

        server = await asyncio.start_unix_server(relay, path)
        code, details = grpc.StatusCode.OK, ""
        try:
            async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
                try:
                    await pb_grpc.GxoDaemonStub(channel).Health(pb.HealthRequest(), timeout=10)
                except grpc.aio.AioRpcError as exc:
                    code, details = exc.code(), exc.details() or ""
        finally:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 2.0)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        if code != grpc.StatusCode.PERMISSION_DENIED or PROBE.name not in details:
            raise TlsError(
                "--listen: refusing to serve TLS clients: the relay's self-check could not "
                f"attribute a connection to its identity (got {code.name}: {details})"
            )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _refuse(self, address: str, identity: Identity | None, why: str) -> None:
        who = identity.name if identity else "unknown client"
        log.warning("TLS client %s (%s) refused: %s", address, who, why)
        if self.audit is not None:
            if identity is not None:
                identity = Identity(
                    identity.name, "tls", identity.cn, identity.fingerprint, address
                )
            await self.audit.record(
                identity, "-", "", False, "UNAUTHENTICATED", address=address, reason=why
            )

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = f"{peer[0]}:{peer[1]}" if peer else "?"
        try:
            await writer.start_tls(self.context, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        except ssl.SSLCertVerificationError as exc:
            await self._refuse(address, None, exc.verify_message or "certificate not verified")
            return
        except (ssl.SSLError, OSError, TimeoutError, ConnectionError) as exc:
            why = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            await self._refuse(address, None, f"TLS handshake failed: {why}")
            return
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            await self._refuse(address, None, "no client certificate")
            return
        identity, why = check_client(der, self.config.allowlist)
        if identity is None or why:
            await self._refuse(address, identity, why)
            return
        identity = Identity(identity.name, "tls", identity.cn, identity.fingerprint, address)
        await self._relay(reader, writer, identity)

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, identity: Identity
    ) -> None:
        path = os.path.join(self._dir, f"c{next(self._ids)}")
        up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        key = f"unix:{path}"
        try:
            up.bind(path)
            up.setblocking(False)
            self.peers[key] = identity
            await asyncio.get_running_loop().sock_connect(up, self.upstream)
            up_reader, up_writer = await asyncio.open_unix_connection(sock=up, limit=CHUNK)
        except OSError as exc:
            up.close()
            self.peers.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            log.error("cannot relay TLS client %s to %s: %s", identity.name, self.upstream, exc)
            return
        log.debug("TLS client %s (%s) connected", identity.address, identity.name)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            self.peers.pop(key, None)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    finally:
        # one side ended: end the other, so neither half waits forever
        with contextlib.suppress(Exception):
            if sink.can_write_eof():
                sink.write_eof()
            else:
                sink.close()
