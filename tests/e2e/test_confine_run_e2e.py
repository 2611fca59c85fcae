"""`gxo run --confine` as a user runs it (a subprocess): traversal, absolute paths and
symlinks leading out are refused, --allow-path dirs are not; plain `gxo run` unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PLAYBOOKS

WRITE = str(PLAYBOOKS / "confine" / "write_target.gxo.yaml")
LITERAL = PLAYBOOKS / "confine" / "literal_escape.gxo.yaml"


@pytest.fixture
def places(tmp_path: Path) -> dict[str, Path]:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    ws.mkdir()
    outside.mkdir()
    return {"ws": ws, "outside": outside}


def _report(path: Path) -> dict:
    return json.loads(path.read_text())


def test_inside_the_workspace_works_confined(gxo, places: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = gxo("run", WRITE, "--confine", "-w", str(places["ws"]), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert (places["ws"] / "out" / "inside.txt").read_text() == "hello"
    assert _report(report)["workloads"]["read"]["summary"]["content"] == "hello"


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("../outside/x.txt", "resolves to {outside}/x.txt, outside the workspace {ws}"),
        ("{outside}/x.txt", "resolves to {outside}/x.txt, outside the workspace {ws}"),
        ("to_outside/x.txt", "resolves to {outside}/x.txt (through a symlink), outside"),
        ("to_etc/gxo-x.txt", "resolves to /etc/gxo-x.txt (through a symlink), outside"),
        ("linked_dir/x.txt", "resolves to {outside}/x.txt (through a symlink), outside"),
    ],
)
def test_escapes_fail_the_workload_with_a_clear_error(
    gxo, places: dict[str, Path], target: str, says: str
) -> None:
    ws, outside = places["ws"], places["outside"]
    (ws / "to_outside").symlink_to(outside)
    (ws / "to_etc").symlink_to("/etc")
    (ws / "sub").mkdir()
    (ws / "linked_dir").symlink_to(outside, target_is_directory=True)
    target = target.format(outside=outside)
    proc = gxo("run", WRITE, "--confine", "-w", str(ws), "-e", f"target={target}")
    assert proc.returncode == 1, proc.stderr
    assert "write Failed" in proc.stderr
    assert f"{WRITE}:12:17: param 'path': path {target!r}" in proc.stderr
    assert says.format(outside=outside, ws=ws) in proc.stderr
    assert "allowed directories (--allow-path): none" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert list(outside.iterdir()) == []  # nothing was written outside


def test_allow_path_opens_one_more_directory(gxo, places: dict[str, Path], tmp_path: Path) -> None:
    ws, outside = places["ws"], places["outside"]
    (ws / "to_outside").symlink_to(outside)
    for target in (f"{outside}/a.txt", "../outside/b.txt", "to_outside/c.txt"):
        proc = gxo(
            "run", WRITE, "-w", str(ws), "--allow-path", str(outside), "-e", f"target={target}"
        )
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["a.txt", "b.txt", "c.txt"]
    # --allow-path implies --confine: anything else is still refused.
    elsewhere = tmp_path / "elsewhere.txt"
    proc = gxo(
        "run", WRITE, "-w", str(ws), "--allow-path", str(outside), "-e", f"target={elsewhere}"
    )
    assert proc.returncode == 1 and f"allowed directories (--allow-path): {outside}" in proc.stderr
    assert not elsewhere.exists()


def test_a_missing_allow_path_is_a_usage_error(gxo, places: dict[str, Path]) -> None:
    proc = gxo("run", WRITE, "--allow-path", str(places["ws"] / "nope"))
    assert proc.returncode == 2
    assert f"--allow-path {places['ws'] / 'nope'}: not a directory" in proc.stderr


def test_literal_escapes_are_refused_before_anything_runs(gxo, places: dict[str, Path]) -> None:
    ws = places["ws"]
    proc = gxo("run", str(LITERAL), "--confine", "-w", str(ws))
    assert proc.returncode == 2, proc.stderr
    assert f"{LITERAL}:10:" in proc.stderr and "workload 'up': param 'path'" in proc.stderr
    assert (
        f"{LITERAL}:14:" in proc.stderr
        and "workload 'pwd': param 'cwd': path '/tmp'" in proc.stderr
    )
    assert not (ws.parent / "escaped.txt").exists()


def test_unconfined_run_keeps_todays_behaviour(gxo, places: dict[str, Path]) -> None:
    ws, outside = places["ws"], places["outside"]
    (ws / "to_outside").symlink_to(outside)
    proc = gxo("run", str(LITERAL), "-w", str(ws))
    assert proc.returncode == 0, proc.stderr
    assert (ws.parent / "escaped.txt").read_text() == "up"
    proc = gxo("run", WRITE, "-w", str(ws), "-e", "target=to_outside/x.txt")
    assert proc.returncode == 0, proc.stderr
    assert (outside / "x.txt").read_text() == "hello"
