"""``gxo admin pki init | issue-server | issue-client | fingerprint``: a small private
CA for the daemon's mutual TLS (``gxo daemon --listen --tls-dir DIR``).

ECDSA P-256 keys (written 0600, never overwritten), short lifetimes by default (CA
365 days, server 90, client 30). Server certificates carry the serverAuth extended
key usage and the ``--host`` names as subjectAltNames; client certificates carry
clientAuth and the CN the daemon's RBAC file names. ``cryptography`` loads inside the
commands only.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["issue", "new_key", "register", "write_key", "write_pem"]

CA_DAYS = 365
SERVER_DAYS = 90
CLIENT_DAYS = 30
_CN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

pki_app = typer.Typer(
    name="pki",
    help="Certificates for the daemon's mutual TLS: a CA, a server, clients.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Dir = Annotated[Path, typer.Option("--dir", help="The PKI directory (ca.pem, ca-key.pem, ...)")]


class PkiError(Exception):
    pass


def register(admin_app: typer.Typer) -> None:
    """Add the ``pki`` commands to ``gxo admin``."""
    admin_app.add_typer(pki_app, name="pki")


# -- building blocks (also used by the tests to make bad certificates) -----------------


def new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def write_key(path: Path, key: Any) -> None:
    """PEM, unencrypted, created 0600; an existing file is never replaced."""
    from cryptography.hazmat.primitives import serialization

    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(path, data, 0o600)


def write_pem(path: Path, cert: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    _write_new(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except FileExistsError:
        raise PkiError(f"{path} already exists; remove it first to issue a new one") from None
    except OSError as exc:
        raise PkiError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)
        out.write(data)


def issue(
    subject_cn: str,
    key: Any,
    *,
    issuer: tuple[Any, Any] | None = None,
    days: int = CLIENT_DAYS,
    not_before: datetime | None = None,
    usage: str = "client",
    hosts: list[str] | None = None,
) -> Any:
    """A certificate for ``key``: ``usage`` "ca", "server" or "client"; ``issuer`` is
    (CA certificate, CA key), None for self-signed (a CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    start = not_before or (datetime.now(UTC) - timedelta(minutes=5))  # clock skew
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    issuer_name = issuer[0].subject if issuer else name
    signer = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer:
        ski = issuer[0].extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False
        )
    is_ca = usage == "ca"
    builder = builder.add_extension(
        x509.BasicConstraints(ca=is_ca, path_length=0 if is_ca else None), True
    )
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=not is_ca,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=is_ca,
            crl_sign=is_ca,
            encipher_only=False,
            decipher_only=False,
        ),
        True,
    )
    if usage == "server":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
        )
        names: list[x509.GeneralName] = []
        for host in hosts or []:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), False)
    elif usage == "client":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
        )
    return builder.sign(signer, hashes.SHA256())


def load_ca(folder: Path) -> tuple[Any, Any]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise PkiError(
            f"{exc.filename}: no such file; create the CA first with "
            f"`gxo admin pki init --dir {folder}`"
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"cannot load the CA from {folder}: {exc}") from None
    return cert, key


def fingerprint_of(cert: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    from gxo.daemon.security.identity import fingerprint

    return fingerprint(cert.public_bytes(serialization.Encoding.DER))


# -- the commands -------------------------------------------------------------------------


def _run(body: Any) -> None:
    from gxo.console import err_console, print_error

    try:
        body()
    except PkiError as exc:
        print_error(err_console(), str(exc))
        raise typer.Exit(2) from None


def _folder(folder: Path, create: bool = False) -> Path:
    folder = folder.expanduser()
    if create:
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise PkiError(f"--dir {folder}: cannot create: {exc.strerror}") from None
    elif not folder.is_dir():
        raise PkiError(f"--dir {folder}: not a directory (run `gxo admin pki init` first)")
    return folder


def _fresh(*paths: Path) -> None:
    """Refuse before anything is written: never a new key beside an old certificate."""
    for path in paths:
        if path.exists() or path.is_symlink():
            raise PkiError(f"{path} already exists; remove it first to issue a new one")


def _days(days: int) -> int:
    if days < 1 or days > 3650:
        raise PkiError(f"--days {days}: must be between 1 and 3650")
    return days


@pki_app.command("init")
def init(
    folder: Dir,
    cn: Annotated[str, typer.Option("--cn", help="The CA's common name")] = "gxo control-plane CA",
    days: Annotated[int, typer.Option("--days", help="Lifetime in days")] = CA_DAYS,
) -> None:
    """Create a CA: DIR/ca.pem and DIR/ca-key.pem (0600)."""

    def body() -> None:
        where = _folder(folder, create=True)
        _days(days)
        _fresh(where / "ca-key.pem", where / "ca.pem")
        key = new_key()
        cert = issue(cn, key, days=_days(days), usage="ca")
        write_key(where / "ca-key.pem", key)
        write_pem(where / "ca.pem", cert)
        typer.echo(f"CA written: {where / 'ca.pem'} (key {where / 'ca-key.pem'}, 0600)")

    _run(body)


@pki_app.command("issue-server")
def issue_server(
    folder: Dir,
    host: Annotated[
        list[str], typer.Option("--host", help="A name or IP the daemon is reached by (repeat)")
    ],
    days: Annotated[int, typer.Option("--days", help="Lifetime in days")] = SERVER_DAYS,
) -> None:
    """Issue the daemon's certificate: DIR/server.pem, DIR/server-key.pem (serverAuth)."""

    def body() -> None:
        where = _folder(folder)
        ca = load_ca(where)
        for name in host:
            if not name or "/" in name or " " in name:
                raise PkiError(f"--host {name!r}: expected a DNS name or an IP address")
        _days(days)
        _fresh(where / "server-key.pem", where / "server.pem")
        key = new_key()
        cert = issue(host[0], key, issuer=ca, days=_days(days), usage="server", hosts=host)
        write_key(where / "server-key.pem", key)
        write_pem(where / "server.pem", cert)
        typer.echo(f"server certificate written: {where / 'server.pem'} for {', '.join(host)}")

    _run(body)


@pki_app.command("issue-client")
def issue_client(
    folder: Dir,
    cn: Annotated[str, typer.Option("--cn", help="The client's name (RBAC subjects' cn)")],
    days: Annotated[int, typer.Option("--days", help="Lifetime in days")] = CLIENT_DAYS,
) -> None:
    """Issue a client certificate: DIR/NAME.pem, DIR/NAME-key.pem (clientAuth)."""

    def body() -> None:
        where = _folder(folder)
        if not _CN.match(cn) or cn in ("ca", "server"):
            raise PkiError(
                f"--cn {cn!r}: use letters, digits and . _ @ - (it names the files), "
                "not 'ca' or 'server'"
            )
        ca = load_ca(where)
        _days(days)
        _fresh(where / f"{cn}-key.pem", where / f"{cn}.pem")
        key = new_key()
        cert = issue(cn, key, issuer=ca, days=days, usage="client")
        write_key(where / f"{cn}-key.pem", key)
        write_pem(where / f"{cn}.pem", cert)
        typer.echo(f"client certificate written: {where / (cn + '.pem')}")
        typer.echo(f"fingerprint: {fingerprint_of(cert)}")

    _run(body)


@pki_app.command("fingerprint")
def fingerprint_cmd(
    cert: Annotated[Path, typer.Argument(help="A PEM certificate")],
) -> None:
    """Print a certificate's sha256:<hex> fingerprint (a --client-allowlist line)."""

    def body() -> None:
        from cryptography import x509

        try:
            loaded = x509.load_pem_x509_certificate(cert.expanduser().read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError(f"{cert}: not a readable PEM certificate ({exc})") from None
        typer.echo(fingerprint_of(loaded))

    _run(body)
