"""SqlState under concurrent threads, and after a writer is killed with SIGKILL mid-write."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Writes in a tight loop and prints each run id once its finish_run has committed.
WRITER = textwrap.dedent(
    """
    import sys
    from gxo.state.sql import SqlState

    url, prefix = sys.argv[1], sys.argv[2]
    state = SqlState(url, history_limit=100_000)
    store = state.results("p")
    i = 0
    while True:
        run_id = f"{prefix}-{i}"
        state.start_run("p", "w", run_id, "t")
        state.set_status("p", "w", {"status": "Running", "restarts": i})
        store.set("counter", {"i": i, "pad": "x" * 2000})
        state.finish_run(run_id, "Completed", "t", {"i": i, "rows": list(range(50))})
        print(run_id, flush=True)
        i += 1
    """
)


def test_threads_share_one_state(open_state) -> None:
    state = open_state(history_limit=1000)
    errors: list[BaseException] = []
    threads_n, per_thread = 6, 40

    def work(t: int) -> None:
        try:
            store = state.results("p")
            for i in range(per_thread):
                state.set_status("p", f"w{t}", {"status": "Running", "restarts": i})
                state.start_run("p", f"w{t}", f"t{t}-{i}", "t")
                store.set(f"k{t}", i)
                assert state.get_status("p", f"w{t}")["restarts"] == i
                state.finish_run(f"t{t}-{i}", "Completed", "t", {"i": i})
        except BaseException as e:  # reported below, with the thread's traceback
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for t in range(threads_n):
        runs = state.list_runs("p", f"w{t}", limit=1000)
        assert len(runs) == per_thread
        assert {r["status"] for r in runs} == {"Completed"}
        assert state.get_status("p", f"w{t}")["restarts"] == per_thread - 1
        assert state.results("p").get(f"k{t}") == per_thread - 1
    state.close()
    # what the threads wrote is what a fresh process reads
    assert open_state().results("p").snapshot() == {
        f"k{t}": per_thread - 1 for t in range(threads_n)
    }


def _kill_writer_after(url: str, prefix: str, lines: int, delay: float) -> list[str]:
    """Start the writer, SIGKILL it ``delay`` s after ``lines`` committed runs; the ids it reported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    committed: list[str] = []
    try:
        assert proc.stdout is not None
        while len(committed) < lines:
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "writer died"
            committed.append(line.strip())
        # Killed at once the writer is most often between two runs; a short delay
        # lands the kill inside start_run ... finish_run instead.
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    return committed


def test_sigkill_mid_write_keeps_committed_runs(state_url: str, open_state) -> None:
    reported: list[str] = []
    for round_, delay in enumerate((0.0, 0.001, 0.002, 0.004, 0.008)):
        reported += _kill_writer_after(state_url, f"k{round_}", 10 + 10 * round_, delay)

        if state_url.startswith("sqlite"):
            path = state_url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        state = open_state(history_limit=100_000)
        interrupted = state.fail_unfinished_runs()
        assert len(interrupted) <= 1  # at most the run the kill landed in
        runs = {r["run_id"]: r for r in state.list_runs("p", "w", limit=100_000)}
        for run_id in reported:
            assert runs[run_id]["status"] == "Completed", run_id
            assert runs[run_id]["report"]["rows"] == list(range(50))
        # Each iteration i writes start_run(i), status i, counter i, finish_run(i):
        # whatever the kill cut, the store holds a prefix of that sequence.
        mine = sorted(int(r.rsplit("-", 1)[1]) for r in runs if r.startswith(f"k{round_}-"))
        started = mine[-1]
        assert mine == list(range(started + 1))  # no committed run is missing
        assert started >= int(reported[-1].rsplit("-", 1)[1])
        for i in mine[:-1]:
            assert runs[f"k{round_}-{i}"]["status"] == "Completed"
        assert runs[f"k{round_}-{started}"]["status"] in ("Completed", "Failed")
        assert [r["run_id"] for r in interrupted] in ([], [f"k{round_}-{started}"])
        counter = state.results("p").get("counter")
        assert counter["i"] in (started - 1, started) and len(counter["pad"]) == 2000
        assert state.get_status("p", "w")["restarts"] in (started - 1, started)
        state.close()
