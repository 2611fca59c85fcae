"""Load + validate cost per workload: ``gxo validate`` of a 1- and an N-workload playbook.

Each figure is a whole fresh process (``gxo validate FILE``), best of ``--repeat``;
the per-workload cost is ``(t(N) - t(1)) / (N - 1)``, so start-up is not counted.
The playbooks mix the shapes real ones have: block and flow mappings, plain
scalars with colons (``module: control:identity`` inside ``{ }``), templates that
read earlier registers (inferred dependencies), ``when``, ``loop``, ``retry``,
``timeout``, streams and ``depends_on``. Goal: ≤ 50 µs per workload at 2,000.

    python bench/bench_loader.py [--sizes 1,2000,10000] [--repeat 3] [--style mixed|block|flow]
                                 [--breakdown] [--paired K]

On a loaded machine the 1-workload time alone moves by more than the whole
difference being measured; ``--paired K`` also runs K triples (1, N, 1) back to
back and reports the median and lower quartile of their differences, so a slow
minute shifts one triple, not the figure.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_US = 50.0


def _block(i: int) -> list[str]:
    """One workload in block style; the kind cycles so every shape appears."""
    kind = i % 5
    name = f"  - name: w{i}"
    if kind == 0:
        return [
            name,
            "    process:",
            "      module: exec",
            "      params:",
            "        command: echo",
            f'        args: ["{{{{ greeting }}}} {i}"]',
            f"    register: r{i}",
            "    timeout: 30s",
        ]
    if kind == 1:
        return [
            name,
            f'    when: "r{i - 1}.exit_code == 0"',
            "    process:",
            "      module: control:identity",
            "      params:",
            f'        out: "{{{{ r{i - 1}.stdout | trim }}}}"',
            "        n: 3",
            f"    register: r{i}",
            "    retry: { attempts: 3, delay: 1s, backoff_factor: 2.0 }",
        ]
    if kind == 2:
        return [
            name,
            "    loop: [a, b, c]",
            "    loop_control: { loop_var: x, parallel: 2 }",
            "    process:",
            "      module: control:identity",
            '      params: { item: "{{ x }}", seen: "{{ threshold > 1 }}" }',
        ]
    if kind == 3:
        return [
            name,
            "    process:",
            "      module: data:generate_from_list",
            "      params:",
            "        items:",
            "          - { team: platform, n: 3 }",
            "          - { team: data, n: 5 }",
        ]
    return [
        name,
        "    process:",
        "      module: data:filter",
        "      params: { condition: 'record.n > threshold' }",
        f"    stream_inputs: [w{i - 1}]",
        f"    depends_on: [w{i - 4}]",
    ]


def _flow(i: int) -> list[str]:
    """One workload as a single flow mapping (what generated playbooks often look like)."""
    dep = f", depends_on: [w{i - 1}]" if i else ""
    return [
        f"  - {{ name: w{i}, process: {{ module: control:identity, params: {{ n: {i}, "
        f'msg: "{{{{ greeting }}}}" }} }}{dep} }}'
    ]


def playbook_text(n: int, style: str = "mixed") -> str:
    lines = [
        'schemaVersion: "1.0.0"',
        f"name: bench-loader-{n}",
        "vars: { greeting: hello, threshold: 2 }",
        "workloads:",
    ]
    for i in range(n):
        # Whole groups of five share a style, so the references inside a group stay valid.
        block = style == "block" or (style == "mixed" and (i // 5) % 2 == 0)
        lines.extend(_block(i) if block else _flow(i))
    return "\n".join(lines) + "\n"


def best_of(cmd: list[str], repeat: int, cwd: str) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of ``repeat`` runs.

    CPU time is reported too because on a shared machine the wall time also
    measures the neighbours; the process's own work is its CPU time.
    """
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return min(walls), min(cpus)


def measure(sizes: list[int], repeat: int, style: str) -> dict[int, tuple[float, float]]:
    # `python -m gxo.cli` is what the `gxo` script runs; PYTHONPATH may point at another tree.
    gxo = [sys.executable, "-m", "gxo.cli"]
    out: dict[int, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            pb = Path(tmp, f"pb{n}.gxo.yaml")
            pb.write_text(playbook_text(n, style))
            best_of([*gxo, "validate", str(pb)], 1, tmp)  # warm the bytecode caches
            # The 1-workload time is subtracted from every figure: one slow outlier
            # there skews them all, so it gets more runs (they are short).
            runs = max(2 * repeat, 7) if n == 1 else repeat if n <= 2000 else 1
            out[n] = best_of([*gxo, "validate", str(pb)], runs, tmp)
    return out


def _run(cmd: list[str], cwd: str) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def paired(n: int, triples: int, style: str) -> str:
    """Per-workload (wall, CPU) from back-to-back (1, N, 1) runs: median and lower quartile."""
    gxo = [sys.executable, "-m", "gxo.cli", "validate"]
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        one, big = Path(tmp, "pb1.gxo.yaml"), Path(tmp, f"pb{n}.gxo.yaml")
        one.write_text(playbook_text(1, style))
        big.write_text(playbook_text(n, style))
        _run([*gxo, str(big)], tmp)  # warm the bytecode caches
        for _ in range(triples):
            w1, c1 = _run([*gxo, str(one)], tmp)
            wn, cn = _run([*gxo, str(big)], tmp)
            w2, c2 = _run([*gxo, str(one)], tmp)
            walls.append((wn - (w1 + w2) / 2) / (n - 1) * 1e6)
            cpus.append((cn - (c1 + c2) / 2) / (n - 1) * 1e6)
    walls.sort()
    cpus.sort()
    q = len(walls) // 4
    return (
        f"{n:,} workloads, {triples} paired runs: wall median {statistics.median(walls):.0f} µs "
        f"(lower quartile {walls[q]:.0f}), CPU median {statistics.median(cpus):.0f} µs "
        f"(lower quartile {cpus[q]:.0f}) per workload"
    )


def breakdown(n: int, style: str, repeat: int) -> str:
    """In-process CPU time per workload of each phase: the YAML parse (fast path, and
    ruamel alone), the pydantic model, the validation checks, and the whole load, so a
    regression shows where it is. The template caches are emptied before each run:
    a fresh ``gxo validate`` starts without them."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from gxo.config.loader import LoadedPlaybook, load_playbook
    from gxo.config.models import Playbook
    from gxo.config.validate import validate_playbook
    from gxo.config.yamlsafe import _parse_ruamel, parse_yaml
    from gxo.template import engine

    try:  # older trees have the analysis in engine.py
        from gxo.template import references
    except ImportError:
        references = engine

    text = playbook_text(n, style)
    load_playbook(text=playbook_text(5, style))  # imports, module registry

    def cold() -> None:
        engine._parse.cache_clear()
        if hasattr(references, "_references"):  # older trees have no answer cache
            references._references.cache_clear()

    def cpu(call: Any) -> float:
        best = float("inf")
        for _ in range(repeat):
            cold()
            t = time.process_time()
            call()
            best = min(best, time.process_time() - t)
        return best / n * 1e6

    data, positions = parse_yaml(text, "bench")
    playbook = Playbook.model_validate(data)

    def validate() -> None:
        loaded = LoadedPlaybook(playbook, "bench", positions, [], False, data)
        validate_playbook(loaded)

    fast = cpu(lambda: parse_yaml(text, "bench"))
    slow = cpu(lambda: _parse_ruamel(text, "bench", string_keys=True, all_documents=False))
    model = cpu(lambda: Playbook.model_validate(data))
    checks = cpu(validate)
    whole = cpu(lambda: load_playbook(text=text, name="bench"))
    return (
        f"in-process CPU per workload at {n:,}: YAML parse {fast:.0f} µs (ruamel alone {slow:.0f} µs), "
        f"model {model:.0f} µs, checks {checks:.0f} µs; load + validate {whole:.0f} µs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2000,10000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--style", choices=["mixed", "block", "flow"], default="mixed")
    parser.add_argument("--breakdown", action="store_true", help="also time the phases in-process")
    parser.add_argument(
        "--paired", type=int, default=0, metavar="K", help="also K back-to-back (1, N, 1) triples"
    )
    args = parser.parse_args()
    sizes = sorted({1, *(int(s) for s in args.sizes.split(","))})
    times = measure(sizes, args.repeat, args.style)
    wall1, cpu1 = times[1]
    parts = [f"1 workload {wall1 * 1000:.0f} ms (CPU {cpu1 * 1000:.0f} ms)"]
    verdict = ""
    for n in sizes[1:]:
        wall, cpu = times[n]
        per_wall = (wall - wall1) / (n - 1) * 1e6
        per_cpu = (cpu - cpu1) / (n - 1) * 1e6
        parts.append(
            f"{n:,} workloads {wall:.2f} s = {per_wall:.0f} µs/workload (CPU {per_cpu:.0f} µs)"
        )
        if n == 2000:
            ok = "ok" if per_wall <= GOAL_US else "MISSED"
            verdict = f"; goal ≤ {GOAL_US:.0f} µs/workload at 2,000: {ok}"
    print(f"loader ({args.style}): gxo validate " + ", ".join(parts) + verdict)
    for n in sizes[1:] if args.paired else []:
        print(f"loader ({args.style}): " + paired(n, args.paired if n <= 2000 else 1, args.style))
    if args.breakdown:
        print(f"loader ({args.style}): " + breakdown(2000, args.style, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
