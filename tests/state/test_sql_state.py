"""SqlState's API on SQLite and PostgreSQL (the same tests, parametrised by ``state_url``)."""

from __future__ import annotations

import datetime as dt

import pytest

from gxo.state import Store
from gxo.state.sql import PlaybookRecord, SqlResultStore, SqlState, StateError


def _status(status: str, **extra: object) -> dict[str, object]:
    base = {"status": status, "reason": None, "restarts": 0, "last_exit": None, "next_run": None}
    return {**base, **extra}


# -- playbooks ----------------------------------------------------------------------


def test_playbook_round_trip_and_replace(open_state) -> None:
    state = open_state()
    assert state.get_playbook("web") is None
    state.put_playbook(
        "web",
        source="name: web\n",
        path="/srv/web.yaml",
        checksum="c1",
        variables={"a": [1, {"b": None}]},
    )
    first = state.get_playbook("web")
    assert isinstance(first, PlaybookRecord)
    assert (first.name, first.source, first.path, first.checksum) == (
        "web",
        "name: web\n",
        "/srv/web.yaml",
        "c1",
    )
    assert first.variables == {"a": [1, {"b": None}]}
    assert dt.datetime.fromisoformat(first.applied_at).tzinfo is not None

    state.put_playbook(
        "web", source="name: web2\n", path="/srv/w.yaml", checksum="c2", variables={}
    )
    second = state.get_playbook("web")
    assert (second.source, second.checksum, second.variables) == ("name: web2\n", "c2", {})
    assert second.applied_at >= first.applied_at
    state.put_playbook("api", source="", path="", checksum="c", variables={})
    assert [p.name for p in state.list_playbooks()] == ["api", "web"]


def test_delete_playbook_removes_its_statuses_runs_and_results(open_state) -> None:
    state = open_state()
    for name in ("a", "b"):
        state.put_playbook(name, source="s", path="p", checksum="c", variables={})
        state.set_status(name, "w", _status("Running"))
        state.start_run(name, "w", f"{name}-1", "2026-01-01T00:00:00+00:00")
        state.results(name).set("out", {"n": 1})
    store_a = state.results("a")

    assert state.delete_playbook("a") is True
    assert state.delete_playbook("a") is False
    assert state.get_playbook("a") is None
    assert state.get_status("a", "w") is None
    assert state.get_run("a-1") is None
    assert "out" not in store_a  # the shared cache is dropped too
    assert state.results("a").snapshot() == {}
    # the other playbook is untouched
    assert state.get_status("b", "w")["status"] == "Running"
    assert state.get_run("b-1")["status"] == "Running"
    assert state.results("b").get("out") == {"n": 1}
    assert [p.name for p in state.list_playbooks()] == ["b"]


def test_delete_workload_forgets_status_and_runs_only_of_that_workload(open_state) -> None:
    state = open_state()
    for w in ("x", "y"):
        state.set_status("p", w, _status("Completed"))
        state.start_run("p", w, f"{w}-1", "t")
    state.delete_workload("p", "x")
    assert state.get_status("p", "x") is None and state.list_runs("p", "x") == []
    assert state.get_status("p", "y") is not None and len(state.list_runs("p", "y")) == 1


# -- statuses -----------------------------------------------------------------------


def test_status_upsert_list_and_updated_at(open_state) -> None:
    state = open_state()
    assert state.get_status("p", "w") is None
    given = {**_status("Restarting", restarts=2), "next_run": "2026-01-01T00:00:05+00:00"}
    state.set_status("p", "w", given)
    assert "updated_at" not in given  # the caller's dict is not mutated
    got = state.get_status("p", "w")
    assert (
        got["status"] == "Restarting"
        and got["restarts"] == 2
        and got["next_run"] == "2026-01-01T00:00:05+00:00"
    )
    assert dt.datetime.fromisoformat(got["updated_at"]).tzinfo is not None

    state.set_status("p", "w", {**_status("Running"), "updated_at": "T1"})
    assert state.get_status("p", "w")["updated_at"] == "T1"
    assert state.get_status("p", "w")["status"] == "Running"
    state.set_status("p", "a", _status("Pending"))
    state.set_status("q", "z", _status("Stopped"))
    assert [(p, w, s["status"]) for p, w, s in state.list_statuses()] == [
        ("p", "a", "Pending"),
        ("p", "w", "Running"),
        ("q", "z", "Stopped"),
    ]
    assert [w for _, w, _ in state.list_statuses("q")] == ["z"]
    assert state.list_statuses("missing") == []


# -- runs ---------------------------------------------------------------------------


def test_run_lifecycle_and_newest_first(open_state) -> None:
    state = open_state()
    assert state.get_run("nope") is None
    state.start_run("p", "w", "r1", "2026-01-01T00:00:00+00:00")
    assert state.get_run("r1") == {
        "run_id": "r1",
        "playbook": "p",
        "workload": "w",
        "status": "Running",
        "started_at": "2026-01-01T00:00:00+00:00",
        "ended_at": None,
        "reason": None,
        "report": None,
    }
    report = {"status": "Failed", "workloads": {"w": {"status": "Failed", "summary": {"rc": 1}}}}
    assert state.finish_run("r1", "Failed", "2026-01-01T00:00:01+00:00", report, reason="exit 1")
    run = state.get_run("r1")
    assert (run["status"], run["ended_at"], run["reason"], run["report"]) == (
        "Failed",
        "2026-01-01T00:00:01+00:00",
        "exit 1",
        report,
    )
    # newest first by insertion, not by the callers' clock strings
    state.start_run("p", "w", "r2", "2025-12-31T00:00:00+00:00")
    state.start_run("p", "w", "r3", "2026-01-02T00:00:00+00:00")
    assert [r["run_id"] for r in state.list_runs("p", "w")] == ["r3", "r2", "r1"]
    assert [r["run_id"] for r in state.list_runs("p", "w", limit=2)] == ["r3", "r2"]
    assert state.list_runs("p", "other") == []


def test_finish_of_unknown_run_is_false_and_duplicate_start_is_an_error(open_state) -> None:
    state = open_state()
    assert state.finish_run("ghost", "Completed", "t", {}) is False
    state.start_run("p", "w", "r1", "t")
    with pytest.raises(StateError, match="run 'r1' is already recorded"):
        state.start_run("p", "w2", "r1", "t")
    assert state.get_run("r1")["workload"] == "w"  # the failed insert changed nothing


def test_history_is_bounded_per_workload_and_running_runs_survive(open_state) -> None:
    state = open_state(history_limit=3)
    state.start_run("p", "w", "long", "t")  # stays Running throughout
    for i in range(6):
        state.start_run("p", "w", f"r{i}", "t")
        state.finish_run(f"r{i}", "Completed", "t", {"i": i})
    state.start_run("p", "other", "o1", "t")
    state.finish_run("o1", "Completed", "t", {})
    ids = [r["run_id"] for r in state.list_runs("p", "w", limit=100)]
    assert ids == ["r5", "r4", "r3", "long"]
    assert state.finish_run("long", "Completed", "t", {})
    # once finished, the old run is pruned like any other
    assert [r["run_id"] for r in state.list_runs("p", "w", limit=100)] == ["r5", "r4", "r3"]
    assert [r["run_id"] for r in state.list_runs("p", "other")] == ["o1"]


def test_fail_unfinished_runs_after_reopen(open_state) -> None:
    state = open_state()
    state.start_run("p", "a", "done", "t0")
    state.finish_run("done", "Completed", "t1", {"ok": True})
    state.start_run("p", "a", "crashed-a", "t2")
    state.start_run("q", "b", "crashed-b", "t3")
    state.close()

    state = open_state()  # the daemon restarts
    failed = state.fail_unfinished_runs()
    assert [(r["run_id"], r["playbook"], r["workload"]) for r in failed] == [
        ("crashed-a", "p", "a"),
        ("crashed-b", "q", "b"),
    ]
    assert all(r["status"] == "Failed" and r["reason"] == "daemon restarted" for r in failed)
    assert state.get_run("crashed-a")["status"] == "Failed"
    assert state.get_run("crashed-a")["reason"] == "daemon restarted"
    assert state.get_run("crashed-a")["ended_at"] == failed[0]["ended_at"]
    assert state.get_run("done")["status"] == "Completed"
    assert state.fail_unfinished_runs("again") == []


# -- registered results -------------------------------------------------------------


def test_results_store_protocol_copies_and_persistence(open_state) -> None:
    state = open_state()
    store = state.results("p")
    assert isinstance(store, Store) and isinstance(store, SqlResultStore)
    assert state.results("p") is store  # one cache per playbook
    value = {"rows": [{"n": 1}], "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}
    store.set("users", value)
    store.set("count", 3)
    store.set("gone", "x")
    store.delete("gone")
    store.delete("never-set")
    got = store.get("users")
    got["rows"][0]["n"] = 99  # reads are deep copies
    assert store.get("users")["rows"][0]["n"] == 1
    assert store.get("users", copy=False) is value
    assert store.snapshot()["count"] == 3
    assert sorted(store.keys()) == ["count", "users"] and sorted(store) == ["count", "users"]
    assert "users" in store and "gone" not in store and len(store) == 2
    assert store.get("missing", "dflt") == "dflt"
    state.results("other").set("users", "theirs")
    state.close()

    reopened = open_state().results("p")
    # after a restart values come back as their JSON form
    assert reopened.snapshot() == {
        "users": {"rows": [{"n": 1}], "when": "2026-01-02T03:04:05+00:00"},
        "count": 3,
    }
    reopened.clear()
    assert reopened.keys() == []
    assert open_state().results("p").keys() == []
    assert open_state().results("other").get("users") == "theirs"


def test_values_json_cannot_express_are_stored_readably(open_state) -> None:
    state = open_state()
    state.results("p").set("odd", {"b": b"\x00\xff", "s": {2, 1}, "nul": "a\x00b", "o": object})
    state.close()
    odd = open_state().results("p").get("odd")
    assert odd["b"] == "AP8=" and odd["s"] == [1, 2] and odd["nul"] == "a\x00b"
    assert odd["o"] == "<class 'object'>"


# -- lifecycle of the store ---------------------------------------------------------


def test_closed_state_refuses_calls_and_history_limit_is_checked(open_state, state_url) -> None:
    state = open_state()
    with SqlState(state_url) as other:
        assert other.backend == state.backend
        assert repr(other).startswith("SqlState('")
    with pytest.raises(StateError, match="is closed"):
        other.get_status("p", "w")
    with pytest.raises(StateError, match="is closed"):
        other.set_status("p", "w", {})
    with pytest.raises(ValueError, match="history_limit must be at least 1"):
        SqlState(state_url, history_limit=0)
