"""event_driven end to end: a real ``gxo daemon`` watching a directory (``file://``).

Each file dropped in the inbox starts one instance: the root reads ``_gxo.event`` and
registers the path, its downstream run_once workload echoes it; ``gxo ctl runs`` shows
one run of each per event, ``gxo ctl status`` the reconciler's counters.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # the fixture's class; conftest is not imported as a module
    from tests.daemon.conftest import DaemonProc

pytestmark = pytest.mark.timeout(120)

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: inbox
workloads:
  - name: watch
    lifecycle:
      policy: event_driven
      source: "file://{inbox}/*.txt?debounce=100ms&initial=true"
      max_concurrency: 2
      filter: "not event.data.path.endswith('skip.txt')"
    process:
      module: control:identity
      params: {{ path: "{{{{ _gxo.event.data.path }}}}", change: "{{{{ _gxo.event.data.change }}}}" }}
    register: seen
  - name: record
    process: {{ module: exec, params: {{ command: echo, args: ["got {{{{ seen.path }}}} {{{{ seen.change }}}}"] }} }}
"""


def _until(predicate: Any, what: Any, timeout: float = 30) -> Any:
    """``what``: a text, or a callable giving it at the time out (the daemon's logs then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _drop(inbox: Path, name: str) -> None:
    # Written aside and renamed in, as a producer should: one event per file. A file
    # written in place may also give a second, "modified" event when the machine is
    # so slow that the write lands after the debounce window of its creation.
    aside = inbox.parent / f"{name}.part"
    aside.write_text(name)
    aside.rename(inbox / name)


def _echoed(daemon: DaemonProc) -> list[str]:
    runs = daemon.ctl_json("runs", "inbox/record")
    out = []
    for run in runs:
        if run["status"] == "Completed":
            out.append(run["report"]["workloads"]["record"]["summary"]["stdout"].strip())
    return sorted(out)


def test_each_file_starts_one_instance_that_sees_the_event(daemon: DaemonProc) -> None:
    inbox = daemon.folder / "inbox"
    inbox.mkdir()
    (inbox / "early.txt").write_text("before the apply")  # picked up by initial=true
    playbook = daemon.folder / "inbox.gxo.yaml"
    playbook.write_text(PLAYBOOK.format(inbox=inbox), encoding="utf-8")
    daemon.start()
    out = daemon.ctl("apply", "-f", str(playbook))
    assert out.returncode == 0, out.stderr + daemon.logs()
    early = [f"got {inbox / 'early.txt'} existing"]
    _until(lambda: _echoed(daemon) == early, lambda: f"early.txt: {daemon.logs()}")
    assert daemon.ctl_json("status", "inbox/watch")[0]["status"] == "Running"

    for name in ("a.txt", "skip.txt", "b.txt", "c.log"):
        _drop(inbox, name)
    expected = sorted(
        [f"got {inbox / 'early.txt'} existing"]
        + [f"got {inbox / n} added" for n in ("a.txt", "b.txt")]
    )
    _until(
        lambda: _echoed(daemon) == expected,
        lambda: f"{expected}, got {_echoed(daemon)}: {daemon.logs()}",
    )

    # One run of the root per accepted event; skip.txt was filtered, c.log not matched.
    roots = daemon.ctl_json("runs", "inbox/watch")
    assert [r["status"] for r in roots] == ["Completed"] * 3
    row = _until(
        lambda: (r := daemon.ctl_json("status", "inbox/watch")[0]).get("completed") == 3 and r,
        lambda: f"counters: {daemon.ctl_json('status', 'inbox/watch')}",
    )
    assert (row["received"], row["filtered"], row["failed"], row["dropped"]) == (4, 1, 0, 0)
    assert row["policy"] == "event_driven" and row["status"] == "Running"
    table = daemon.ctl("status", "inbox/watch").stdout
    assert "received 4, filtered 1, dropped 0" in table and "completed 3, failed 0" in table

    # Stop: the watcher ends; a new file starts nothing.
    assert daemon.ctl("stop", "inbox/watch").returncode == 0
    daemon.wait_status("inbox/watch", "Stopped")
    _drop(inbox, "late.txt")
    time.sleep(1.0)
    assert len(daemon.ctl_json("runs", "inbox/watch")) == 3
