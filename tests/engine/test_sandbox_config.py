"""security_context fails closed: unknown fields, inconsistent settings and whatever this
host cannot enforce are load-time errors naming the field; playbook-level defaults merge."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from gxo.config import security
from gxo.config.loader import load_playbook
from gxo.config.security import SecurityContext, format_size, merge, parse_size
from gxo.engine.sandbox import host
from gxo.errors import GxoError, PlaybookValidationError

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


@pytest.fixture
def clean_probes():
    probes = (host.cgroup_controller, host.seccomp_problem)
    for probe in probes:
        probe.cache_clear()
    yield
    for probe in probes:
        probe.cache_clear()


def test_sizes() -> None:
    assert parse_size("256Mi") == 256 * 1024**2
    assert parse_size("1Gi") == 1024**3
    assert parse_size("100M") == 100 * 1000**2
    assert parse_size("12 GB") == 12 * 1000**3
    assert parse_size("4KiB") == 4096
    assert parse_size(4096) == 4096
    assert parse_size("77") == 77
    for bad in ("lots", "-1Mi", "1.5Gi", "0", 0, True, "1Xi"):
        with pytest.raises(ValueError):
            parse_size(bad)  # type: ignore[arg-type]
    assert format_size("256Mi") == "256Mi"
    assert format_size(1024) == "1024 bytes"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"bogus": 1}, "Extra inputs are not permitted"),
        ({"namespaces": ["pid", "pid", "mount"]}, "a namespace is listed twice"),
        ({"namespaces": ["cgroup"]}, "Input should be"),
        ({"writable_paths": ["/etc"], "read_only_root": True}, "must be a path inside"),
        ({"writable_paths": ["a/../../b"], "read_only_root": True}, "must be a path inside"),
        ({"writable_paths": ["out"]}, "only makes sense with read_only_root"),
        ({"hidden_paths": ["relative"]}, "must be an absolute path other than /"),
        ({"hidden_paths": ["/"]}, "must be an absolute path other than /"),
        ({"network": "none", "namespaces": ["pid", "mount"]}, "needs the 'net' namespace"),
        ({"read_only_root": True, "namespaces": []}, "need the 'mount' namespace"),
        ({"namespaces": ["pid"]}, "the 'pid' namespace needs the 'mount' namespace"),
        ({"network": "wifi"}, "Input should be 'none' or 'host'"),
        ({"seccomp": "loose"}, "Input should be"),
        ({"limits": {"memory": "lots"}}, "invalid size 'lots'"),
        ({"limits": {"pids": 0}}, "greater than or equal to 1"),
        ({"limits": {"swap": 1}}, "Extra inputs are not permitted"),
        ({"capabilities": {"drop": ["CAP_TELEPORT"]}}, "unknown capability 'CAP_TELEPORT'"),
    ],
)
def test_invalid_contexts_are_refused(data: dict, says: str) -> None:
    with pytest.raises(ValidationError) as info:
        SecurityContext.model_validate(data)
    assert says in str(info.value)


def test_defaults_and_effective_namespaces() -> None:
    sc = SecurityContext.model_validate({})
    assert sc.effective_namespaces() == ["mount", "pid", "ipc", "uts"]
    assert (sc.seccomp, sc.no_new_privileges, sc.network) == ("default", True, "host")
    none = SecurityContext.model_validate({"network": "none"})
    assert none.effective_namespaces() == ["mount", "pid", "ipc", "uts", "net"]
    caps = SecurityContext.model_validate({"capabilities": {"drop": ["all", "cap_net_raw"]}})
    assert caps.capabilities is not None
    assert caps.capabilities.drop == ["ALL", "NET_RAW"]


def test_merge_workload_over_playbook_default() -> None:
    default = SecurityContext.model_validate(
        {"network": "none", "limits": {"memory": "256Mi", "pids": 64}, "seccomp": "strict"}
    )
    own = SecurityContext.model_validate({"limits": {"pids": 10}, "seccomp": "default"})
    merged = merge(default, own)
    assert merged is not None
    assert merged.network == "none"
    assert merged.seccomp == "default"
    assert merged.limits is not None
    assert (merged.limits.memory, merged.limits.pids) == ("256Mi", 10)
    assert merge(None, own) is own
    assert merge(default, None) is default
    assert merge(None, None) is None


def test_playbook_level_default_applies_to_every_workload() -> None:
    loaded = load_playbook(
        text="""
schemaVersion: "1.0.0"
name: p
security_context: { network: none, limits: { pids: 64 } }
workloads:
  - name: a
    process: { module: exec, params: { command: id } }
  - name: b
    process: { module: exec, params: { command: id } }
    security_context: { limits: { pids: 8 }, namespaces: [net, uts] }
""",
        name="p.yaml",
    )
    a, b = loaded.playbook.workloads
    assert a.security_context is not None and b.security_context is not None
    assert a.security_context.network == "none"
    assert a.security_context.limits is not None and a.security_context.limits.pids == 64
    assert b.security_context.effective_namespaces() == ["net", "uts"]
    assert b.security_context.limits is not None and b.security_context.limits.pids == 8


def test_load_error_names_the_workload_and_field() -> None:
    with pytest.raises(GxoError) as info:
        load_playbook(
            text="""
schemaVersion: "1.0.0"
name: p
workloads:
  - name: a
    process: { module: exec, params: { command: id } }
    security_context: { read_only_root: yes, no_such_field: 1 }
""",
            name="p.yaml",
        )
    text = str(info.value)
    assert "workload 'a'" in text and "no_such_field" in text


def _as(monkeypatch: pytest.MonkeyPatch, uid: int, caps: int) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    monkeypatch.setattr(host, "_effective_caps", lambda: caps)


@linux
def test_unprivileged_host_refuses_what_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, 1000, 0)
    with pytest.raises(ValidationError) as info:
        SecurityContext.model_validate({"user": "nobody", "namespaces": ["uts", "ipc"]})
    text = str(info.value)
    assert "cannot be enforced on this host" in text
    assert "namespaces: 'uts' needs root (CAP_SYS_ADMIN) or the 'user' namespace" in text
    assert "user: switching to 'nobody' needs root (gxo runs as uid 1000)" in text


@linux
def test_user_namespace_disabled_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    real_open = open

    def fake_open(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if path == "/proc/sys/user/max_user_namespaces":
            zero = tmp_path / "zero"
            zero.write_text("0\n")
            return real_open(zero, *args, **kwargs)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", fake_open)
    problems = host.problems(
        SecurityContext.model_construct(namespaces=["user"], seccomp="unconfined")
    )
    assert problems == ["namespaces: 'user' is disabled (user.max_user_namespaces = 0)"]


@linux
def test_missing_cgroup_seccomp_and_unknown_user(monkeypatch: pytest.MonkeyPatch, clean_probes):
    monkeypatch.setattr(host, "cgroup_controller", lambda name: f"no {name} here")
    monkeypatch.setattr(host, "seccomp_problem", lambda: "the pyseccomp package is not installed")
    with pytest.raises(ValidationError) as info:
        SecurityContext.model_validate(
            {"limits": {"memory": "256Mi", "pids": 10, "open_files": 64}, "user": "no-such-user-x"}
        )
    text = str(info.value)
    assert (
        "limits.memory: needs a writable cgroup with the memory controller (no memory here)" in text
    )
    assert "limits.pids: needs a writable cgroup with the pids controller (no pids here)" in text
    assert "seccomp: 'default' cannot be applied: the pyseccomp package is not installed" in text
    if os.geteuid() == 0:
        assert "user: no user named 'no-such-user-x' on this host" in text
    assert "open_files" not in text  # an rlimit: always enforceable


@linux
def test_capabilities_add_needs_them(monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, 0, 0)  # root without capabilities
    problems = host.problems(
        SecurityContext.model_construct(
            namespaces=[],
            seccomp="unconfined",
            user="0",
            capabilities=security.Capabilities(drop=["ALL"], add=["NET_ADMIN"]),
        )
    )
    assert "capabilities.add: gxo itself does not hold CAP_NET_ADMIN" in problems
    assert "capabilities.add: cannot keep capabilities for a non-root user" in problems
    assert any(p.startswith("user: switching to '0' needs root") for p in problems)


def test_not_linux_is_refused(monkeypatch: pytest.MonkeyPatch, clean_probes) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert host.problems(SecurityContext.model_construct()) == [
        "security_context: sandboxing needs Linux (namespaces, seccomp, cgroups)"
    ]
    assert host.cgroup_controller("memory") == "cgroups are Linux only"
    assert host.seccomp_problem() == "seccomp is Linux only"


@linux
def test_cgroup_discovery_on_this_host(clean_probes) -> None:
    found = host.cgroup_controller("memory")
    if isinstance(found, str):
        assert "memory" in found or "writable" in found
    else:
        assert found.version in (1, 2) and os.path.isdir(found.parent)
    assert isinstance(host.cgroup_controller("no-such-controller"), str)


def test_require_sandboxed() -> None:
    loaded = load_playbook(
        text="""
schemaVersion: "1.0.0"
name: p
workloads:
  - name: boxed
    process: { module: exec, params: { command: id } }
    security_context: { namespaces: [uts] }
  - name: bare
    process: { module: exec, params: { command: id } }
""",
        name="p.yaml",
    )
    with pytest.raises(PlaybookValidationError) as info:
        security.require_sandboxed(loaded.playbook)
    assert "these workloads have no security_context: bare (" in str(info.value)


def test_the_sandbox_imports_no_front_end() -> None:
    """What the zygote imports (and so every sandbox holds): no textual, prompt_toolkit, typer."""
    import subprocess

    code = (
        "import sys; from gxo.engine.sandbox import child, confine; "
        "import gxo.engine.sandbox.__main__ as main; "
        "from gxo.modules.base import REGISTRY; REGISTRY.get('exec').params_model; "
        "[__import__(n) for n in main.PREIMPORT]; "
        "print(sorted({k.split('.')[0] for k in sys.modules} & {'textual', 'prompt_toolkit', 'typer'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@linux
def test_cgroup_v2_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clean_probes):
    """A unified hierarchy: the controller must be available, the group writable and, for a
    group holding processes, already enabled for its children."""
    group = tmp_path / "system.slice" / "gxo.service"
    group.mkdir(parents=True)
    (group / "cgroup.controllers").write_text("cpu memory pids\n")
    (group / "cgroup.subtree_control").write_text("memory\n")
    monkeypatch.setattr(host, "_mounts", lambda: [(str(tmp_path), "cgroup2", ["rw"])])
    monkeypatch.setattr(host, "_own_groups", lambda: {"": "/system.slice/gxo.service"})
    memory = host.cgroup_controller("memory")
    assert memory == host.CgroupController("memory", 2, str(group))
    pids = host.cgroup_controller("pids")
    assert isinstance(pids, str) and "not enabled for the child groups" in pids
    hugetlb = host.cgroup_controller("hugetlb")
    assert isinstance(hugetlb, str) and "has no hugetlb controller" in hugetlb
