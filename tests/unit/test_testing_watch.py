"""``gxo test --watch``: which test files a change re-runs, driven by real file changes."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import watchfiles

from gxo.testing.discovery import TestFile
from gxo.testing.runner import watch_roots
from gxo.testing.watch import Watcher, find_references


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """Two test files: one reads a data file and runs a playbook, one is self-contained."""
    write(tmp_path / "data" / "users.csv", "id\n1\n")
    write(tmp_path / "vars" / "prod.yaml", "threshold: 3\n")
    write(
        tmp_path / "site.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: site
        workloads:
          - name: load_vars
            process: { module: exec, params: { command: cat, args: [vars/prod.yaml] } }
        """,
    )
    write(
        tmp_path / "tests" / "site.test.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: site-test
        workloads:
          - name: run_site
            process: { module: exec, params: { command: gxo, args: [run, ../site.gxo.yaml] } }
          - name: data
            process: { module: exec, params: { command: cat, args: ["{{ gxo_test.dir }}/../data/users.csv"] } }
          - name: fixtures
            process: { module: exec, params: { command: ls, cwd: fixtures } }
        """,
    )
    write(tmp_path / "tests" / "fixtures" / "a.json", "{}")
    write(
        tmp_path / "tests" / "plain.test.gxo.yaml",
        """
        schemaVersion: "1.0.0"
        name: plain
        workloads:
          - name: echo
            process: { module: exec, params: { command: echo, args: ["no such file.txt", "a b"] } }
        """,
    )
    return tmp_path


def names(tests: list[TestFile]) -> list[str]:
    return [t.path.name for t in tests]


def test_references_are_existing_paths_named_by_the_test_followed_through_playbooks(
    project: Path,
) -> None:
    refs = find_references(project / "tests" / "site.test.gxo.yaml")
    assert refs == {
        (project / "site.gxo.yaml").resolve(),
        (project / "vars" / "prod.yaml").resolve(),  # named by site.gxo.yaml, relative to it
        (project / "data" / "users.csv").resolve(),  # after a template prefix
        (project / "tests" / "fixtures").resolve(),  # a directory
    }
    assert find_references(project / "tests" / "plain.test.gxo.yaml") == frozenset()


def test_broken_yaml_references_nothing(tmp_path: Path) -> None:
    assert find_references(write(tmp_path / "x.test.gxo.yaml", "a: [unclosed\n")) == frozenset()


def test_select_reruns_changed_tests_and_tests_referencing_changed_files(project: Path) -> None:
    watcher = Watcher([project / "tests"], run=None, write=print)  # type: ignore[arg-type]
    tests_dir = project / "tests"
    assert names(watcher.select({(tests_dir / "plain.test.gxo.yaml").resolve()})) == [
        "plain.test.gxo.yaml"
    ]
    for changed in (
        "data/users.csv",
        "vars/prod.yaml",
        "site.gxo.yaml",
        "tests/fixtures/a.json",
        "tests/fixtures/new.json",
    ):
        assert names(watcher.select({(project / changed).resolve()})) == ["site.test.gxo.yaml"], (
            changed
        )
    assert watcher.select({(project / "unrelated.txt").resolve()}) == []
    new = write(tests_dir / "new.test.gxo.yaml", "name: x\n")
    assert names(watcher.select({new.resolve()})) == ["new.test.gxo.yaml"]


def test_watch_roots_cover_the_given_paths_and_referenced_directories(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    roots = watch_roots([Path("tests")])
    assert set(roots) == {project.resolve()}  # site.gxo.yaml lives in the project root
    roots = watch_roots([Path("tests/plain.test.gxo.yaml")])
    assert roots == [(project / "tests").resolve()]


async def drive(
    watcher: Watcher,
    root: Path,
    change: Callable[[], object],
    *,
    expect_runs: int = 1,
    wait: float = 10,
) -> list[list[str]]:
    """Run ``watcher.loop`` over real watchfiles changes in ``root``; apply ``change``."""
    runs: list[list[str]] = []
    ran = asyncio.Event()

    async def record(tests: list[TestFile]) -> None:
        runs.append(names(tests))
        if len(runs) >= expect_runs:
            ran.set()

    watcher._run = record
    stop = asyncio.Event()
    loop_task = asyncio.create_task(
        watcher.loop(watchfiles.awatch(root, stop_event=stop, debounce=400, step=30))
    )
    try:
        await asyncio.sleep(0.3)  # let the watcher start before changing files
        change()
        await asyncio.wait_for(ran.wait(), wait)
        await asyncio.sleep(0.3)  # nothing more should arrive
    finally:
        stop.set()
        await asyncio.wait_for(loop_task, 5)
    return runs


async def test_loop_reruns_the_test_a_real_data_file_change_affects(project: Path) -> None:
    output: list[str] = []
    watcher = Watcher([project / "tests"], run=None, write=output.append)  # type: ignore[arg-type]
    runs = await drive(
        watcher, project, lambda: (project / "data" / "users.csv").write_text("id\n2\n")
    )
    assert runs == [["site.test.gxo.yaml"]]
    headers = [line for line in output if "re-running" in line]
    assert len(headers) == 1
    assert headers[0].startswith("\n[")  # no screen clearing when not a TTY
    assert "changed: " in headers[0] and "users.csv — re-running 1 test file" in headers[0]
    assert output[0].startswith("watching ")


async def test_loop_reruns_an_edited_test_file_and_ignores_unrelated_files(project: Path) -> None:
    watcher = Watcher([project / "tests"], run=None, write=lambda _: None)  # type: ignore[arg-type]
    plain = project / "tests" / "plain.test.gxo.yaml"

    def change() -> None:
        (project / "notes.txt").write_text("unrelated")
        plain.write_text(plain.read_text() + "# edited\n")

    assert await drive(watcher, project, change) == [["plain.test.gxo.yaml"]]


async def test_files_written_by_a_test_run_do_not_trigger_another_run(project: Path) -> None:
    data = project / "data" / "users.csv"
    runs: list[list[str]] = []

    async def run_that_writes(tests: list[TestFile]) -> None:
        runs.append(names(tests))
        data.write_text("written by the test\n")  # a test writing a file it also reads

    watcher = Watcher([project / "tests"], run=run_that_writes, write=lambda _: None)
    await watcher.run([])  # a run happened: its own write is in its window
    runs.clear()
    changed = watcher.relevant([(watchfiles.Change.modified, str(data))])
    assert changed == set()
    # A later edit by the user does count.
    await asyncio.sleep(0.1)
    data.write_text("edited by the user\n")
    assert watcher.relevant([(watchfiles.Change.modified, str(data))]) == {data.resolve()}
    # Test files always count, and deleted files too.
    test_file = project / "tests" / "plain.test.gxo.yaml"
    assert watcher.relevant([(watchfiles.Change.modified, str(test_file))]) == {test_file.resolve()}
    gone = project / "gone.txt"
    assert watcher.relevant([(watchfiles.Change.deleted, str(gone))]) == {gone.resolve()}


async def test_tty_clears_the_screen_before_a_rerun(project: Path) -> None:
    output: list[str] = []
    watcher = Watcher([project / "tests"], run=None, write=output.append, tty=True)  # type: ignore[arg-type]
    await drive(
        watcher, project, lambda: (project / "vars" / "prod.yaml").write_text("threshold: 4\n")
    )
    assert any(line.startswith("\x1b[2J\x1b[H[") for line in output)
