"""Upstream (v0.1.2a) playbooks and examples through the real ``gxo`` command."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EXAMPLES

CI_FAN_IN = EXAMPLES / "ci_fan_in.gxo.yaml"


def _run(gxo, tmp_path: Path, *args: str) -> tuple[object, dict]:
    report = tmp_path / "report.json"
    proc = gxo("run", str(CI_FAN_IN), "--workspace", str(tmp_path), "--report", str(report), *args)
    return proc, json.loads(report.read_text())


def test_ci_fan_in_barrier_waits_for_both_builds_then_deploys(gxo, tmp_path: Path) -> None:
    proc, report = _run(gxo, tmp_path)
    assert proc.returncode == 0, proc.stderr
    w = report["workloads"]
    assert {name: e["status"] for name, e in w.items()} == {
        "build_backend": "Completed",
        "build_frontend": "Completed",
        "test_barrier": "Completed",
        "deploy_stage": "Completed",
    }
    assert w["test_barrier"]["summary"]["synchronized_streams"] == [
        "build_backend",
        "build_frontend",
    ]
    # Each build prints when it finished, the deploy when it started: the barrier
    # held the deploy back until the slower build (0.3 s) was done.
    finished = [
        float(w[b]["summary"]["stdout"].split()[-1]) for b in ("build_backend", "build_frontend")
    ]
    started = float(w["deploy_stage"]["summary"]["stdout"].split()[0])
    assert started >= max(finished)


def test_ci_fan_in_failed_build_skips_barrier_and_deploy(gxo, tmp_path: Path) -> None:
    proc, report = _run(gxo, tmp_path, "-e", "frontend_exit=3")
    assert proc.returncode == 1
    w = report["workloads"]
    assert w["build_frontend"]["status"] == "Failed"
    assert w["build_backend"]["status"] == "Completed"
    assert w["test_barrier"]["status"] == "Skipped"
    assert w["test_barrier"]["reason"] == "dependency failed: 'build_frontend' is Failed"
    assert w["deploy_stage"]["status"] == "Skipped"
    assert "test_barrier Skipped — dependency failed: 'build_frontend' is Failed" in proc.stderr


def test_ci_fan_in_validates(gxo) -> None:
    proc = gxo("validate", "--graph", str(CI_FAN_IN))
    assert proc.returncode == 0, proc.stderr
    assert "level 1: test_barrier" in proc.stdout


JOIN_ROLES = Path(__file__).resolve().parents[1] / "playbooks" / "legacy" / "join_roles.gxo.yaml"


def _rows(report: dict) -> dict[str, list]:
    w = report["workloads"]
    return {
        key: json.loads(w[name]["summary"]["formatted_content"])
        for key, name in (("left", "logins_with_users_rows"), ("right", "users_with_logins_rows"))
    }


def test_legacy_join_roles_return_the_same_rows_run_directly_and_after_migrate(
    gxo, tmp_path: Path
) -> None:
    direct_report = tmp_path / "direct.json"
    direct = gxo(
        "run", str(JOIN_ROLES), "--workspace", str(tmp_path), "--report", str(direct_report)
    )
    assert direct.returncode == 0, direct.stderr
    assert "is now 'right'" in direct.stderr and "is now 'left'" in direct.stderr

    migrated = tmp_path / "migrated.gxo.yaml"
    proc = gxo("migrate", "-f", str(JOIN_ROLES), "-o", str(migrated))
    assert proc.returncode == 0, proc.stderr
    text = migrated.read_text()
    assert 'join_type: "right"' in text and 'merge_strategy: "merge"' in text
    assert "merge_strategy: nest}" in text
    after_report = tmp_path / "after.json"
    after = gxo("run", str(migrated), "--workspace", str(tmp_path), "--report", str(after_report))
    assert after.returncode == 0, after.stderr
    assert "deprecated" not in after.stderr and "warning" not in after.stderr

    rows = _rows(json.loads(direct_report.read_text()))
    assert rows == _rows(json.loads(after_report.read_text()))
    # v0.1.2a's meaning: 'left' kept the unmatched probe record (login of user 3),
    # 'right' the unmatched build record (bob, who never logged in).
    assert rows["left"] == [
        {"user_id": 1, "name": "ada", "at": "09:00"},
        {"user_id": 3, "at": "10:00"},
    ]
    assert rows["right"] == [
        {"users2": {"user_id": 1, "name": "ada"}, "logins2": {"user_id": 1, "at": "09:00"}},
        {"users2": {"user_id": 2, "name": "bob"}, "logins2": None},
    ]
