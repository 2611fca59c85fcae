"""A thin synchronous client of ``gxo.daemon.v1.GxoDaemon``: over the daemon's unix
socket, or over TCP with mutual TLS (:class:`TlsTarget`: ``--server --cert --key --ca``
or a context of ``~/.gxo/contexts.yaml``, see :mod:`gxo.ctl.contexts`).

Errors become :class:`CtlError` with the exit code ``gxo ctl`` uses: 1 the daemon
answered with an error (PERMISSION_DENIED included), 2 an invalid playbook or request,
3 no daemon answers (a refused TLS handshake included, with the reason found by
:func:`diagnose`).
"""

from __future__ import annotations

import json
import os
import socket as socketlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# grpc's C core would print its own INFO lines (a failed handshake) on stderr; ctl
# explains failures itself. Set before grpc loads; a caller's own setting wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc

from gxo.daemon.paths import default_socket
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc

__all__ = ["Client", "CtlError", "TlsTarget", "diagnose", "pb"]

CALL_TIMEOUT = 60.0  # seconds; apply returns once instances are started, not finished


class CtlError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def unreachable(path: Path | str, detail: str = "") -> CtlError:
    why = f" ({detail})" if detail else ""
    return CtlError(
        f"cannot reach the gxo daemon at {path}{why}; start one with `gxo daemon` "
        "(or point to another with --socket / GXO_SOCKET)",
        3,
    )


@dataclass(frozen=True)
class TlsTarget:
    """A daemon's ``--listen`` address and this client's certificate, key and CA."""

    server: str  # HOST:PORT
    cert: str
    key: str
    ca: str | None = None  # None: the system's roots

    def read(self) -> tuple[bytes | None, bytes, bytes]:
        files: list[bytes | None] = []
        for flag, path in (("--ca", self.ca), ("--cert", self.cert), ("--key", self.key)):
            if path is None:
                files.append(None)
                continue
            try:
                files.append(Path(path).expanduser().read_bytes())
            except OSError as exc:
                raise CtlError(f"{flag} {path}: cannot read: {exc.strerror}", 2) from None
        return files[0], files[1] or b"", files[2] or b""


class Client:
    def __init__(self, socket: str | Path | None = None, *, tls: TlsTarget | None = None) -> None:
        self.tls = tls
        if tls is not None:
            self.path: Path | str = tls.server
            ca, cert, key = tls.read()
            credentials = grpc.ssl_channel_credentials(ca, key, cert)
            self.channel = grpc.secure_channel(tls.server, credentials)
        else:
            self.path = default_socket(socket)
            if not self.path.exists():
                raise unreachable(self.path, "no such socket")
            # A unix socket path: grpc's "unix:" target takes it as is (absolute or relative).
            self.channel = grpc.insecure_channel(f"unix:{os.fspath(self.path)}")
        self.stub = pb_grpc.GxoDaemonStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _error(self, exc: grpc.RpcError) -> CtlError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            if self.tls is not None:
                return CtlError(
                    f"cannot reach the gxo daemon at {self.tls.server}: {diagnose(self.tls)}", 3
                )
            return unreachable(self.path, details or code.name)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return CtlError(details, 2)
        return CtlError(details or code.name, 1)

    def call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def stream(self, method: str, request: Any) -> Iterator[Any]:
        call = getattr(self.stub, method)(request)
        try:
            yield from call
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise self._error(exc) from None
        finally:
            call.cancel()

    # -- the RPCs ---------------------------------------------------------------------------

    def apply(self, source: str, path: str, variables: dict[str, Any]) -> Any:
        request = pb.ApplyPlaybookRequest(
            source=source, path=path, variables_json=json.dumps(variables) if variables else ""
        )
        return self.call("ApplyPlaybook", request)

    def health(self) -> Any:
        return self.call("Health", pb.HealthRequest())


# -- why a TLS connection failed -------------------------------------------------------


def diagnose(target: TlsTarget, timeout: float = 5.0) -> str:
    """Why the mutual-TLS connection fails, in words: a plain TLS 1.3 handshake with the
    same files, then one read (TLS 1.3 servers judge the client's certificate after
    the client considers the handshake done, so a refusal shows on that read)."""
    host, _, port = target.server.rpartition(":")
    host = host.strip("[]")
    if not port.isdigit():
        return f"--server {target.server}: expected HOST:PORT"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["h2"])
    try:
        if target.ca:
            context.load_verify_locations(cafile=os.path.expanduser(target.ca))
        else:
            context.load_default_certs()
        context.load_cert_chain(os.path.expanduser(target.cert), os.path.expanduser(target.key))
    except (OSError, ssl.SSLError) as exc:
        return f"cannot load --cert/--key/--ca: {getattr(exc, 'reason', None) or exc}"
    try:
        raw = socketlib.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        return f"connection failed ({exc.strerror or exc}); is `gxo daemon --listen` running?"
    try:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            tls.settimeout(timeout)
            try:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # the HTTP/2 preface
                data = tls.recv(1)
            except ssl.SSLError as exc:
                return _refused(exc.reason or str(exc), target.cert)
            except (ConnectionError, TimeoutError) as exc:
                return _refused(str(exc) or type(exc).__name__, target.cert)
            if not data:
                return _refused("the daemon closed the connection", target.cert)
            return "the TLS connection works now; the daemon was busy or restarting (retry)"
    except ssl.SSLCertVerificationError as exc:
        return (
            f"TLS handshake failed: the daemon's certificate is not trusted "
            f"({exc.verify_message}); check --ca and that --server's host is in the "
            "certificate (gxo admin pki issue-server --host)"
        )
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        if "VERSION" in reason.upper():
            return f"TLS handshake failed ({reason}): the daemon speaks only TLS 1.3"
        return _refused(reason, target.cert)
    except OSError as exc:
        return f"TLS handshake failed: {exc}"


def _refused(reason: str, cert_path: str) -> str:
    own = _own_problem(cert_path)
    if own:
        return f"TLS handshake failed: the daemon refused this client certificate: {own}"
    return (
        f"TLS handshake failed: the daemon refused this client certificate ({reason}); "
        "it must be signed by the daemon's client CA, within its validity dates, issued "
        "for client authentication (gxo admin pki issue-client) and, with an allowlist, "
        "listed in it"
    )


def _own_problem(cert_path: str) -> str:
    """What is visibly wrong with our own certificate ("" when nothing is)."""
    from datetime import UTC, datetime

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).expanduser().read_bytes())
    except (OSError, ValueError):
        return ""
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        return f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if cert.not_valid_before_utc > now:
        return f"{cert_path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is None or ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return (
            f"{cert_path} is not a client certificate (no clientAuth extended key usage; "
            "issue one with gxo admin pki issue-client)"
        )
    return ""
