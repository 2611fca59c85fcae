"""``gxo test --watch`` ignores the temporary files editors and ``sed -i`` write (issue 18)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
import watchfiles

from gxo.testing.discovery import TestFile
from gxo.testing.watch import Watcher, is_editor_temp

TEST = """\
schemaVersion: "1.0.0"
name: reads-data
workloads:
  - name: data
    process: { module: exec, params: { command: cat, args: ["{{ gxo_test.dir }}/users.csv"] } }
"""


@pytest.mark.parametrize(
    "name",
    ["4913", "4914", "sedAb12Cd", "users.csv~", ".users.csv.swp", ".users.csv.swx", "#users.csv#",
     ".#users.csv", ".goutputstream-XY12ZQ", "users.csv___jb_tmp___", "users.csv.kate-swp",
     "users.csv.tmp", "users.csv.bak", "users.csv.orig"],
)  # fmt: skip
def test_editor_temp_names(name: str) -> None:
    assert is_editor_temp(Path("/w") / name)


@pytest.mark.parametrize(
    "name", ["users.csv", "site.test.gxo.yaml", "sed.yaml", "sedimentation", "v2.json", "49a13"]
)
def test_real_files_are_not_temp(name: str) -> None:
    assert not is_editor_temp(Path("/w") / name)


async def test_sed_i_and_a_vim_save_name_only_the_edited_file(tmp_path: Path) -> None:
    data = tmp_path / "users.csv"
    data.write_text("id\n1\n")
    (tmp_path / "data.test.gxo.yaml").write_text(TEST)
    output: list[str] = []
    runs: list[list[str]] = []
    ran = asyncio.Event()

    async def record(tests: list[TestFile]) -> None:
        runs.append([t.path.name for t in tests])
        ran.set()

    watcher = Watcher([tmp_path], run=record, write=output.append)
    stop = asyncio.Event()
    task = asyncio.create_task(
        watcher.loop(watchfiles.awatch(tmp_path, stop_event=stop, debounce=300, step=30))
    )
    try:
        await asyncio.sleep(0.3)
        probe = tmp_path / "4913"  # what vim writes and removes before saving
        probe.write_text("")
        probe.unlink()
        backup = tmp_path / "users.csv~"
        backup.write_text("id\n1\n")
        await asyncio.to_thread(subprocess.run, ["sed", "-i", "s/1/2/", str(data)], check=True)
        await asyncio.wait_for(ran.wait(), 10)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert runs == [["data.test.gxo.yaml"]]
    header = next(line for line in output if "re-running" in line)
    changed = header.split("changed: ", 1)[1].split(" — ", 1)[0]
    assert Path(changed).name == "users.csv" and "," not in changed, header


def test_relevant_drops_temp_files(tmp_path: Path) -> None:
    watcher = Watcher([tmp_path], run=None, write=lambda _: None)  # type: ignore[arg-type]
    raw = [
        (watchfiles.Change.added, str(tmp_path / "4913")),
        (watchfiles.Change.deleted, str(tmp_path / "sedQx81aB")),
        (watchfiles.Change.modified, str(tmp_path / "users.csv")),
    ]
    assert watcher.relevant(raw) == {(tmp_path / "users.csv").resolve()}
