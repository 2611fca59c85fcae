"""The daemon's core in-process (no gRPC): diff, variables, feeds, socket paths, log redaction."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from gxo.daemon.core import NOT_AVAILABLE, Daemon, DaemonError
from gxo.daemon.feeds import Feed
from gxo.daemon.logsetup import redact, setup_logging
from gxo.daemon.paths import default_socket
from gxo.daemon.server import expand_state_url
from gxo.state.sql import SqlState

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: core
vars: { who: world }
workloads:
  - name: a
    process: { module: control:identity, params: { greeting: "hello {{ who }}" } }
    register: ra
  - name: b
    process: { module: control:identity, params: { seen: "{{ ra.greeting }}" } }
    register: rb
"""


@pytest.fixture
async def daemon(tmp_path: Path):
    state = SqlState(f"sqlite:///{tmp_path / 'state.db'}")
    d = Daemon(state)
    await d.restore()
    yield d
    await d.shutdown(5)
    state.close()


async def settle(d: Daemon) -> None:
    for _ in range(200):
        if not d.instances:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("instances did not finish")


async def test_apply_diff_results_and_variables(daemon: Daemon, tmp_path: Path) -> None:
    path = str(tmp_path / "core.gxo.yaml")
    first = await daemon.apply(PLAYBOOK, path, {})
    assert first["added"] == ["a", "b"] and first["started"] == ["a", "b"]
    await settle(daemon)
    assert daemon.state.results("core").get("rb") == {"seen": "hello world"}
    rows = {r["workload"]: r for r in await daemon.list_workloads()}
    assert rows["a"]["status"] == rows["b"]["status"] == "Completed"

    # Only b changed: only b runs, and it reads a's result from the state.
    second = await daemon.apply(PLAYBOOK.replace("seen:", "saw:"), path, {})
    assert (second["changed"], second["unchanged"], second["started"]) == (["b"], ["a"], ["b"])
    await settle(daemon)
    assert daemon.state.results("core").get("rb") == {"saw": "hello world"}
    assert len(await daemon.runs("a")) == 1 and len(await daemon.runs("b")) == 2

    # A -e value may change what any workload does: every workload counts as changed.
    third = await daemon.apply(PLAYBOOK.replace("seen:", "saw:"), path, {"who": "you"})
    assert sorted(third["changed"]) == ["a", "b"]
    await settle(daemon)
    assert daemon.state.results("core").get("rb") == {"saw": "hello you"}


async def test_bad_apply_changes_nothing(daemon: Daemon, tmp_path: Path) -> None:
    path = str(tmp_path / "core.gxo.yaml")
    await daemon.apply(PLAYBOOK, path, {})
    await settle(daemon)
    record = daemon.state.get_playbook("core")
    with pytest.raises(DaemonError) as err:
        await daemon.apply(PLAYBOOK.replace("register: rb", "register: ra"), path, {})
    assert err.value.code == "INVALID_ARGUMENT"
    assert err.value.message.startswith(f"{path}:")
    assert daemon.state.get_playbook("core") == record
    assert daemon.playbooks["core"].source == PLAYBOOK


async def test_restore_after_restart_and_pending_lifecycles(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    text = PLAYBOOK + (
        "  - name: svc\n    lifecycle: { policy: supervise }\n"
        "    process: { module: control:identity, params: {} }\n"
    )
    state = SqlState(url)
    d = Daemon(state)
    await d.apply(text, str(tmp_path / "p.gxo.yaml"), {})
    await settle(d)
    state.start_run("core", "a", "crashed-run", "2026-01-01T00:00:00Z")  # as if killed mid-run
    await d.shutdown(5)
    state.close()

    state = SqlState(url)
    d = Daemon(state)
    await d.restore()
    try:
        assert set(d.playbooks) == {"core"}
        a = await d.status("a")
        assert (a["status"], a["reason"]) == ("Failed", "daemon restarted")
        assert (await d.status("core/svc"))["reason"] == NOT_AVAILABLE
        with pytest.raises(DaemonError) as err:
            await d.start("svc")
        assert err.value.code == "FAILED_PRECONDITION"
    finally:
        await d.shutdown(5)
        state.close()


async def test_ambiguous_and_unknown_names(daemon: Daemon, tmp_path: Path) -> None:
    await daemon.apply(PLAYBOOK, str(tmp_path / "1.gxo.yaml"), {})
    await daemon.apply(
        PLAYBOOK.replace("name: core", "name: other"), str(tmp_path / "2.gxo.yaml"), {}
    )
    await settle(daemon)
    with pytest.raises(DaemonError) as err:
        daemon.resolve("a")
    assert err.value.code == "FAILED_PRECONDITION" and "core/a, other/a" in err.value.message
    assert daemon.resolve("other/a") == ("other", "a")
    for ref in ("zz", "core/zz", "nope/a"):
        with pytest.raises(DaemonError) as err:
            daemon.resolve(ref)
        assert err.value.code == "NOT_FOUND"


async def test_feed_tail_then_follow_without_duplicates() -> None:
    feed = Feed(size=3)
    for i in range(1, 6):
        feed.push({"seq": i})
    got: list[int] = []

    async def reader() -> None:
        async for entry in feed.read(lambda e: True, tail=2, follow=True):
            got.append(entry["seq"])

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.01)
    feed.push({"seq": 6})
    await asyncio.sleep(0.01)
    feed.close()
    await asyncio.wait_for(task, 2)
    assert got == [4, 5, 6]


def test_socket_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GXO_SOCKET", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert default_socket() == Path.home() / ".gxo" / "daemon.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_socket() == tmp_path / "gxo" / "daemon.sock"
    monkeypatch.setenv("GXO_SOCKET", str(tmp_path / "env.sock"))
    assert default_socket() == tmp_path / "env.sock"
    assert default_socket(tmp_path / "arg.sock") == tmp_path / "arg.sock"
    assert expand_state_url("sqlite:///~/.gxo/state.db") == f"sqlite:///{Path.home()}/.gxo/state.db"


def test_daemon_logs_redact_url_passwords(capsys: pytest.CaptureFixture[str]) -> None:
    assert redact("state postgresql://gxo:s3cret@db/x") == "state postgresql://gxo:[REDACTED]@db/x"
    setup_logging("info", "json")
    try:
        logging.getLogger("gxo.daemon").info("open %s", "postgresql://u:hunter2@h/db")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["level"] == "info" and "hunter2" not in line["msg"]
        assert line["msg"] == "open postgresql://u:[REDACTED]@h/db"
    finally:
        logging.getLogger().handlers.clear()


async def test_instance_members_wait_and_stream_producers_rerun(
    daemon: Daemon, tmp_path: Path
) -> None:
    text = PLAYBOOK + (
        "  - name: svc\n    lifecycle: { policy: supervise }\n"
        "    process: { module: control:identity, params: {} }\n    register: rs\n"
        "  - name: per_tick\n"
        "    process: { module: control:identity, params: { x: '{{ rs }}' } }\n"
        "  - name: gen\n"
        "    process: { module: data:generate_from_list, params: { items: [{n: 1}, {n: 2}] } }\n"
        "  - name: double\n    stream_inputs: [gen]\n"
        "    process: { module: data:map, params: { fields: { n: '{{ record.n * 2 }}' } } }\n"
    )
    path = str(tmp_path / "p.gxo.yaml")
    first = await daemon.apply(text, path, {})
    # per_tick runs in svc's instances, not at apply; svc is its reconciler's business.
    assert (
        "svc" not in first["started"]
        and "per_tick" not in first["started"]
        and {"a", "b", "gen", "double"} <= set(first["started"])
    )
    await settle(daemon)
    tick = await daemon.status("per_tick")
    assert (tick["status"], tick["reason"]) == ("Pending", "runs in the instances of svc")
    assert (await daemon.status("double"))["status"] == "Completed"

    # Only the consumer changed; its producer runs again with it (records are not state).
    second = await daemon.apply(text.replace("record.n * 2", "record.n * 3"), path, {})
    assert second["changed"] == ["double"] and second["started"] == ["gen", "double"]
    await settle(daemon)
    assert len(await daemon.runs("gen")) == 2
    last = (await daemon.runs("double"))[0]
    assert last["status"] == "Completed"
    assert last["report"]["workloads"]["double"]["records_in"] == 2


async def test_run_instance_for_reconcilers(daemon: Daemon, tmp_path: Path) -> None:
    text = PLAYBOOK + (
        "  - name: svc\n    lifecycle: { policy: supervise }\n"
        "    process: { module: control:identity, params: { v: '{{ ra.greeting }}' } }\n"
        "    register: rs\n"
        "  - name: per_tick\n"
        "    process: { module: control:identity, params: { x: '{{ rs.v }}!' } }\n"
        "    register: rt\n"
        "  - name: slow\n    lifecycle: { policy: supervise }\n"
        "    process: { module: exec, params: { command: sleep, args: ['60'] } }\n"
    )
    await daemon.apply(text, str(tmp_path / "p.gxo.yaml"), {})
    await settle(daemon)
    applied = daemon.playbooks["core"]
    outcome = await daemon.run_instance(applied, "svc", run_id="tick1", reason="test")
    assert (outcome.status, outcome.run_id, outcome.last_exit) == ("Completed", "tick1", 0)
    assert daemon.state.results("core").get("rt") == {"x": "hello world!"}
    assert [r["run_id"] for r in await daemon.runs("per_tick")] == ["tick1.per_tick"]
    assert (await daemon.status("svc"))["status"] == "Completed"

    # Cancelling the caller stops the instance: its rows say Stopped.
    task = asyncio.create_task(daemon.run_instance(applied, "slow", run_id="s1", reason="test"))
    for _ in range(100):
        if (await daemon.status("slow"))["status"] == "Running":
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await settle(daemon)
    run = (await daemon.runs("slow"))[0]
    assert (run["run_id"], run["status"]) == ("s1.slow", "Stopped")


def test_socket_directory_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gxo.daemon.server import prepare_socket

    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o1777)  # like /tmp: a directory the user named keeps its mode
    prepare_socket(shared / "d.sock")
    assert shared.stat().st_mode & 0o7777 == 0o1777
    fresh = tmp_path / "new" / "gxo"
    prepare_socket(fresh / "d.sock")
    assert fresh.stat().st_mode & 0o777 == 0o700
    home = Path.home() / ".gxo"
    home.mkdir(mode=0o755, exist_ok=True)
    home.chmod(0o755)
    prepare_socket(home / "daemon.sock")  # the default directory is ours: tightened
    assert home.stat().st_mode & 0o777 == 0o700


def test_a_file_that_is_not_a_socket_is_never_removed(tmp_path: Path) -> None:
    from gxo.daemon.server import StartupError, prepare_socket

    precious = tmp_path / "notes.txt"
    precious.write_text("keep me")
    with pytest.raises(StartupError) as err:
        prepare_socket(precious)
    assert err.value.exit_code == 2 and "not a socket" in str(err.value)
    assert precious.read_text() == "keep me"


async def test_status_writer_persists_reconciler_statuses_in_order(
    daemon: Daemon, tmp_path: Path
) -> None:
    await daemon.apply(PLAYBOOK, str(tmp_path / "p.gxo.yaml"), {})
    await settle(daemon)
    on_status = daemon.status_writer("core", "a")
    for n in range(20):
        on_status({"status": "Restarting", "reason": None, "restarts": n, "next_run": None})
    on_status({"status": "Failed", "reason": "crash loop", "restarts": 20})
    for _ in range(100):
        stored = daemon.state.get_status("core", "a")
        if stored["status"] == "Failed":
            break
        await asyncio.sleep(0.02)
    assert (stored["status"], stored["restarts"], stored["reason"]) == ("Failed", 20, "crash loop")


async def test_successive_reconcilers_statuses_land_in_order_and_die_with_remove(
    daemon: Daemon, tmp_path: Path
) -> None:
    await daemon.apply(PLAYBOOK, str(tmp_path / "p.gxo.yaml"), {})
    await settle(daemon)
    for n in range(30):  # an old reconciler's last word, then the new one's first
        old, new = daemon.status_writer("core", "a"), daemon.status_writer("core", "a")
        old({"status": "Stopped", "reason": "stopped by request", "restarts": n})
        new({"status": "Running", "reason": None, "restarts": 0})
    await daemon._flush_statuses("core")
    assert daemon.state.get_status("core", "a")["status"] == "Running"

    daemon.status_writer("core", "b")({"status": "Restarting", "restarts": 1})
    await daemon.remove("core")
    await asyncio.sleep(0.1)
    assert daemon.state.list_statuses("core") == []
