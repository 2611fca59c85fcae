"""The control plane over mutual TLS: a real ``gxo daemon --listen`` subprocess,
certificates from ``gxo admin pki``, RBAC and the audit log.

The matrix: certificates (good, expired, not yet valid, other CA, no clientAuth, a
server certificate as client, none at all, not allowlisted, TLS 1.2) × roles (admin,
operator, viewer, a custom role limited to ``web-*``, a fingerprint subject, no
role) × methods, unary and streaming; every decision is checked in the audit log.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.daemon.conftest import DaemonProc
from tests.daemon.security_support import Pki, call, free_port, gxo, pb

WEB = """\
schemaVersion: "1.0.0"
name: web-shop
workloads:
  - name: hello
    process: { module: exec, params: { command: echo, args: ["hello from web"] } }
"""
DB = WEB.replace("web-shop", "db-main").replace("hello", "backup").replace("web", "db")

RBAC = """\
roles:
  deployer: { methods: [ApplyPlaybook, GetWorkloadStatus, ListWorkloads, StreamEvents, GetLogs],
              playbooks: ["web-*"] }
subjects:
  - { cn: alice, roles: [admin] }
  - { cn: olga, roles: [operator] }
  - { cn: vera, roles: [viewer] }
  - { cn: dora, roles: [deployer] }
  - { fingerprint: "FINGERPRINT", roles: [viewer] }
"""

Case = tuple[str, str, Any]  # label, method, request


def cases() -> list[Case]:
    ref = pb.WorkloadRequest
    return [
        ("Health", "Health", pb.HealthRequest()),
        ("ListWorkloads", "ListWorkloads", pb.ListWorkloadsRequest()),
        ("status web", "GetWorkloadStatus", pb.GetWorkloadStatusRequest(name="web-shop/hello")),
        ("status db", "GetWorkloadStatus", pb.GetWorkloadStatusRequest(name="db-main/backup")),
        ("status bare", "GetWorkloadStatus", pb.GetWorkloadStatusRequest(name="backup")),
        ("runs web", "ListRuns", pb.ListRunsRequest(name="web-shop/hello")),
        ("events web", "StreamEvents", pb.StreamEventsRequest(playbook="web-shop", tail=50)),
        ("events db", "StreamEvents", pb.StreamEventsRequest(playbook="db-main", tail=50)),
        ("logs web", "GetLogs", pb.GetLogsRequest(name="web-shop/hello", tail=50)),
        ("logs db", "GetLogs", pb.GetLogsRequest(name="db-main/backup", tail=50)),
        ("apply web", "ApplyPlaybook", pb.ApplyPlaybookRequest(source=WEB, path="")),
        ("apply db", "ApplyPlaybook", pb.ApplyPlaybookRequest(source=DB, path="")),
        ("stop db", "StopWorkload", ref(name="db-main/backup")),
        ("start db", "StartWorkload", ref(name="db-main/backup")),
        ("remove", "RemovePlaybook", pb.RemovePlaybookRequest(playbook="scratch")),
    ]


ALL = {label for label, _, _ in cases()}
VIEWER = {
    "Health",
    "ListWorkloads",
    "status web",
    "status db",
    "status bare",
    "runs web",
    "events web",
    "events db",
    "logs web",
    "logs db",
}
ALLOWED = {
    "alice": ALL,
    "olga": ALL - {"remove"},
    "vera": VIEWER,
    "fred": VIEWER,  # a fingerprint subject
    "dora": {"ListWorkloads", "status web", "events web", "logs web", "apply web"},
    "nobody": set(),
}


def _audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _audit_until(path: Path, done: Any, timeout: float = 10) -> list[dict[str, Any]]:
    """The audit lines once ``done(lines)`` holds: a call that ends in an error is
    answered by gRPC while its line is still being fsync'd (a denial's line is
    written before the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = _audit(path)
        if done(lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


REFUSED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class Secured:
    def __init__(self, daemon: DaemonProc, pki: Pki, port: int, audit: Path) -> None:
        self.daemon, self.pki, self.port, self.audit = daemon, pki, port, audit

    def stub(self, cn: str | None) -> Any:
        return self.pki.stub(self.port, cn)

    def ctl(self, cn: str, *args: str) -> Any:
        tls = ["--server", f"127.0.0.1:{self.port}", "--ca", str(self.pki.dir / "ca.pem")]
        tls += ["--cert", str(self.pki.dir / f"{cn}.pem")]
        tls += ["--key", str(self.pki.dir / f"{cn}-key.pem")]
        return gxo("ctl", *tls, *args)


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    folder = Path(tempfile.mkdtemp(prefix="gxos-", dir="/tmp"))
    os.chmod(folder, 0o700)
    pki = Pki(folder / "pki")
    for cn in ("alice", "olga", "vera", "dora", "nobody", "fred"):
        pki.client(cn)
    rbac = folder / "rbac.yaml"
    rbac.write_text(RBAC.replace("FINGERPRINT", pki.fingerprint("fred")))
    audit = folder / "audit.log"
    port = free_port()
    d = DaemonProc(folder)
    try:
        d.start(
            *("--listen", f"127.0.0.1:{port}", "--tls-dir", str(pki.dir)),
            *("--rbac", str(rbac), "--audit-log", str(audit)),
        )
        for name, text in (("web.gxo.yaml", WEB), ("db.gxo.yaml", DB)):
            (folder / name).write_text(text)
            out = d.ctl("apply", "-f", str(folder / name))
            assert out.returncode == 0, out.stderr
        d.wait_status("web-shop/hello", "Completed")
        d.wait_status("db-main/backup", "Completed")
        yield Secured(d, pki, port, audit)
    finally:
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


# -- roles × methods --------------------------------------------------------------------


@pytest.mark.parametrize("who", sorted(ALLOWED))
def test_roles_by_methods_unary_and_streaming(secured: Secured, who: str) -> None:
    stub = secured.stub(who)
    for label, method, request in cases():
        code, details, _ = call(stub, method, request)
        if label in ALLOWED[who]:
            # the daemon answered (a stop/start/remove may say NOT_FOUND or so)
            assert code in (
                grpc.StatusCode.OK,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.FAILED_PRECONDITION,
            ), (who, label, code, details)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (who, label, code, details)
            # the method and the identity, nothing of the policy
            assert details == f"permission denied: {who} may not call {method}"
    wanted = {(method, label in ALLOWED[who]) for label, method, _ in cases()}

    def mine(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in lines if a["identity"] == who]

    lines = mine(
        _audit_until(
            secured.audit, lambda got: wanted <= {(a["method"], a["allowed"]) for a in mine(got)}
        )
    )
    by_method = {(a["method"], a["allowed"]) for a in lines}
    for label, method, _ in cases():
        assert (method, label in ALLOWED[who]) in by_method, (who, label)
    for line in lines:
        assert line["transport"] == "tls" and line["fingerprint"].startswith("sha256:")
        assert line["address"].startswith("127.0.0.1:")
        if not line["allowed"]:
            assert line["code"] == "PERMISSION_DENIED"


def test_scoped_role_sees_only_its_playbooks(secured: Secured) -> None:
    dora = secured.stub("dora")
    code, _, reply = call(dora, "ListWorkloads", pb.ListWorkloadsRequest())
    assert code == grpc.StatusCode.OK
    assert {w.playbook for w in reply.workloads} == {"web-shop"}
    code, _, events = call(dora, "StreamEvents", pb.StreamEventsRequest(tail=500))
    assert code == grpc.StatusCode.OK and events
    assert {e.playbook for e in events} == {"web-shop"}
    # an admin listing all sees both
    code, _, reply = call(secured.stub("alice"), "ListWorkloads", pb.ListWorkloadsRequest())
    assert {w.playbook for w in reply.workloads} == {"web-shop", "db-main"}
    # a playbook text whose name cannot be read cannot be vouched for by a glob
    bad = pb.ApplyPlaybookRequest(source="name: [unclosed", path="")
    code, details, _ = call(dora, "ApplyPlaybook", bad)
    assert code == grpc.StatusCode.PERMISSION_DENIED, details
    code, details, _ = call(secured.stub("alice"), "ApplyPlaybook", bad)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details  # allowed; the daemon judges


def test_audit_lines(secured: Secured) -> None:
    call(secured.stub("vera"), "StopWorkload", pb.WorkloadRequest(name="db-main/backup"))
    call(secured.stub("vera"), "GetWorkloadStatus", pb.GetWorkloadStatusRequest(name="backup"))
    assert secured.daemon.ctl("status").returncode == 0  # the unix socket: local-admin
    lines = _audit(secured.audit)
    denied = [a for a in lines if a["identity"] == "vera" and a["method"] == "StopWorkload"]
    assert denied[-1]["allowed"] is False and denied[-1]["code"] == "PERMISSION_DENIED"
    assert denied[-1]["target"] == "db-main/backup"
    status = [a for a in lines if a["identity"] == "vera" and a["method"] == "GetWorkloadStatus"]
    assert status[-1] | {"time": 0} == status[-1] | {
        "time": 0,
        "allowed": True,
        "code": "OK",
        "target": "db-main/backup",  # the bare name, resolved
    }
    applies = {
        (a["identity"], a["target"], a["allowed"]) for a in lines if a["method"] == "ApplyPlaybook"
    }
    assert ("alice", "web-shop", True) in applies  # unrestricted: the name from the reply
    assert ("dora", "web-shop", True) in applies  # web-*: the name from the parsed text
    assert ("dora", "db-main", False) in applies
    assert ("vera", "db-main", False) in applies
    local = [a for a in lines if a["transport"] == "unix"]
    assert local[-1]["identity"] == "local-admin" and local[-1]["method"] == "ListWorkloads"
    for line in lines:
        assert set(line) >= {"time", "identity", "method", "target", "allowed", "code"}
    text = secured.audit.read_text()
    assert "schemaVersion" not in text and "hello from" not in text  # no payloads
    assert stat.S_IMODE(secured.audit.stat().st_mode) == 0o600
    assert stat.S_IMODE(secured.daemon.socket.stat().st_mode) == 0o600


# -- certificates refused in the handshake ------------------------------------------------


def test_bad_certificates_refused_before_any_rpc(secured: Secured, tmp_path: Path) -> None:
    pki = secured.pki
    other = Pki(tmp_path / "other")
    # every bad certificate claims CN alice, an admin: the refusal is not RBAC's
    bad = [
        pki.expired("expired", "alice"),
        pki.not_yet_valid("future", "alice"),
        pki.bad("otherca", "alice", ca_dir=other.dir),
        pki.bad("noeku", "alice", usage="none"),
        "server",  # the daemon's own certificate (serverAuth) used as a client's
        None,  # no client certificate at all
    ]
    before = len(_audit(secured.audit))
    for name in bad:
        stub = secured.stub(name)
        for method, request in (
            ("Health", pb.HealthRequest()),
            ("StreamEvents", pb.StreamEventsRequest(tail=5)),
            ("GetLogs", pb.GetLogsRequest(name="web-shop/hello")),
            ("RemovePlaybook", pb.RemovePlaybookRequest(playbook="web-shop")),
        ):
            code, details, _ = call(stub, method, request, timeout=5)
            assert code in REFUSED, (name, method, code, details)

    def reasons_of(lines: list[dict[str, Any]]) -> str:
        return " | ".join(a.get("reason", "") for a in lines[before:])

    lines = _audit_until(
        secured.audit,
        lambda got: (
            len(got) - before >= len(bad)
            and all(r in reasons_of(got) for r in ("expired", "not yet valid", "purpose"))
        ),
    )[before:]
    assert len(lines) >= len(bad), "every refusal is audited"
    assert all(a["method"] == "-" and a["allowed"] is False for a in lines), lines
    assert all(a["code"] == "UNAUTHENTICATED" and a["reason"] for a in lines)
    reasons = " | ".join(a["reason"] for a in lines)
    assert "expired" in reasons and "not yet valid" in reasons
    assert "purpose" in reasons or "clientAuth" in reasons
    # web-shop was never removed: no RPC ran
    code, _, _ = call(
        secured.stub("alice"),
        "GetWorkloadStatus",
        pb.GetWorkloadStatusRequest(name="web-shop/hello"),
    )
    assert code == grpc.StatusCode.OK


def test_tls12_refused(secured: Secured) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(str(secured.pki.dir / "ca.pem"))
    context.load_cert_chain(secured.pki.dir / "alice.pem", secured.pki.dir / "alice-key.pem")
    with (
        socket.create_connection(("127.0.0.1", secured.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    deadline = time.monotonic() + 5
    while True:
        last = _audit(secured.audit)[-1]
        if last["method"] == "-" and "PROTOCOL" in last["reason"].upper():
            break
        assert time.monotonic() < deadline, last
        time.sleep(0.05)
    assert last["allowed"] is False and last["code"] == "UNAUTHENTICATED"


# -- gxo ctl over mutual TLS ------------------------------------------------------------


def test_ctl_over_tls(secured: Secured, tmp_path: Path) -> None:
    out = secured.ctl("alice", "status", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert {r["playbook"] for r in json.loads(out.stdout)} == {"web-shop", "db-main"}
    out = secured.ctl("vera", "logs", "web-shop/hello")
    assert out.returncode == 0 and "hello from web" in out.stdout, out.stderr

    out = secured.ctl("vera", "stop", "web-shop/hello")
    assert out.returncode == 1
    assert "permission denied: vera may not call StopWorkload" in out.stderr

    out = secured.ctl(secured.pki.expired("ctl-expired", "alice"), "status")
    assert out.returncode == 3
    assert f"127.0.0.1:{secured.port}" in out.stderr
    assert "refused this client certificate" in out.stderr and "Traceback" not in out.stderr
    assert "ctl-expired.pem expired on" in out.stderr
    out = secured.ctl("server", "status")
    assert out.returncode == 3 and "server.pem is not a client certificate" in out.stderr
    out = secured.ctl("nobody", "status")  # a good certificate with no role
    assert out.returncode == 1 and "nobody may not call ListWorkloads" in out.stderr
    assert "I1" not in out.stderr  # no grpc core chatter

    out = gxo(
        "ctl", "--server", f"127.0.0.1:{secured.port}", "--ca", str(secured.pki.dir / "alice.pem"),
        "--cert", str(secured.pki.dir / "alice.pem"),
        "--key", str(secured.pki.dir / "alice-key.pem"), "status",
    )  # fmt: skip
    assert out.returncode == 3 and "daemon's certificate is not trusted" in out.stderr

    out = gxo("ctl", "--server", f"127.0.0.1:{free_port()}", "--cert", "x", "--key", "y", "status")
    assert out.returncode == 2 and "--cert x: cannot read" in out.stderr

    out = gxo("ctl", "--server", f"127.0.0.1:{secured.port}", "status")
    assert out.returncode == 2 and "needs this client's --cert and --key" in out.stderr

    # --context from a contexts file (GXO_CONTEXTS; default ~/.gxo/contexts.yaml)
    contexts = tmp_path / "contexts.yaml"
    pkirel = os.path.relpath(secured.pki.dir, tmp_path)
    contexts.write_text(
        "contexts:\n"
        f"  prod: {{ server: '127.0.0.1:{secured.port}', cert: {pkirel}/olga.pem,\n"
        f"          key: {pkirel}/olga-key.pem, ca: {pkirel}/ca.pem }}\n"
        "  broken: { server: 1, cert: a }\n"
    )
    env = {**os.environ, "GXO_CONTEXTS": str(contexts)}
    out = gxo("ctl", "--context", "prod", "remove", "web-shop", env=env)
    assert out.returncode == 1 and "olga may not call RemovePlaybook" in out.stderr
    out = gxo("ctl", "--context", "prod", "status", "web-shop/hello", "-o", "json", env=env)
    assert out.returncode == 0 and json.loads(out.stdout)[0]["workload"] == "hello"
    out = gxo("ctl", "--context", "broken", "status", env=env)
    assert out.returncode == 2 and f"{contexts}:4:" in out.stderr
    out = gxo("ctl", "--context", "nope", "status", env=env)
    assert out.returncode == 2 and "defined: broken, prod" in out.stderr


# -- trust model allowlist --------------------------------------------------------------


def test_allowlist_trust_model(secured: Secured, tmp_path: Path) -> None:
    pki = secured.pki
    folder = Path(tempfile.mkdtemp(prefix="gxoa-", dir="/tmp"))
    allowlist = folder / "allow.txt"
    allowlist.write_text(f"# the admins\n{pki.fingerprint('alice')}  # alice\n\n")
    port = free_port()
    audit = folder / "audit.log"
    d = DaemonProc(folder)
    try:
        d.start(
            *("--listen", f"127.0.0.1:{port}", "--tls-dir", str(pki.dir)),
            *("--client-allowlist", str(allowlist), "--audit-log", str(audit)),
            *("--rbac", str(folder.parent / secured.audit.parent / "rbac.yaml")),
        )
        assert "trust allowlist" in d.logs()
        code, details, _ = call(pki.stub(port, "alice"), "Health", pb.HealthRequest())
        assert code == grpc.StatusCode.OK, details
        # vera: a good certificate of the same CA, not listed → refused in the handshake
        for method, request in (
            ("Health", pb.HealthRequest()),
            ("StreamEvents", pb.StreamEventsRequest(tail=1)),
        ):
            code, details, _ = call(pki.stub(port, "vera"), method, request, timeout=5)
            assert code in REFUSED, (method, details)
        deadline = time.monotonic() + 5
        while "not in --client-allowlist" not in audit.read_text():
            assert time.monotonic() < deadline, audit.read_text()
            time.sleep(0.05)
        refused = [a for a in _audit(audit) if not a["allowed"]]
        assert refused[0]["identity"] == "vera" and refused[0]["method"] == "-"
        assert refused[0]["fingerprint"] == pki.fingerprint("vera")
    finally:
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


# -- start-up refusals and the local identity ---------------------------------------------


def test_startup_refusals(tmp_path: Path) -> None:
    sock = str(tmp_path / "d.sock")
    state = f"sqlite:///{tmp_path / 's.db'}"
    base = ["daemon", "--socket", sock, "--state", state]

    out = gxo(*base, "--listen", "127.0.0.1:7443")
    assert out.returncode == 2 and "needs mutual TLS" in out.stderr, out.stderr
    assert "--tls-cert, --tls-key, --client-ca" in out.stderr

    out = gxo(*base, "--tls-dir", str(tmp_path))
    assert out.returncode == 2 and "--tls-dir only apply with --listen" in out.stderr

    out = gxo(*base, "--listen", "nohost", "--tls-dir", str(tmp_path))
    assert out.returncode == 2 and "expected HOST:PORT" in out.stderr

    rbac = tmp_path / "rbac.yaml"
    rbac.write_text("subjects:\n  - { cn: a, roles: [admin] }\n  - { cn: b, roles: [chef] }\n")
    out = gxo(*base, "--rbac", str(rbac))
    assert out.returncode == 2 and f"{rbac}:3: unknown role 'chef'" in out.stderr, out.stderr

    rbac.write_text("roles:\n  r: { methods: [ApplyPlaybook, Reboot] }\n")
    out = gxo(*base, "--rbac", str(rbac))
    assert out.returncode == 2 and f"{rbac}:2: role 'r': unknown method 'Reboot'" in out.stderr

    pki = Pki(tmp_path / "pki")
    bad = tmp_path / "allow.txt"
    bad.write_text("# ok\nsha256:abc\n")
    out = gxo(*base, "--listen", "127.0.0.1:7443", "--tls-dir", str(pki.dir),
              "--client-allowlist", str(bad))  # fmt: skip
    assert out.returncode == 2 and f"{bad}:2: expected a certificate fingerprint" in out.stderr

    (tmp_path / "junk.pem").write_text("not a certificate")
    out = gxo(*base, "--listen", "127.0.0.1:7443", "--tls-dir", str(pki.dir),
              "--client-ca", str(tmp_path / "junk.pem"))  # fmt: skip
    assert out.returncode == 2 and "--client-ca" in out.stderr and "Traceback" not in out.stderr
    assert not Path(sock).exists()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        out = gxo(*base, "--listen", busy, "--tls-dir", str(pki.dir))
    assert out.returncode == 2 and f"--listen {busy}: cannot listen" in out.stderr, out.stderr
    assert not Path(sock).exists()  # the unix socket it had opened is gone again
    assert not list(tmp_path.glob(".gxo-tls-*"))  # nor the relay's directory


def test_local_identity_roles(daemon: DaemonProc, tmp_path: Path) -> None:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text("subjects:\n  - { cn: ops, roles: [viewer] }\n")
    daemon.start(
        "--rbac", str(rbac), "--local-identity", "ops", "--audit-log", str(tmp_path / "audit.log")
    )
    (tmp_path / "web.gxo.yaml").write_text(WEB)
    out = daemon.ctl("apply", "-f", str(tmp_path / "web.gxo.yaml"))
    assert out.returncode == 1
    assert "permission denied: ops may not call ApplyPlaybook" in out.stderr
    assert daemon.ctl("status").returncode == 0
    # a context may name a unix socket too
    contexts = tmp_path / "contexts.yaml"
    contexts.write_text(f"contexts:\n  here: {{ socket: {daemon.socket} }}\n")
    env = {**os.environ, "GXO_CONTEXTS": str(contexts)}
    out = gxo("ctl", "--context", "here", "apply", "-f", str(tmp_path / "web.gxo.yaml"), env=env)
    assert out.returncode == 1 and "ops may not call ApplyPlaybook" in out.stderr
    lines = _audit_until(
        tmp_path / "audit.log",
        lambda got: sum(a["method"] == "ApplyPlaybook" for a in got) >= 2,
    )
    assert {(a["identity"], a["transport"]) for a in lines} == {("ops", "unix")}
    assert {(a["method"], a["allowed"]) for a in lines} == {
        ("ListWorkloads", True),  # status (and the fixture's readiness probe)
        ("ApplyPlaybook", False),
    }
    lines = [a for a in lines if a["method"] == "ApplyPlaybook"]
    assert lines[1]["target"] == "web-shop" and lines[1]["code"] == "PERMISSION_DENIED"
