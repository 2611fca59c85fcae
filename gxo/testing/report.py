"""The text output of ``gxo test``, in the shape of ``go test -v``.

    === RUN   tests/playbooks/loops.test.gxo.yaml
    --- PASS: loops (0.12s)
    === RUN   tests/playbooks/api.test.gxo.yaml
    --- FAIL: api (0.31s)
        tests/playbooks/api.test.gxo.yaml:14:5: workload 'check' (test:assert) failed: 1 of 2 assertions failed
            assertions[0] (API answers) at tests/playbooks/api.test.gxo.yaml:18:11: equal_to
                expected: 200
                actual:   500
    1 passed, 1 failed

The closing line is exactly ``N passed, N failed`` (``, N skipped`` when some
were): CI tooling reads it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gxo.testing.execute import FAIL, PASS, SKIP, Outcome

__all__ = ["closing_line", "format_outcome", "tally"]

INDENT = "    "


def format_outcome(outcome: Outcome, *, verbose: bool = False) -> str:
    """The block of one test file: RUN line, (verbose output), result line, failure report."""
    lines = [f"=== RUN   {outcome.test.display}"]
    if verbose:
        lines.extend(INDENT + line for line in outcome.output)
    lines.append(f"--- {outcome.status}: {outcome.name} ({outcome.duration:.2f}s)")
    if outcome.status == FAIL:
        lines.extend(INDENT + line for line in outcome.details)
    elif outcome.status == SKIP and outcome.message:
        lines.append(INDENT + outcome.message)
    return "\n".join(lines) + "\n"


def tally(outcomes: Iterable[Outcome]) -> tuple[int, int, int]:
    """``(passed, failed, skipped)``."""
    counts = {PASS: 0, FAIL: 0, SKIP: 0}
    for o in outcomes:
        if o.status in counts:
            counts[o.status] += 1
    return counts[PASS], counts[FAIL], counts[SKIP]


def closing_line(outcomes: Iterable[Outcome]) -> str:
    passed, failed, skipped = tally(outcomes)
    line = f"{passed} passed, {failed} failed"
    return line + (f", {skipped} skipped" if skipped else "")
