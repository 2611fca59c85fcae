"""`gxo run` wall time for a 1-workload playbook, next to importing its core libraries.

Baseline: ``python -c "import jinja2, pydantic, ruamel.yaml"`` — the floor of any
Python tool built on those libraries. Both are timed as fresh processes, best of
N. Goal: ``gxo run`` ≤ 2× the baseline.

    python bench/bench_startup.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = 'schemaVersion: "1.0.0"\nname: one\nworkloads:\n  - { name: only, process: { module: control:identity, params: { ok: true } } }\n'


def best_of(cmd: list[str], repeat: int, cwd: str) -> float:
    times = []
    # Bytecode caches on, out of the source tree: PYTHONDONTWRITEBYTECODE set to anything
    # (even "0") makes every gxo process compile GXO's sources again.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(cwd, "pycache"))
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(
            cmd, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    gxo = str(Path(sys.executable).with_name("gxo"))
    with tempfile.TemporaryDirectory() as tmp:
        pb = Path(tmp, "one.gxo.yaml")
        pb.write_text(PLAYBOOK)
        best_of([gxo, "run", str(pb)], 2, tmp)  # warm the bytecode caches
        base = best_of(
            [sys.executable, "-c", "import jinja2, pydantic, ruamel.yaml"], args.repeat, tmp
        )
        run = best_of([gxo, "run", str(pb)], args.repeat, tmp)
        help_ = best_of([gxo, "--help"], args.repeat, tmp)
    print(
        f"startup: gxo run (1 workload) {run * 1000:.0f} ms, import jinja2+pydantic+ruamel.yaml {base * 1000:.0f} ms, "
        f"ratio {run / base:.2f}x (goal ≤ 2x); gxo --help {help_ * 1000:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
