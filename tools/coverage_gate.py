"""Print kernel-package coverage and fail below the bar (DEVELOPERS.md: ≥ 90 %)."""

from __future__ import annotations

import json
import sys

KERNEL = ("gxo/config/", "gxo/engine/", "gxo/template/", "gxo/state/", "gxo/modules/")
BAR = 90.0


def main(path: str) -> int:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    covered = statements = 0
    for name, info in data["files"].items():
        if name.startswith(KERNEL):
            summary = info["summary"]
            covered += summary["covered_lines"] + summary.get("covered_branches", 0)
            statements += summary["num_statements"] + summary.get("num_branches", 0)
    percent = 100.0 * covered / statements if statements else 100.0
    print(
        f"kernel coverage (config, engine, template, state, modules): {percent:.1f}% (bar {BAR:.0f}%)"
    )
    return 0 if percent >= BAR else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".coverage.json"))
