"""CPU-bound and deep templates through `gxo run` / `gxo validate` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

# 9 million loop steps, each with an intercepted '%': seconds of work on any machine,
# without output (so no memory grows while it runs).
BUSY = (
    "{% for i in range(3000) %}{% for j in range(3000) %}{% set y = (i * j) % 7 %}"
    "{% endfor %}{% endfor %}done"
)
# 100 backtracking regexes of about a second each (stopped by the per-regex limit).
REDOS = "{% for i in range(100) %}{{ text | regex_search('(a|aa)+$') }}{% endfor %}"


def _playbook(tmp_path: Path, template: str, *, timeout: str | None = None) -> Path:
    lines = [
        'schemaVersion: "1.0.0"',
        "name: long-template",
        'vars: { text: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!" }',
        "workloads:",
        "  - name: spin",
        *([f"    timeout: {timeout}"] if timeout else []),
        "    process:",
        "      module: control:identity",
        f'      params: {{ x: "{template}" }}',
        "  - name: after",
        "    depends_on: [spin]",
        "    process: { module: control:identity, params: { y: 1 } }",
    ]
    path = tmp_path / "long.gxo.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gxo.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
    )


@pytest.mark.parametrize("template", [BUSY, REDOS], ids=["loops", "regex"])
def test_workload_timeout_stops_a_long_template(tmp_path: Path, template: str) -> None:
    path = _playbook(tmp_path, template, timeout="1s")
    report = tmp_path / "r.json"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "gxo.cli", "run", str(path), "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "300"},
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    spin = json.loads(report.read_text())["workloads"]["spin"]
    assert spin["status"] == "Failed"
    # Stopped at about the timeout (a regex may overrun its share a little).
    assert spin["duration_ms"] < 3000, spin
    assert elapsed < 20
    assert "timed out after 1s" in spin["error"]
    assert "param 'x'" in spin["error"] and "range(" in spin["error"]  # names the template
    assert "long.gxo.yaml:" in proc.stderr and "timed out after 1s" in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("template", [BUSY, REDOS], ids=["loops", "regex"])
def test_a_signal_during_a_long_template_exits_130_with_a_report(
    tmp_path: Path, template: str, sig: int
) -> None:
    path = _playbook(tmp_path, template)
    report = tmp_path / "r.json"
    proc = _spawn("run", str(path), "-v", "--report", str(report))
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "▶ spin Running": the render starts right after
        assert "spin" in line and "Running" in line, line
        time.sleep(0.3)
        proc.send_signal(sig)
        signalled = time.monotonic()
        _, rest = proc.communicate(timeout=20)
        latency = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, rest
    assert latency < 5.0  # without the fix: never (the loop is blocked until the render ends)
    data = json.loads(report.read_text())
    assert data["status"] == "Interrupted"
    assert data["workloads"]["spin"]["status"] == "Failed"
    assert "interrupted" in data["workloads"]["spin"]["error"]
    assert data["workloads"]["after"]["status"] != "Completed"


def _deep_playbook(tmp_path: Path, terms: int) -> Path:
    expr = " + ".join(["1"] * terms)
    path = tmp_path / "deep.gxo.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            schemaVersion: "1.0.0"
            name: deep
            workloads:
              - name: ok
                process: {{ module: control:identity, params: {{ y: 1 }} }}
              - name: sum
                process:
                  module: control:identity
                  params:
                    x: "{{{{ {expr} }}}}"
            """
        )
    )
    return path


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("terms", [300, 500, 5000])
def test_a_deep_expression_is_a_load_error_exit_2(
    gxo, tmp_path: Path, command: str, terms: int
) -> None:
    path = _deep_playbook(tmp_path, terms)
    started = time.monotonic()
    proc = gxo(command, str(path))
    assert time.monotonic() - started < 15  # no compile stall
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr
    assert "deep.gxo.yaml:10:" in proc.stderr  # file:line of the template
    assert "workload 'sum'" in proc.stderr
    assert "nests deeper than 100 levels" in proc.stderr


def test_a_long_but_shallow_playbook_template_still_runs(gxo, tmp_path: Path) -> None:
    path = _deep_playbook(tmp_path, 60)
    proc = gxo("run", str(path))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("on_error", ["fail", "skip"])
def test_a_per_record_template_stops_at_the_timeout_and_fails_the_workload(
    gxo, tmp_path: Path, on_error: str
) -> None:
    # A timeout is not a bad record: `on_error: skip` must not turn it into dropped records.
    path = tmp_path / "map.gxo.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            schemaVersion: "1.0.0"
            name: map-slow
            workloads:
              - name: gen
                process: {{ module: data:generate_from_list, params: {{ items: [{{ n: 1 }}, {{ n: 2 }}] }} }}
              - name: slow
                timeout: 1s
                stream_inputs: [gen]
                process:
                  module: data:map
                  params:
                    on_error: {on_error}
                    fields:
                      x: "{BUSY}{{{{ record.n }}}}"
            """
        )
    )
    report = tmp_path / "r.json"
    proc = gxo("run", str(path), "--report", str(report))
    assert proc.returncode == 1, proc.stderr
    slow = json.loads(report.read_text())["workloads"]["slow"]
    assert slow["status"] == "Failed"
    assert slow["duration_ms"] < 3000
    assert "timed out after 1s" in slow["error"] and "fields.x" in slow["error"]
    assert "map.gxo.yaml:" in proc.stderr
