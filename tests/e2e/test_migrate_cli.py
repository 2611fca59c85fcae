"""``gxo migrate`` and the legacy shim of ``gxo run``/``gxo validate``, through the real CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gxo.config.migrate import migrate_file

LEGACY = Path(__file__).resolve().parents[1] / "playbooks" / "legacy"
QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.gxo.yaml"


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    """A private copy of the nightly report fixture (tests may rewrite it)."""
    path = tmp_path / "nightly.gxo.yaml"
    shutil.copy(LEGACY / "nightly_report.gxo.yaml", path)
    return path


def warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


def test_migrate_prints_to_stdout_and_warns_with_lines(gxo, legacy: Path) -> None:
    result = gxo("migrate", "-f", str(legacy))
    assert result.returncode == 0, result.stderr
    assert result.stdout == migrate_file(legacy)[0]
    assert warning_lines(result.stderr) == [f"warning: {w}" for w in migrate_file(legacy)[1]]
    assert f"warning: {legacy}:13: 'task_policy' is not supported" in result.stderr
    assert legacy.read_text() == (LEGACY / "nightly_report.gxo.yaml").read_text()  # untouched


def test_migrate_to_output_file_then_run_it_without_deprecation(
    gxo, legacy: Path, tmp_path: Path
) -> None:
    target = tmp_path / "new.gxo.yaml"
    result = gxo("migrate", "-f", str(legacy), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert target.read_text() == migrate_file(legacy)[0]
    run = gxo("run", str(target))
    assert run.returncode == 0, run.stderr
    assert "deprecat" not in run.stderr and "warning:" not in run.stderr
    assert "Completed nightly-report" in run.stderr


def test_in_place_is_idempotent(gxo, legacy: Path) -> None:
    first = gxo("migrate", "-f", str(legacy), "--in-place")
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""
    once = legacy.read_text()
    assert (
        once.startswith("# Nightly host report")
        and "\nworkloads: # everything below runs once\n" in once
    )
    second = gxo("migrate", "-f", str(legacy), "--in-place")
    assert second.returncode == 0
    assert second.stderr == ""  # nothing to report on a 1.0.0 file
    assert legacy.read_text() == once


def test_modern_file_is_unchanged_on_stdout(gxo) -> None:
    result = gxo("migrate", "-f", str(QUICKSTART))
    assert result.returncode == 0
    assert result.stdout == QUICKSTART.read_text()
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'schemaVersion: "1.0.0"\nname: t\ntasks: []\nworkloads: []\n',
            "error: {path}:3:1: a playbook cannot have both 'tasks' (legacy) and 'workloads'",
        ),
        ("name: t\ntasks:\n  - {name: a\n", "error: {path}:4:1: YAML syntax error: "),
    ],
    ids=["both-keys", "bad-yaml"],
)
def test_bad_input_exits_2_with_a_located_message(
    gxo, tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = gxo("migrate", "-f", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(expected.format(path=path)), result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_and_conflicting_options_exit_2(gxo, legacy: Path, tmp_path: Path) -> None:
    missing = gxo("migrate", "-f", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: playbook not found: {tmp_path / 'nope.yaml'}"
    both = gxo("migrate", "-f", str(legacy), "-o", str(tmp_path / "x.yaml"), "--in-place")
    assert both.returncode == 2
    assert "either --output or --in-place" in both.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_run_legacy_playbook_prints_one_deprecation_naming_migrate(gxo, tmp_path: Path) -> None:
    path = tmp_path / "orders.gxo.yaml"
    shutil.copy(LEGACY / "user_orders.gxo.yaml", path)
    result = gxo("run", str(path))
    assert result.returncode == 0, result.stderr
    assert "Completed user-orders" in result.stderr
    mentions = [line for line in result.stderr.splitlines() if "gxo migrate" in line]
    assert mentions == [
        f"warning: {path}: playbook uses the deprecated 'tasks' format (v0.1.2a); it was migrated in "
        f"memory. Run 'gxo migrate -f {path} --in-place' to upgrade the file."
    ]
    # the old module names are migrated too: no second deprecation for generate:from_list/stream:join
    assert sum("deprecated" in line for line in result.stderr.splitlines()) == 1
    assert f"warning: {path}:38: task 'policy' (skip_on_no_input) is not supported" in result.stderr


def test_validate_legacy_playbook(gxo, legacy: Path) -> None:
    result = gxo("validate", str(legacy))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok: {legacy} (nightly-report, 4 workloads)"
    assert sum("gxo migrate" in line for line in result.stderr.splitlines()) == 1
    assert warning_lines(result.stderr)[1:] == [f"warning: {w}" for w in migrate_file(legacy)[1]]
