"""Print kernel-package coverage and fail below the bar (DEVELOPERS.md: ≥ 90 %).

A report in which no file matches the kernel prefixes fails too: an empty
measurement (a wrong ``--cov`` target, a renamed package) is not 100 %.
"""

from __future__ import annotations

import json
import sys

KERNEL = (
    "gxo/config/",
    "gxo/engine/",
    "gxo/template/",
    "gxo/state/",
    "gxo/modules/",
    "gxo/testing/",
)
BAR = 90.0


def kernel_coverage(data: dict) -> tuple[float, int]:
    """(percent, files matched) over the kernel packages of a coverage.py JSON report."""
    covered = statements = matched = 0
    for name, info in data.get("files", {}).items():
        if name.replace("\\", "/").startswith(KERNEL):
            matched += 1
            summary = info["summary"]
            covered += summary["covered_lines"] + summary.get("covered_branches", 0)
            statements += summary["num_statements"] + summary.get("num_branches", 0)
    percent = 100.0 * covered / statements if statements else 0.0
    return percent, matched


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    percent, matched = kernel_coverage(data)
    if not matched:
        print(f"kernel coverage: no file of {', '.join(KERNEL)} in {path}; failing")
        return 1
    print(
        f"kernel coverage (config, engine, template, state, modules, testing; {matched} files):"
        f" {percent:.1f}% (bar {BAR:.0f}%)"
    )
    return 0 if percent >= BAR else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".coverage.json"))
