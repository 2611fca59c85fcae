"""filesystem:* errors say what really happened (issue 8): a parent that is a file, /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gxo.modules.testkit import run_module

CASES = [
    ("filesystem:write", {"path": "afile/x", "content": "x", "create_parents": True}, "write"),
    ("filesystem:write", {"path": "afile/sub/x", "content": "x"}, "write"),
    ("filesystem:manage", {"path": "afile/sub", "state": "directory"}, "manage"),
    ("filesystem:manage", {"path": "afile/x", "state": "touch"}, "manage"),
    ("filesystem:read", {"path": "afile/x"}, "read"),
    ("filesystem:stat", {"path": "afile/x"}, "stat"),
    ("filesystem:list", {"path": "afile/x"}, "list"),
]


@pytest.mark.parametrize(("module", "params", "action"), CASES)
async def test_a_parent_that_is_a_file_is_named(tmp_path: Path, module, params, action) -> None:
    (tmp_path / "afile").write_text("I am a file")
    r = await run_module(module, params, workspace=tmp_path)
    target = tmp_path / params["path"]
    # Was "already exists" (mkdir of the parents) or "does not exist" (list).
    assert r.error == f"cannot {action} {target}: {tmp_path / 'afile'} is a file, not a directory"


async def test_a_missing_parent_still_does_not_exist(tmp_path: Path) -> None:
    r = await run_module("filesystem:read", {"path": "nodir/x"}, workspace=tmp_path)
    assert r.error == f"cannot read {tmp_path / 'nodir/x'}: does not exist"


@pytest.mark.skipif(not os.path.exists("/proc/version"), reason="needs Linux /proc")
async def test_writing_proc_version_says_why_it_cannot(tmp_path: Path) -> None:
    # /proc/version exists (a procfs file reporting size 0); the atomic write fails to
    # create its temporary file in /proc. Was: "cannot write /proc/version: does not exist".
    r = await run_module("filesystem:write", {"path": "/proc/version", "content": "x"})
    assert r.status == "Failed"
    assert r.error == (
        "cannot write /proc/version: /proc does not allow creating files (filesystem:write "
        "writes a temporary file beside the target; /proc/version is a special file, "
        "not replaceable)"
    )
    touched = await run_module("filesystem:manage", {"path": "/proc/gxo-new", "state": "touch"})
    assert touched.error == "cannot create /proc/gxo-new: /proc does not allow creating files"


@pytest.mark.skipif(not os.path.exists("/proc/version"), reason="needs Linux /proc")
async def test_reading_and_stating_proc_version_tell_the_truth() -> None:
    # stat reports size 0, yet read returns the content: read must not trust st_size.
    st = await run_module("filesystem:stat", {"path": "/proc/version"})
    assert st.ok and st.summary["size"] == 0
    r = await run_module("filesystem:read", {"path": "/proc/version"})
    assert r.ok, r.error
    assert r.summary["content"] == Path("/proc/version").read_text()
    assert r.summary["size"] == len(r.summary["content"].encode())
