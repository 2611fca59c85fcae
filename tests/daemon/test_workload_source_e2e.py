"""``workload:NAME`` end to end: a real ``gxo daemon``; a supervised producer's records
each start one instance of the ``workload:`` consumer — none lost under ``block``, even
with a queue much smaller than the records produced."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(180)

RECORDS = 60

PIPE = """\
schemaVersion: "1.0.0"
name: pipe
workloads:
  - name: producer
    lifecycle: {{ policy: supervise, restart_policy: never }}
    process:
      module: data:generate_from_list
      params: {{ items: "{{{{ range({records}) | list }}}}", field: n }}
  - name: consume
    lifecycle:
      policy: event_driven
      source: "workload:producer"
      max_concurrency: 2
      queue: 3
      overflow: block
    process:
      module: control:identity
      params: {{ n: "{{{{ _gxo.event.data.n }}}}", subject: "{{{{ _gxo.event.subject }}}}" }}
"""

MISSING = """\
schemaVersion: "1.0.0"
name: broken
workloads:
  - name: consume
    lifecycle:
      policy: event_driven
      source: "workload:nobody"
    process: { module: control:identity, params: {} }
"""


def _until(predicate: Any, what: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def test_each_record_of_a_supervised_producer_starts_one_instance(daemon: DaemonProc) -> None:
    path = daemon.folder / "pipe.gxo.yaml"
    path.write_text(PIPE.format(records=RECORDS), encoding="utf-8")
    daemon.start()
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode == 0, out.stderr + daemon.logs()

    def completed() -> int:
        return int(daemon.ctl_json("status", "pipe/consume")[0].get("completed") or 0)

    _until(lambda: completed() == RECORDS, lambda: f"{completed()}: {daemon.logs()}")
    runs = daemon.ctl_json("runs", "pipe/consume", "--limit", "100")
    seen = [r["report"]["workloads"]["consume"]["summary"] for r in runs]
    assert all(s["subject"] == "producer" for s in seen)
    # One instance per record, every record (the history keeps 100 runs: all of them).
    assert sorted(int(s["n"]) for s in seen) == list(range(RECORDS))
    row = daemon.ctl_json("status", "pipe/consume")[0]
    assert (row["received"], row["dropped"], row["failed"]) == (RECORDS, 0, 0)
    # The producer waited for the consumer (queue 3, 2 at a time) and then completed.
    producer = daemon.wait_status("pipe/producer", "Completed")
    assert producer["policy"] == "supervise"


def test_unknown_producer_is_an_apply_error_with_its_line(daemon: DaemonProc) -> None:
    path = daemon.folder / "broken.gxo.yaml"
    path.write_text(MISSING, encoding="utf-8")
    daemon.start()
    out = daemon.ctl("apply", "-f", str(path))
    assert out.returncode != 0
    assert "broken.gxo.yaml:7" in out.stderr and "no workload 'nobody'" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
