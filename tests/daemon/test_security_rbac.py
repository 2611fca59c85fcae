"""RBAC policy decisions and the ``--rbac`` file's errors (no daemon needed), the
audit log's file handling, and the client certificate checks of the TLS listener."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization

from gxo.admin.pki import issue, new_key
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc
from gxo.daemon.security.audit import AuditLog
from gxo.daemon.security.identity import Identity, fingerprint
from gxo.daemon.security.interceptor import RbacInterceptor
from gxo.daemon.security.rbac import METHODS, Policy, RbacError, load_policy
from gxo.daemon.security.tls import (
    TlsConfig,
    TlsError,
    TlsListener,
    check_client,
    load_allowlist,
)

FP = "sha256:" + "ab" * 32


def tls(cn: str | None, fp: str = "sha256:" + "00" * 32) -> Identity:
    return Identity(cn or fp, "tls", cn=cn, fingerprint=fp)


def policy(tmp_path: Path, text: str, local: str = "local-admin") -> Policy:
    path = tmp_path / "rbac.yaml"
    path.write_text(text)
    return load_policy(path, local)


def test_builtin_roles_and_deny_by_default(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        "subjects:\n"
        "  - { cn: alice, roles: [admin] }\n"
        "  - { cn: olga, roles: [operator] }\n"
        "  - { cn: vera, roles: [viewer] }\n"
        f"  - {{ fingerprint: '{FP.upper().replace('SHA256', 'sha256')}', roles: [operator] }}\n",
    )
    for method in METHODS:
        assert p.decide(tls("alice"), method, "any").allowed
        assert not p.decide(tls("mallory"), method, "any").allowed  # no subject, no role
    assert p.decide(tls("olga"), "ApplyPlaybook", "x").allowed
    assert p.decide(tls("olga"), "StopWorkload", "x").allowed
    assert not p.decide(tls("olga"), "RemovePlaybook", "x").allowed
    assert p.decide(tls("vera"), "GetLogs", "x").allowed
    assert p.decide(tls("vera"), "StreamEvents", None).allowed
    assert not p.decide(tls("vera"), "StartWorkload", "x").allowed
    # a fingerprint subject (compared lower-case), whatever the certificate's CN
    assert p.decide(tls("anyone", FP), "StartWorkload", "x").allowed
    assert not p.decide(tls(None, "sha256:" + "cd" * 32), "Health", None).allowed


def test_local_identity_is_admin_unless_named(tmp_path: Path) -> None:
    local = Identity("local-admin", "unix")
    assert Policy().decide(local, "RemovePlaybook", "x").allowed
    p = policy(tmp_path, "subjects:\n  - { cn: ops, roles: [viewer] }\n", local="ops")
    ops = Identity("ops", "unix")
    assert p.decide(ops, "ListWorkloads", None).allowed
    assert not p.decide(ops, "ApplyPlaybook", "x").allowed
    # a TLS client whose CN is the local name gets the subject's roles, never the
    # socket's built-in admin
    assert not Policy().decide(tls("local-admin"), "Health", None).allowed


def test_playbook_globs_scope_a_role(tmp_path: Path) -> None:
    p = policy(
        tmp_path,
        "roles:\n"
        "  deployer: { methods: [ApplyPlaybook, ListWorkloads], playbooks: ['web-*', api] }\n"
        "  all: { methods: ['*'] }\n"
        "subjects:\n  - { cn: dora, roles: [deployer] }\n  - { cn: root, roles: [all] }\n",
    )
    dora = tls("dora")
    assert p.decide(dora, "ApplyPlaybook", "web-shop").allowed
    assert p.decide(dora, "ApplyPlaybook", "api").allowed
    assert not p.decide(dora, "ApplyPlaybook", "db-main").allowed
    assert not p.decide(dora, "ApplyPlaybook", "").allowed  # unknown target: no
    assert not p.decide(dora, "GetLogs", "web-shop").allowed  # not one of its methods
    listing = p.decide(dora, "ListWorkloads", None)
    assert listing.allowed and listing.scope == ("web-*", "api")
    assert p.decide(tls("root"), "RemovePlaybook", "db-main").allowed
    assert p.decide(tls("root"), "ListWorkloads", None).scope is None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("roles: [a]\n", 1, "roles must be a mapping"),
        ("roles:\n  admin: { methods: [Health] }\n", 2, "built in"),
        ("roles:\n  r: { methods: [Health], hosts: [x] }\n", 2, "unknown key 'hosts'"),
        ("roles:\n  r: { playbooks: [x] }\n", 2, "needs methods"),
        ("roles:\n  r:\n    methods:\n      - Health\n      - Nope\n", 5, "unknown method 'Nope'"),
        ("subjects:\n  - { cn: a }\n", 2, "roles must be a list"),
        ("subjects:\n  - { cn: a, fingerprint: x, roles: [admin] }\n", 2, "exactly one of"),
        ("subjects:\n  - { fingerprint: 'md5:1', roles: [admin] }\n", 2, "sha256:<64 hex"),
        ("subjects:\n  - {cn: a, roles: [admin]}\n  - {cn: b, roles: [x]}\n", 3, "unknown role"),
        ("users: []\n", 1, "unknown key 'users'"),
        ("subjects: [\n", 2, "YAML syntax error"),
    ],
)
def test_bad_rbac_files_name_the_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(RbacError) as info:
        policy(tmp_path, text)
    assert str(info.value).startswith(f"{tmp_path / 'rbac.yaml'}:{line}:"), str(info.value)
    assert message in str(info.value)


def test_missing_rbac_file(tmp_path: Path) -> None:
    with pytest.raises(RbacError, match="not found"):
        load_policy(tmp_path / "nope.yaml")


async def test_audit_log_appends_fsynced_0600_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text('{"earlier": true}\n')
    os.chmod(path, 0o644)
    audit = AuditLog(str(path))
    await audit.record(tls("alice", FP), "StopWorkload", "web/app", False, "PERMISSION_DENIED")
    await audit.record(Identity("local-admin", "unix"), "Health", "", True, "OK")
    audit.close()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"earlier": True}  # appended, never truncated
    assert lines[1]["identity"] == "alice" and lines[1]["fingerprint"] == FP
    assert lines[1]["target"] == "web/app" and lines[1]["allowed"] is False
    assert lines[2]["transport"] == "unix" and lines[2]["code"] == "OK"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    link = tmp_path / "link.log"
    link.symlink_to(path)
    with pytest.raises(OSError):
        AuditLog(str(link))  # never written through a symlink


def _der(**kwargs: object) -> bytes:
    cert = issue("alice", new_key(), **kwargs)  # type: ignore[arg-type]
    return bytes(cert.public_bytes(serialization.Encoding.DER))


def test_client_certificate_checks() -> None:
    good = _der(usage="client")
    identity, why = check_client(good, None)
    assert why == "" and identity is not None and identity.cn == "alice"
    assert identity.fingerprint == fingerprint(good)
    assert check_client(good, frozenset({fingerprint(good)}))[1] == ""
    assert "allowlist" in check_client(good, frozenset({FP}))[1]
    assert "clientAuth" in check_client(_der(usage="server"), None)[1]
    assert "clientAuth" in check_client(_der(usage="none"), None)[1]
    past = datetime.now(UTC) - timedelta(days=10)
    assert "validity" in check_client(_der(not_before=past, days=1), None)[1]
    assert check_client(b"junk", None) == (None, "unparsable certificate")
    assert "digitalSignature" in check_client(_no_signature(), None)[1]


def _no_signature() -> bytes:
    """A clientAuth certificate whose key usage is keyAgreement only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    now = datetime.now(UTC)
    flags = dict.fromkeys(
        [
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ],
        False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.KeyUsage(key_agreement=True, **flags), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(key, hashes.SHA256())
    )
    return bytes(cert.public_bytes(serialization.Encoding.DER))


def test_allowlist_file(tmp_path: Path) -> None:
    path = tmp_path / "allow"
    path.write_text(f"# admins\n{FP.upper().replace('SHA256', 'sha256')}  # alice\n\n")
    assert load_allowlist(str(path)) == {FP}
    path.write_text("sha256:zz\n")
    with pytest.raises(TlsError, match=":1: expected a certificate fingerprint"):
        load_allowlist(str(path))
    with pytest.raises(TlsError, match="cannot read"):
        load_allowlist(str(tmp_path / "none"))


async def test_audit_write_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit.log"
    audit = AuditLog(str(path))
    assert audit.fd is not None
    os.close(audit.fd)
    audit.fd = os.open(path, os.O_RDONLY)  # every write now fails (EBADF)
    with caplog.at_level("ERROR", logger="gxo.daemon.audit"):
        await audit.record(tls("alice"), "StopWorkload", "web/app", True, "OK")
    audit.close()
    assert "lost the line of StopWorkload by alice" in caplog.text
    assert path.read_text() == ""


class _Health(pb_grpc.GxoDaemonServicer):
    async def Health(self, request: pb.HealthRequest, context: object) -> pb.HealthResponse:
        return pb.HealthResponse(status="SERVING")


@pytest.mark.parametrize("attributes", [True, False])
async def test_relay_self_check_fails_closed(tmp_path: Path, attributes: bool) -> None:
    """The TLS listener refuses to start unless the interceptor sees a relayed
    connection's identity (were gRPC to stop reporting the relay's bound path, TLS
    clients would otherwise pass as the socket's local admin)."""
    from gxo.admin.pki import write_key, write_pem

    key = new_key()
    write_key(tmp_path / "key.pem", key)
    write_pem(tmp_path / "cert.pem", issue("127.0.0.1", key, usage="server", hosts=["127.0.0.1"]))
    config = TlsConfig("127.0.0.1", 0, str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"),
                       str(tmp_path / "cert.pem"), None)  # fmt: skip
    sock = tmp_path / "d.sock"
    listener = TlsListener(config, sock)

    def identify(peer: str) -> Identity | None:
        return listener.identity(peer) if attributes else None  # False: a blind gRPC

    server = grpc.aio.server(
        interceptors=[RbacInterceptor(Policy(), lambda ref: ("p", ref), identify)]
    )
    pb_grpc.add_GxoDaemonServicer_to_server(_Health(), server)
    server.add_insecure_port(f"unix:{sock}")
    await server.start()
    try:
        if attributes:
            address = await listener.start()
            assert address.startswith("127.0.0.1:")
        else:
            with pytest.raises(TlsError, match="self-check could not attribute"):
                await listener.start()
    finally:
        await listener.close()
        await server.stop(None)
    assert not Path(listener._dir).exists()
