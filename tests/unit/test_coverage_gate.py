"""tools/coverage_gate.py: the bar, and no free pass for an empty measurement."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_GATE = Path(__file__).resolve().parents[2] / "tools" / "coverage_gate.py"


@pytest.fixture(scope="module")
def gate():
    spec = importlib.util.spec_from_file_location("coverage_gate", _GATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(tmp_path: Path, files: dict[str, tuple[int, int]]) -> str:
    data = {
        "files": {
            name: {"summary": {"covered_lines": cov, "num_statements": total}}
            for name, (cov, total) in files.items()
        }
    }
    path = tmp_path / "cov.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_no_matching_file_fails(gate, tmp_path, capsys):
    assert gate.main(_report(tmp_path, {"other/x.py": (10, 10)})) == 1
    assert "no file" in capsys.readouterr().out


def test_below_bar_fails_and_above_passes(gate, tmp_path):
    assert gate.main(_report(tmp_path, {"gxo/engine/a.py": (89, 100)})) == 1
    assert gate.main(_report(tmp_path, {"gxo/engine/a.py": (90, 100)})) == 0


def test_testing_package_is_gated(gate, tmp_path):
    # gxo/testing/ counts: a poorly covered test runner pulls the figure down.
    path = _report(tmp_path, {"gxo/engine/a.py": (100, 100), "gxo/testing/r.py": (0, 100)})
    assert gate.main(path) == 1
