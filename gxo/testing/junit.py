"""JUnit XML for CI systems (GitLab, Jenkins, GitHub test reporters).

The common shape: ``<testsuites>`` → one ``<testsuite name="gxo test">`` → one
``<testcase>`` per test file (``name``: the playbook name, ``classname`` and
``file``: its path) with ``<failure message type>`` holding the failure report
or ``<skipped message>``, and ``<system-out>`` holding each workload's status,
duration and output. Written atomically.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree as ET

from gxo.errors import UsageError
from gxo.testing.execute import FAIL, SKIP, Outcome
from gxo.testing.report import tally

__all__ = ["build_junit", "write_junit"]

SUITE = "gxo test"


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters (terminal escapes in command output)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 0x20)


def build_junit(outcomes: Sequence[Outcome], *, started: datetime | None = None) -> ET.ElementTree:
    passed, failed, skipped = tally(outcomes)
    total = passed + failed + skipped
    duration = f"{sum(o.duration for o in outcomes):.3f}"
    counts = {
        "tests": str(total),
        "failures": str(failed),
        "errors": "0",
        "skipped": str(skipped),
        "time": duration,
    }
    root = ET.Element("testsuites", name=SUITE, **counts)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=SUITE,
        **counts,
        timestamp=(started or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S"),
        hostname=socket.gethostname(),
    )
    for o in outcomes:
        case = ET.SubElement(
            suite,
            "testcase",
            name=o.name,
            classname=o.test.display,
            file=o.test.display,
            time=f"{o.duration:.3f}",
        )
        if o.status == FAIL:
            failure = ET.SubElement(
                case, "failure", message=_clean(o.message), type=o.kind or "failure"
            )
            failure.text = _clean("\n".join(o.details))
        elif o.status == SKIP:
            ET.SubElement(case, "skipped", message=_clean(o.message))
        if o.output:
            out = ET.SubElement(case, "system-out")
            out.text = _clean("\n".join(o.output))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(
    outcomes: Sequence[Outcome], path: Path, *, started: datetime | None = None
) -> None:
    """Write the report to ``path`` atomically (a half-written report breaks CI parsers)."""
    tree = build_junit(outcomes, started=started)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gxo-junit-", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"--junit: cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            tree.write(fh, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"--junit: cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
