"""`gxo validate` of a large playbook leaves with os._exit once its output is written.

Freeing the heap of thousands of loaded workloads costs ~15 µs a workload at exit,
so validate skips it; these tests pin that the skip happens (no interpreter
teardown: an atexit hook never runs) and that no output is lost on the way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Run main() as the `gxo` script does, with an atexit hook that reports a normal teardown.
_SCRIPT = (
    "import atexit, sys\n"
    "atexit.register(lambda: sys.stderr.write('TEARDOWN\\n'))\n"
    "from gxo.cli import main\n"
    "sys.argv = ['gxo', 'validate', *sys.argv[1:]]\n"
    "main()\n"
)


def _playbook(n: int) -> str:
    lines = ['schemaVersion: "1.0.0"', f"name: quick-{n}", "workloads:"]
    for i in range(n):
        lines.append(f"  - {{ name: w{i}, process: {{ module: control:identity }} }}")
    return "\n".join(lines) + "\n"


def _validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_large_playbook_skips_teardown_and_keeps_output(tmp_path: Path) -> None:
    big = tmp_path / "big.gxo.yaml"
    big.write_text(_playbook(600))
    proc = _validate(big)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"ok: {big} (quick-600, 600 workloads)\n"
    assert "TEARDOWN" not in proc.stderr  # left with os._exit


def test_quick_exit_keeps_errors_and_exit_code(tmp_path: Path) -> None:
    big = tmp_path / "big.gxo.yaml"
    big.write_text(_playbook(600))
    bad = tmp_path / "bad.gxo.yaml"
    bad.write_text('schemaVersion: "1.0.0"\nname: bad\nworkloads:\n  - name: [unclosed\n')
    proc = _validate(bad, big)
    assert proc.returncode == 2
    assert proc.stdout == f"ok: {big} (quick-600, 600 workloads)\n"
    assert f"{bad}:5:1: YAML syntax error" in proc.stderr  # flushed, with its location
    assert "TEARDOWN" not in proc.stderr


def test_small_playbook_exits_normally(tmp_path: Path) -> None:
    small = tmp_path / "small.gxo.yaml"
    small.write_text(_playbook(3))
    proc = _validate(small)
    assert proc.returncode == 0, proc.stderr
    assert "TEARDOWN" in proc.stderr  # the usual interpreter exit: nothing skipped
