"""``gxo admin pki``: the files, their modes, usages, names and lifetimes, and the
refusals (an existing file, a bad name, no CA yet)."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.daemon.security_support import gxo


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def lifetime(cert: x509.Certificate) -> timedelta:
    return cert.not_valid_after_utc - cert.not_valid_before_utc


def test_pki_commands_write_a_working_ca_server_and_client(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    assert gxo("admin", "pki", "init", "--dir", str(d)).returncode == 0
    out = gxo("admin", "pki", "issue-server", "--dir", str(d), "--host", "127.0.0.1",
              "--host", "localhost")  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = gxo("admin", "pki", "issue-client", "--dir", str(d), "--cn", "alice", "--days", "7")
    assert out.returncode == 0, out.stderr

    for key in ("ca-key.pem", "server-key.pem", "alice-key.pem"):
        assert stat.S_IMODE((d / key).stat().st_mode) == 0o600, key
        assert "PRIVATE KEY" in (d / key).read_text()
    assert stat.S_IMODE(d.stat().st_mode) == 0o700

    ca, server, client = load(d / "ca.pem"), load(d / "server.pem"), load(d / "alice.pem")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for cert in (server, client):
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
        assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    # short lifetimes: CA 365 days, server 90, client as asked (default 30)
    assert lifetime(ca) == timedelta(days=365)
    assert lifetime(server) == timedelta(days=90)
    assert lifetime(client) == timedelta(days=7)
    assert client.not_valid_before_utc <= datetime.now(UTC)

    fp = gxo("admin", "pki", "fingerprint", str(d / "alice.pem"))
    assert fp.returncode == 0 and fp.stdout.strip() in out.stdout


def test_pki_refusals(tmp_path: Path) -> None:
    d = tmp_path / "pki"
    out = gxo("admin", "pki", "issue-client", "--dir", str(tmp_path), "--cn", "bob")
    assert out.returncode == 2 and "gxo admin pki init --dir" in out.stderr
    assert not (tmp_path / "bob-key.pem").exists()  # nothing written without a CA

    assert gxo("admin", "pki", "init", "--dir", str(d)).returncode == 0
    before = (d / "ca-key.pem").read_bytes()
    out = gxo("admin", "pki", "init", "--dir", str(d))
    assert out.returncode == 2 and "ca-key.pem already exists" in out.stderr
    assert (d / "ca-key.pem").read_bytes() == before  # never overwritten

    assert gxo("admin", "pki", "issue-client", "--dir", str(d), "--cn", "bob").returncode == 0
    (d / "bob-key.pem").unlink()  # a lone certificate: no new key is written beside it
    out = gxo("admin", "pki", "issue-client", "--dir", str(d), "--cn", "bob")
    assert out.returncode == 2 and "bob.pem already exists" in out.stderr
    assert not (d / "bob-key.pem").exists()

    for bad in ("../x", "server", "a b", ""):
        out = gxo("admin", "pki", "issue-client", "--dir", str(d), "--cn", bad)
        assert out.returncode == 2 and "--cn" in out.stderr, bad
    out = gxo("admin", "pki", "issue-client", "--dir", str(d), "--cn", "c", "--days", "0")
    assert out.returncode == 2 and "--days 0" in out.stderr
    out = gxo("admin", "pki", "fingerprint", str(d / "nope.pem"))
    assert out.returncode == 2 and "not a readable PEM certificate" in out.stderr
    assert "Traceback" not in out.stderr
