"""security_context: escape attempts fail inside the sandbox and are reported clearly;
streams, logs, summaries and errors cross the boundary; timeouts kill the sandbox.

Runs as root on Linux (as CI does); elsewhere the module is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gxo.engine.sandbox.host import cgroup_controller, seccomp_problem

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.geteuid() != 0,
    reason="the sandbox tests run as root on Linux (as CI does)",
)
PY = sys.executable
CI = os.environ.get("CI") == "true"  # there, a host without cgroups or libseccomp fails


def _playbook(workloads: list[dict[str, Any]], default: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"schemaVersion": "1.0.0", "name": "sbx", "workloads": workloads}
    if default is not None:
        doc["security_context"] = default
    return json.dumps(doc)  # JSON is YAML


def _exec(name: str, command: str, sc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "process": {"module": "exec", "params": {"command": "sh", "args": ["-c", command]}},
        "security_context": sc,
        **extra,
    }


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A workspace every user may enter (the setuid test runs as nobody)."""
    path = Path(tempfile.mkdtemp(prefix="gxo-sbx-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _run(run_yaml: Any, text: str, workspace: Path) -> Any:
    return await run_yaml(text, workspace=workspace)


def _state(result: Any, name: str) -> Any:
    return result.states[name]


async def test_host_pids_are_invisible_and_outside_writes_fail(run_yaml, workspace: Path) -> None:
    (workspace / "secret").mkdir()
    (workspace / "secret" / "key.txt").write_text("k")
    outside = workspace / "outside.txt"
    sc = {
        "read_only_root": True,
        "writable_paths": ["out"],
        "hidden_paths": [str(workspace / "secret")],
    }
    text = _playbook(
        [
            _exec("pids", f"ls /proc | grep -c '^[0-9]'; kill -0 {os.getpid()}", sc),
            _exec("inside", "echo ok > out/ok.txt && cat out/ok.txt", sc),
            _exec("outside", f"echo x > {outside}", sc),
            _exec("shm", "echo x > /dev/null && echo x > /dev/shm/gxo-sbx-test", sc),
            _exec("hidden", f"cat {workspace}/secret/key.txt", sc),
        ]
    )
    result = await _run(run_yaml, text, workspace)
    pids = _state(result, "pids")
    assert pids.status.value == "Failed"
    assert "exited with code 1" in pids.error
    assert "No such process" in pids.summary["stderr"]
    assert int(pids.summary["stdout_lines"][0]) < 10  # only the sandbox's own processes
    inside = _state(result, "inside")
    assert inside.status.value == "Completed", inside.error
    assert (workspace / "out" / "ok.txt").read_text() == "ok\n"
    out = _state(result, "outside")
    assert out.status.value == "Failed"
    assert "Read-only file system" in out.summary["stderr"]
    assert not outside.exists()
    shm = _state(result, "shm")  # device nodes work, /dev/shm is read-only too
    assert shm.status.value == "Failed"
    assert "/dev/shm/gxo-sbx-test: Read-only file system" in shm.summary["stderr"]
    assert not Path("/dev/shm/gxo-sbx-test").exists()
    hidden = _state(result, "hidden")
    assert hidden.status.value == "Failed"
    assert "No such file or directory" in hidden.summary["stderr"]


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


async def test_network_none_cannot_reach_a_host_listener(run_yaml, workspace: Path, listener):
    connect = f"{PY} -c \"import socket; socket.create_connection(('127.0.0.1', {listener}), 2)\""
    text = _playbook(
        [
            _exec("none", connect, {"network": "none"}),
            _exec("host", connect, {"network": "host"}),
            _exec("strict", connect, {"seccomp": "strict"}),
        ]
    )
    result = await _run(run_yaml, text, workspace)
    none = _state(result, "none")
    assert none.status.value == "Failed"
    assert "ConnectionRefusedError" in none.summary["stderr"]
    assert _state(result, "host").status.value == "Completed"  # the listener is real
    strict = _state(result, "strict")  # no socket() at all under the strict profile
    assert strict.status.value == "Failed"
    assert "PermissionError: [Errno 1] Operation not permitted" in strict.summary["stderr"]


async def test_user_namespace_and_user_switch(run_yaml, workspace: Path) -> None:
    userns = {"namespaces": ["user", "mount", "pid", "uts"], "read_only_root": True}
    text = _playbook(
        [
            _exec(
                "root_in_userns",
                "id -u; cat /proc/self/uid_map; ls /proc | grep -c '^[0-9]'",
                userns,
            ),
            _exec("nobody", "id -un", {**userns, "user": "nobody", "seccomp": "strict"}),
        ]
    )
    result = await _run(run_yaml, text, workspace)
    root = _state(result, "root_in_userns")
    assert root.status.value == "Completed", root.error
    uid, mapping, count = root.summary["stdout_lines"]
    assert uid == "0" and mapping.split() == ["0", "0", "4294967295"] and int(count) < 10
    assert _state(result, "nobody").summary["stdout"] == "nobody"


@pytest.mark.skipif(
    isinstance(cgroup_controller("memory"), str) and not CI, reason="no memory cgroup"
)
async def test_memory_limit_kills_and_says_so(run_yaml, workspace: Path) -> None:
    hog = f"{PY} -c \"b = b'x' * (600 << 20); print(len(b))\""
    text = _playbook([_exec("hog", hog, {"limits": {"memory": "160Mi"}})])
    result = await _run(run_yaml, text, workspace)
    hog_state = _state(result, "hog")
    assert hog_state.status.value == "Failed"
    assert hog_state.error.endswith("memory limit 160Mi exceeded")


@pytest.mark.skipif(isinstance(cgroup_controller("pids"), str) and not CI, reason="no pids cgroup")
async def test_fork_bomb_is_stopped_by_pids(run_yaml, workspace: Path) -> None:
    bomb = "for i in $(seq 200); do sleep 30 & done; wait"
    text = _playbook([_exec("bomb", bomb, {"limits": {"pids": 24}}, timeout="20s")])
    result = await _run(run_yaml, text, workspace)
    bomb_state = _state(result, "bomb")
    assert bomb_state.status.value == "Failed"
    assert "fork" in bomb_state.summary["stderr"].lower()
    assert not _leftover("sleep 30")


def _leftover(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read().replace(b"\0", b" "):
                        found.append(int(entry))
            except OSError:
                pass
    return found


SYSCALLS = (
    "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
    "os.makedirs('m', exist_ok=True); "
    "r1 = libc.mount(b'none', b'm', b'tmpfs', 0, None); e1 = ctypes.get_errno(); "
    "r2 = libc.ptrace(0, 0, 0, 0); e2 = ctypes.get_errno(); "
    "print('mount', r1, os.strerror(e1) if r1 else 'ok'); "
    "print('ptrace', r2, os.strerror(e2) if r2 else 'ok'); "
    "sys.exit(1 if r1 or r2 else 0)"
)


@pytest.mark.skipif(seccomp_problem() is not None and not CI, reason="no libseccomp")
async def test_mount_and_ptrace_are_denied_by_default_seccomp(run_yaml, workspace: Path) -> None:
    script = f'{PY} -c "{SYSCALLS}"'
    text = _playbook(
        [
            _exec("default", script, {"seccomp": "default"}),
            _exec("unconfined", script, {"seccomp": "unconfined"}),
        ]
    )
    result = await _run(run_yaml, text, workspace)
    denied = _state(result, "default")
    assert denied.status.value == "Failed"
    assert denied.summary["stdout_lines"] == [
        "mount -1 Operation not permitted",
        "ptrace -1 Operation not permitted",
    ]
    # without the filter the same calls work (root in its own mount namespace)
    allowed = _state(result, "unconfined")
    assert allowed.status.value == "Completed", allowed.summary


@pytest.fixture
def setuid_id(workspace: Path) -> Path:
    helper = workspace / "id-suid"
    shutil.copy("/usr/bin/id", helper)
    os.chown(helper, 0, 0)
    helper.chmod(0o755 | stat.S_ISUID)
    return helper


async def test_setuid_binary_gains_nothing_under_no_new_privileges(
    run_yaml, workspace: Path, setuid_id: Path
) -> None:
    check = f'test "$({setuid_id} -u)" = 0 && echo root || {{ {setuid_id}; exit 1; }}'
    nobody = {"user": "nobody", "capabilities": {"drop": ["ALL"]}}
    text = _playbook(
        [
            _exec("nnp", check, {**nobody, "no_new_privileges": True}),
            _exec("without", check, {**nobody, "no_new_privileges": False}),
        ]
    )
    result = await _run(run_yaml, text, workspace)
    nnp = _state(result, "nnp")
    assert nnp.status.value == "Failed", nnp.error
    assert nnp.summary is not None, nnp.error
    assert "euid=0" not in nnp.summary["stdout"]
    assert "uid=65534" in nnp.summary["stdout"]
    # the control: the same helper without no_new_privileges does become root
    assert _state(result, "without").summary["stdout"] == "root"


async def test_streams_cross_the_boundary_with_back_pressure(run_yaml, workspace: Path) -> None:
    items = [{"n": i} for i in range(2000)]
    text = _playbook(
        [
            {
                "name": "gen",
                "process": {"module": "data:generate_from_list", "params": {"items": items}},
            },
            {
                "name": "mid",
                "process": {"module": "passthrough", "params": {}},
                "stream_inputs": ["gen"],
                "security_context": {"seccomp": "strict"},
            },
            {
                "name": "sum",
                "process": {
                    "module": "data:aggregate",
                    "params": {
                        "aggregate_fields": [{"name": "total", "op": "sum", "source_field": "n"}]
                    },
                },
                "stream_inputs": ["mid"],
                "register": "total",
            },
        ]
    )
    text = text.replace('"workloads"', '"channel_policy": {"buffer_size": 4}, "workloads"', 1)
    result = await _run(run_yaml, text, workspace)
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    mid = _state(result, "mid")
    assert (mid.records_in, mid.records_out) == (2000, 2000)
    assert json.dumps(_state(result, "sum").summary).count(str(sum(range(2000)))) == 1


async def test_timeout_kills_the_whole_sandbox(run_yaml, workspace: Path) -> None:
    marker = "sleep 41.5"
    text = _playbook([_exec("slow", f"{marker} & {marker}", {"network": "none"}, timeout="1s")])
    result = await _run(run_yaml, text, workspace)
    slow = _state(result, "slow")
    assert slow.status.value == "Failed"
    assert "timed out after 1s" in slow.error
    assert not _leftover(marker)


async def test_errors_logs_and_playbook_default(run_yaml, workspace: Path) -> None:
    text = _playbook(
        [
            _exec("logs", "echo to-the-log; echo oops >&2; exit 3", {"seccomp": "unconfined"}),
            _exec("inherits", "hostname", {}),
            _exec(
                "caps",
                "grep CapEff /proc/self/status; id -u",
                {"user": "0:0", "capabilities": {"drop": ["SYS_ADMIN", "NET_RAW"], "add": []}},
            ),
        ],
        default={"namespaces": ["uts", "mount", "pid"]},
    )
    result = await _run(run_yaml, text, workspace)
    logs = _state(result, "logs")
    assert logs.status.value == "Failed"
    assert "exited with code 3" in logs.error
    lines = [line for _, _, line in logs.logs]
    assert "to-the-log" in lines and "oops" in lines
    assert _state(result, "inherits").summary["stdout"] == "gxo-sandbox"
    caps = _state(result, "caps")
    assert caps.status.value == "Completed", caps.error
    eff, uid = caps.summary["stdout_lines"]
    effective = int(eff.split()[1], 16)
    assert not effective & (1 << 21) and not effective & (1 << 13)  # SYS_ADMIN, NET_RAW gone
    assert effective & 1 and uid == "0"  # CHOWN kept


async def test_templates_counters_and_upstream_failure(run_yaml, workspace: Path) -> None:
    sc = {"namespaces": ["uts", "ipc"]}
    text = _playbook(
        [
            {
                "name": "gen",
                "process": {
                    "module": "data:generate_from_list",
                    "params": {"items": [{"n": i} for i in range(10)]},
                },
            },
            {
                "name": "double",
                "process": {
                    "module": "data:map",
                    "params": {"fields": {"n2": "{{ record.n * factor }}"}, "keep": True},
                },
                "stream_inputs": ["gen"],
                "security_context": sc,
            },
            {
                "name": "odd",
                "process": {"module": "data:filter", "params": {"condition": "record.n2 > 10"}},
                "stream_inputs": ["double"],
                "security_context": sc,
            },
            {
                "name": "sum",
                "process": {
                    "module": "data:aggregate",
                    "params": {
                        "aggregate_fields": [{"name": "total", "op": "sum", "source_field": "n2"}]
                    },
                },
                "stream_inputs": ["odd"],
            },
            {
                "name": "broken",
                "process": {
                    "module": "data:map",
                    "params": {"fields": {"x": "{{ record.missing.deep }}"}},
                },
                "stream_inputs": ["gen"],
            },
            {
                "name": "after_broken",
                "process": {"module": "passthrough", "params": {}},
                "stream_inputs": ["broken"],
                "security_context": sc,
            },
            {
                "name": "signal",
                "process": {"module": "control:wait_for_signal", "params": {"prompt": "go?"}},
                "security_context": sc,
            },
            _exec("big", "head -c 3000000 /dev/zero > big.bin", {"limits": {"file_size": "1Mi"}}),
        ]
    )
    text = text.replace('"workloads"', '"vars": {"factor": 3}, "workloads"', 1)
    result = await _run(run_yaml, text, workspace)
    assert _state(result, "double").records_out == 10
    odd = _state(result, "odd")
    assert (odd.records_in, odd.records_out) == (10, 6)
    assert str(sum(3 * n for n in range(10) if 3 * n > 10)) in json.dumps(
        _state(result, "sum").summary
    )
    after = _state(result, "after_broken")
    assert after.status.value == "Skipped" and after.blocked
    signal_state = _state(result, "signal")
    assert signal_state.status.value == "Failed"
    assert "acts on the engine and cannot run in a sandbox" in signal_state.error
    big = _state(result, "big")
    assert big.status.value == "Failed"
    assert "File size limit exceeded" in big.summary["stderr"]
    assert (workspace / "big.bin").stat().st_size == 1024 * 1024


async def test_check_mode_uses_the_modules_declarations(run_yaml, workspace: Path) -> None:
    (workspace / "f.txt").write_text("hi")
    sc = {"namespaces": ["uts", "mount"]}
    read = {"module": "filesystem:read", "params": {"path": "f.txt"}}
    text = _playbook(
        [_exec("cmd", "hostname", sc), {"name": "read", "process": read, "security_context": sc}]
    )
    result = await run_yaml(text, workspace=workspace, check=True)
    assert _state(result, "cmd").status.value == "Skipped"  # exec cannot predict: not run
    read_state = _state(result, "read")  # safe: runs for real, sandboxed
    assert read_state.status.value == "Completed", read_state.error
    assert read_state.summary["content"] == "hi"


async def test_secrets_stay_redacted_across_the_boundary(
    run_yaml, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SBX_TOKEN", "s3cr3t-t0ken-value")
    workload = {
        "name": "leak",
        "process": {
            "module": "exec",
            "params": {"command": "sh", "args": ["-c", "echo {{ secret('SBX_TOKEN') }}; exit 5"]},
        },
        "security_context": {"namespaces": ["uts"]},
    }
    result = await _run(run_yaml, _playbook([workload]), workspace)
    leak = _state(result, "leak")
    assert leak.status.value == "Failed"
    everything = json.dumps([leak.error, leak.summary, [line for _, _, line in leak.logs]])
    assert "s3cr3t-t0ken-value" not in everything
    assert "***" in leak.summary["stdout"] or "REDACTED" in leak.summary["stdout"].upper()


@pytest.fixture
def probe_module() -> None:
    """Registered per test (conftest removes modules registered by tests after each)."""
    import importlib

    from gxo.modules.base import REGISTRY

    name = "tests.engine.sandbox_probe_module"
    if name not in sys.modules:
        importlib.import_module(name)
    elif REGISTRY.get("tests:sandbox_probe") is None:
        importlib.reload(sys.modules[name])


async def test_a_registered_module_runs_sandboxed_with_the_context_api(
    run_yaml, workspace: Path, probe_module: None
) -> None:
    workload = {
        "name": "probe",
        "process": {"module": "tests:sandbox_probe", "params": {"greeting": "hello"}},
        "security_context": {"namespaces": ["uts", "pid", "mount"]},
    }
    text = _playbook([workload]).replace('"workloads"', '"vars": {"factor": 3}, "workloads"', 1)
    result = await _run(run_yaml, text, workspace)
    probe = _state(result, "probe")
    assert probe.status.value == "Completed", probe.error
    summary = probe.summary
    assert (summary["pid"], summary["host"]) == (1, "gxo-sandbox")
    assert (summary["rendered"], summary["truthy"], summary["state"]) == (6, True, 3)
    assert "input_from(producer) is not available in a sandbox" in summary["refused"]
    assert summary["workspace"] == str(workspace.resolve()) or summary["workspace"] == str(
        workspace
    )
    assert summary["run_id"] == result.run_id
    assert probe.counters == {"probes": 1}
    assert "hello from gxo-sandbox" in [line for _, _, line in probe.logs]


async def test_a_sandboxed_command_its_status_priority_and_the_waiting_sandboxes(
    run_yaml, workspace: Path
) -> None:
    """``exec`` with a pid namespace: the command is started by the sandbox's init (pid
    1) and runs at the engine's priority, whether its sandbox was made for it (the first
    of a set of namespaces) or was waiting at low priority (the next ones, from the
    zygote's pool, more sets than it keeps); its status (a signal: negative), stdin and
    a missing command come back as without a sandbox; nothing it left behind survives
    (with a pid namespace the kernel ends it, without one the init, their subreaper)."""
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    probe = "echo $$; cut -d' ' -f19 /proc/self/stat; cut -d' ' -f19 /proc/$PPID/stat; "
    probe += "ls /proc/self/fd | tr '\\n' ' '"  # 0, 1, 2 and ls's own: no pipe of GXO's
    sets = [{}, {"namespaces": ["uts"]}, {"namespaces": ["ipc", "mount", "pid"]}]
    sets += [{"network": "none"}, {"namespaces": ["mount", "pid"]}]
    workloads = []
    for i, sc in enumerate(sets * 2):
        workloads.append(_exec(f"p{i}", probe, sc, **({"depends_on": [f"p{i - 1}"]} if i else {})))
    marker, other, escaped = "sleep 42.5", "sleep 43.5", "sleep 45.5"
    minimal = {"namespaces": [], "seccomp": "unconfined"}  # no pid namespace: the init kills
    workloads += [
        _exec("term", f"{marker} & kill -TERM $$", {}, depends_on=[f"p{len(workloads) - 1}"]),
        _exec("left", f"{other} >/dev/null 2>&1 & (setsid {escaped} >/dev/null 2>&1 &)", minimal),
        {
            "name": "stdin",
            "process": {"module": "exec", "params": {"command": "cat", "stdin": "fed\n"}},
            "security_context": {},
        },
        {
            "name": "missing",
            "process": {"module": "exec", "params": {"command": "/no/such/command"}},
            "security_context": {},
        },
    ]
    result = await _run(run_yaml, _playbook(workloads), workspace)
    for i in range(len(sets) * 2):
        state = _state(result, f"p{i}")
        assert state.status.value == "Completed", (i, state.error)
        pid, own, parent, fds = state.summary["stdout_lines"]
        assert fds.split() == ["0", "1", "2", "3"], (i, fds)
        unshared = "pid" in (sets[i % len(sets)].get("namespaces") or ["pid"])
        assert pid == "2" or not unshared, (i, pid)
        assert (int(own), int(parent)) == (nice, nice), i
    term = _state(result, "term")
    assert term.status.value == "Failed" and "exited with code -15" in term.error
    assert not _leftover(marker)
    assert _state(result, "left").status.value == "Completed"
    assert not _leftover(other) and not _leftover(escaped)  # a double fork, a new session
    assert _state(result, "stdin").summary["stdout"] == "fed"
    assert _state(result, "missing").error == "command not found: /no/such/command"


async def test_a_sandbox_asked_for_by_a_cancelled_workload_is_killed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancelled while the zygote makes the sandbox (its setup line may already be in
    its pipe): the sandbox's process group is killed before the cancel goes on."""
    import asyncio
    import subprocess
    import time

    from gxo.engine.sandbox import zygote

    made: list[subprocess.Popen[bytes]] = []

    def make() -> tuple[int, int]:
        time.sleep(0.2)  # the zygote forking while the workload is cancelled
        made.append(subprocess.Popen(["sleep", "44.5"], start_new_session=True))
        return made[0].pid, -1

    async def slow_request(module: str, namespaces: list[str], fds: list[int]) -> tuple[int, int]:
        return await asyncio.to_thread(make)

    monkeypatch.setattr(zygote, "_request", slow_request)
    task = asyncio.create_task(zygote.ask("exec", [], []))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert made and made[0].wait(timeout=5) == -9
