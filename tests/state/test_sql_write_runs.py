"""``SqlState.write_runs``: the daemon write-behind's multi-row statements leave the same
rows as the single-row methods called in order (SQLite and PostgreSQL, encrypted)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gxo.state.crypto import AesGcmCodec, generate_key

KEY = generate_key()
SECRET = "s3cr3t-value"


def script(prefix: str) -> list[tuple[str, tuple[Any, ...]]]:
    """Starts, ends, statuses of 3 workloads, 4 runs each; some left Running."""
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for i in range(4):
        for w in ("a", "b", "c"):
            run = f"{prefix}{w}{i}"
            calls.append(("start_run", (prefix, w, run, f"2026-01-01T00:00:0{i}.000+00:00")))
            calls.append(("set_status", (prefix, w, {"status": "Running", "last_run_id": run})))
        for w in ("a", "b") if i < 3 else ("a",):  # c's last run and b's stay Running
            run = f"{prefix}{w}{i}"
            status = "Failed" if w == "b" else "Completed"
            reason = f"boom {SECRET}" if w == "b" else None
            report = {"status": status, "token": SECRET, "i": i}
            calls.append(
                ("finish_run", (run, status, f"2026-01-01T00:00:0{i}.500+00:00", report, reason))
            )
            calls.append(("set_status", (prefix, w, {"status": status, "reason": reason})))
    calls.append(("finish_run", ("nosuchrun", "Completed", "t", {}, None)))
    return calls


def seen(state: Any, prefix: str) -> tuple[list[Any], list[Any]]:
    runs = []
    for w in ("a", "b", "c"):
        for run in state.list_runs(prefix, w, 50):
            runs.append(
                (
                    w,
                    run["run_id"][len(prefix) :],
                    run["status"],
                    run["started_at"],
                    run["ended_at"],
                    run["reason"],
                    run["report"],
                )
            )
    statuses = []
    for w in ("a", "b", "c"):
        status = state.get_status(prefix, w)
        status.pop("updated_at")
        if "last_run_id" in status:
            status["last_run_id"] = status["last_run_id"][len(prefix) :]
        statuses.append((w, status))
    return runs, statuses


def test_write_runs_leaves_the_rows_of_the_single_row_calls(
    open_state: Callable[..., Any],
) -> None:
    state = open_state(codec=AesGcmCodec(KEY), history_limit=2)
    for name in ("one", "many"):
        state.put_playbook(name, source="s", path="p", checksum="c", variables={})
    answers_one = [getattr(state, fn)(*args) for fn, args in script("one")]
    # write_runs prunes once after every row is in (a run started later in the lot counts
    # toward the limit, as it does at the next end of that workload): the same as a
    # prune after the single-row calls.
    with state._write() as conn:
        for w in ("a", "b", "c"):
            state._prune(conn, "one", w)
    starts: list[Any] = []
    finishes: list[Any] = []
    statuses: list[Any] = []
    lots = {"start_run": starts, "finish_run": finishes, "set_status": statuses}
    for fn, args in script("many"):
        lots[fn].append(args)
    with state.batch():
        answers_many = state.write_runs(starts, finishes, statuses)
    assert answers_many == [a for a in answers_one if a is not None]
    assert answers_many[-1] is False and all(answers_many[:-1])
    one, many = seen(state, "one"), seen(state, "many")
    assert one == many
    runs, statuses_seen = many
    # pruned to 2 finished runs per workload; Running runs are never pruned
    assert [r[1] for r in runs if r[0] == "a"] == ["a3", "a2"]
    assert [r[1] for r in runs if r[0] == "b"] == ["b3", "b2"]
    assert [r[1] for r in runs if r[0] == "c"] == ["c3", "c2", "c1", "c0"]
    assert statuses_seen == [
        ("a", {"status": "Completed", "reason": None}),
        ("b", {"status": "Running", "last_run_id": "b3"}),
        ("c", {"status": "Running", "last_run_id": "c3"}),
    ]
    assert [r[5] for r in runs if r[1] == "b2"] == [f"boom {SECRET}"]
    # sealed like the single-row writes: nothing readable in the database
    from sqlalchemy import create_engine, text

    from gxo.state._sql_schema import parse_url

    engine = create_engine(parse_url(state.url))
    try:
        with engine.connect() as conn:
            cells = [
                v
                for table in ("gxo_runs", "gxo_statuses")
                for row in conn.execute(text(f"SELECT * FROM {table}"))
                for v in row
                if isinstance(v, str)
            ]
    finally:
        engine.dispose()
    assert cells and not any(SECRET in v or 'Running", ' in v for v in cells)
    assert any(v.startswith("gxo1:") for v in cells)


def test_write_runs_outside_a_batch_commits_and_an_empty_call_does_nothing(
    open_state: Callable[..., Any],
) -> None:
    state = open_state()
    state.put_playbook("p", source="s", path="p", checksum="c", variables={})
    assert state.write_runs([], [], []) == []
    state.write_runs([("p", "w", "r1", "t0")], [("r1", "Completed", "t1", {"ok": 1})], [])
    (run,) = state.list_runs("p", "w")
    assert (run["status"], run["ended_at"], run["report"]) == ("Completed", "t1", {"ok": 1})


def test_a_run_started_and_ended_in_one_lot_is_one_row_and_a_later_end_still_lands(
    open_state: Callable[..., Any],
) -> None:
    state = open_state(history_limit=5)
    state.put_playbook("p", source="s", path="p", checksum="c", variables={})
    state.write_runs([("p", "w", "old", "t0")], [], [])  # started in an earlier lot
    answers = state.write_runs(
        [("p", "w", "r1", "t1")],
        [
            ("r1", "Completed", "t2", {"n": 1}),
            ("old", "Failed", "t3", {"n": 0}, "boom"),
            ("r1", "Failed", "t4", {"n": 2}, "ended again"),  # the later end wins
            ("ghost", "Completed", "t5", {}),
        ],
        [],
    )
    assert answers == [True, True, True, False]
    runs = {r["run_id"]: r for r in state.list_runs("p", "w")}
    assert set(runs) == {"old", "r1"}
    assert (runs["r1"]["status"], runs["r1"]["ended_at"], runs["r1"]["reason"]) == (
        "Failed",
        "t4",
        "ended again",
    )
    assert runs["r1"]["report"] == {"n": 2}
    assert (runs["old"]["status"], runs["old"]["reason"]) == ("Failed", "boom")
