"""filesystem:read / write / stat / list / manage against a real temporary directory."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from unprivileged import run_unprivileged

from gxo.modules.testkit import run_module

IS_ROOT = os.geteuid() == 0


def leftovers(directory: Path) -> list[str]:
    """Temporary files filesystem:write may have left behind."""
    return [p.name for p in directory.rglob("*.gxo-tmp")]


# -- filesystem:read -------------------------------------------------------------


async def test_read_text_relative_to_workspace(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "app.json").write_text('{"enabled": true}\n', encoding="utf-8")
    r = await run_module("filesystem:read", {"path": "conf/app.json"}, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary == {
        "content": '{"enabled": true}\n',
        "encoding": "utf-8",
        "size": 18,
        "path": str(tmp_path / "conf" / "app.json"),
    }


async def test_read_other_encoding_and_binary(tmp_path: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("café".encode("latin-1"))
    r = await run_module(
        "filesystem:read", {"path": "latin.txt", "encoding": "latin-1"}, workspace=tmp_path
    )
    assert r.summary["content"] == "café"
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    r = await run_module(
        "filesystem:read", {"path": "blob.bin", "binary": True}, workspace=tmp_path
    )
    assert r.summary["encoding"] == "base64"
    assert base64.b64decode(r.summary["content"]) == bytes(range(256))
    assert r.summary["size"] == 256


@pytest.mark.parametrize(
    ("setup", "params", "message"),
    [
        (None, {"path": "missing.txt"}, "cannot read {ws}/missing.txt: does not exist"),
        ("dir", {"path": "adir"}, "cannot read {ws}/adir: is a directory"),
        (
            "bad",
            {"path": "bad.txt"},
            "{ws}/bad.txt is not valid utf-8 text (byte 1): set 'encoding', or 'binary: true' for base64",
        ),
        (
            "big",
            {"path": "big.txt", "max_size": 10},
            "{ws}/big.txt is 20 bytes, more than max_size=10",
        ),
        ("big", {"path": "big.txt", "encoding": "klingon"}, "unknown encoding 'klingon'"),
    ],
)
async def test_read_errors(tmp_path: Path, setup: str | None, params: dict, message: str) -> None:
    if setup == "dir":
        (tmp_path / "adir").mkdir()
    elif setup == "bad":
        (tmp_path / "bad.txt").write_bytes(b"a\xff\xfe")
    elif setup == "big":
        (tmp_path / "big.txt").write_text("x" * 20)
    r = await run_module("filesystem:read", params, workspace=tmp_path)
    assert r.status == "Failed"
    assert message.format(ws=tmp_path) in r.error


# -- filesystem:write ------------------------------------------------------------


async def test_write_content_creates_parents_with_mode(tmp_path: Path) -> None:
    r = await run_module(
        "filesystem:write",
        {"path": "out/deep/report.txt", "content": "héllo\n", "mode": "0600"},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    target = tmp_path / "out" / "deep" / "report.txt"
    assert target.read_text(encoding="utf-8") == "héllo\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert r.summary == {"path": str(target), "bytes_written": 7, "changed": True, "mode": "0600"}
    assert leftovers(tmp_path) == []


async def test_write_is_idempotent_and_keeps_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "run.sh"
    target.write_text("echo old\n")
    target.chmod(0o755)
    first = await run_module(
        "filesystem:write", {"path": "run.sh", "content": "echo new\n"}, workspace=tmp_path
    )
    assert first.summary["changed"] is True
    assert first.summary["mode"] == "0755"  # an overwrite keeps the file's permissions
    again = await run_module(
        "filesystem:write", {"path": "run.sh", "content": "echo new\n"}, workspace=tmp_path
    )
    assert again.summary["changed"] is False
    mode_only = await run_module(
        "filesystem:write",
        {"path": "run.sh", "content": "echo new\n", "mode": "0700"},
        workspace=tmp_path,
    )
    assert mode_only.summary["changed"] is True
    assert target.stat().st_mode & 0o777 == 0o700
    assert leftovers(tmp_path) == []


async def test_write_new_file_default_mode_and_structured_content(tmp_path: Path) -> None:
    r = await run_module(
        "filesystem:write",
        {"path": "data.json", "content": "{{ cfg }}"},
        variables={"cfg": {"a": [1, 2]}},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert json.loads((tmp_path / "data.json").read_text()) == {"a": [1, 2]}
    assert r.summary["mode"] == "0644"
    assert (tmp_path / "data.json").stat().st_mode & 0o777 == 0o644


async def test_write_binary_round_trip_and_append(tmp_path: Path) -> None:
    payload = base64.b64encode(b"\x00\x01\xff").decode()
    r = await run_module(
        "filesystem:write",
        {"path": "b.bin", "content": payload, "binary": True},
        workspace=tmp_path,
    )
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01\xff"
    r = await run_module(
        "filesystem:write",
        {"path": "b.bin", "content": "!!", "binary": False, "append": True},
        workspace=tmp_path,
    )
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01\xff!!"
    assert r.summary["bytes_written"] == 2
    bad = await run_module(
        "filesystem:write",
        {"path": "c.bin", "content": "not base64!", "binary": True},
        workspace=tmp_path,
    )
    assert bad.status == "Failed"
    assert "content is not valid base64" in bad.error
    assert not (tmp_path / "c.bin").exists()


async def test_write_follows_symlink(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to("real.txt")
    r = await run_module(
        "filesystem:write", {"path": "link.txt", "content": "new"}, workspace=tmp_path
    )
    assert r.ok, r.error
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "new"


RECORDS = [{"name": "ada", "n": 1}, {"name": "bob", "n": 2, "tags": ["x"]}]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, '{"name": "ada", "n": 1}\n{"name": "bob", "n": 2, "tags": ["x"]}\n'),
        (
            {"format": "json"},
            '[\n{"name": "ada", "n": 1},\n{"name": "bob", "n": 2, "tags": ["x"]}\n]\n',
        ),
        ({"format": "text", "line_template": "{{ record.name }}={{ record.n }}"}, "ada=1\nbob=2\n"),
    ],
)
async def test_write_stream_formats(tmp_path: Path, params: dict, expected: str) -> None:
    r = await run_module(
        "filesystem:write", {"path": "out.txt", **params}, inputs=RECORDS, workspace=tmp_path
    )
    assert r.ok, r.error
    assert (tmp_path / "out.txt").read_text() == expected
    assert r.summary["records_written"] == 2
    if params.get("format") == "json":
        assert json.loads(expected)[1]["tags"] == ["x"]


async def test_write_stream_csv_and_append_keeps_one_header(tmp_path: Path) -> None:
    rows = [{"name": "ada", "n": 1, "meta": {"k": 1}}, {"name": "bob", "n": 2}]
    r = await run_module(
        "filesystem:write", {"path": "t.csv", "format": "csv"}, inputs=rows, workspace=tmp_path
    )
    assert r.ok, r.error
    assert (tmp_path / "t.csv").read_text() == 'name,n,meta\nada,1,"{""k"": 1}"\nbob,2,\n'
    r = await run_module(
        "filesystem:write",
        {"path": "t.csv", "format": "csv", "append": True},
        inputs=[{"name": "cy", "n": 3}],
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert (tmp_path / "t.csv").read_text().splitlines() == [
        "name,n,meta",
        'ada,1,"{""k"": 1}"',
        "bob,2,",
        "cy,3",
    ]


async def test_write_stream_failure_leaves_target_untouched(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("precious\n")
    rows = [{"a": 1}, {"a": 2, "surprise": 3}]
    r = await run_module(
        "filesystem:write", {"path": "t.csv", "format": "csv"}, inputs=rows, workspace=tmp_path
    )
    assert r.status == "Failed"
    assert (
        "record 2 has fields not in the CSV header (taken from the first record): surprise"
        in r.error
    )
    assert (tmp_path / "t.csv").read_text() == "precious\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("params", "inputs", "message"),
    [
        ({"path": "x"}, None, "nothing to write: give content, or stream_inputs to write records"),
        (
            {"path": "x", "content": "a"},
            [{"a": 1}],
            "give either content or stream_inputs, not both",
        ),
        (
            {"path": "x", "content": "a", "format": "csv"},
            None,
            "format and line_template apply to stream input",
        ),
        ({"path": "x", "format": "text"}, None, "format: text needs a line_template"),
        (
            {"path": "x", "content": "a", "mode": 644},
            None,
            'mode must be a quoted octal string such as "0644", got 644',
        ),
        (
            {"path": "x", "content": "a", "mode": "rwx"},
            None,
            "mode must be an octal permission string",
        ),
        (
            {"path": "x", "format": "json", "append": True},
            None,
            "append cannot extend a JSON array",
        ),
        (
            {"path": "nodir/x", "content": "a", "create_parents": False},
            None,
            "directory {ws}/nodir does not exist (create_parents is false)",
        ),
        ({"path": ".", "content": "a"}, None, "cannot write {ws}: it is a directory"),
    ],
)
async def test_write_errors(
    tmp_path: Path, params: dict, inputs: list | None, message: str
) -> None:
    r = await run_module("filesystem:write", params, inputs=inputs, workspace=tmp_path)
    assert r.status == "Failed"
    assert message.format(ws=tmp_path) in r.error
    assert leftovers(tmp_path) == []


# -- filesystem:stat -------------------------------------------------------------


async def test_stat_file_dir_and_symlink(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("12345")
    (tmp_path / "f.txt").chmod(0o640)
    (tmp_path / "d").mkdir()
    (tmp_path / "l").symlink_to("f.txt")
    f = (await run_module("filesystem:stat", {"path": "f.txt"}, workspace=tmp_path)).summary
    assert f["type"] == "file" and f["is_file"] and not f["is_dir"]
    assert (f["size"], f["mode"], f["exists"], f["name"]) == (5, "0640", True, "f.txt")
    assert f["uid"] == os.getuid() and f["owner"]
    assert (
        f["modified_time"].endswith("Z")
        and abs(f["mtime"] - (tmp_path / "f.txt").stat().st_mtime) < 1e-3
    )
    d = (await run_module("filesystem:stat", {"path": "d"}, workspace=tmp_path)).summary
    assert d["type"] == "directory" and d["is_dir"]
    followed = (await run_module("filesystem:stat", {"path": "l"}, workspace=tmp_path)).summary
    assert (
        followed["type"],
        followed["is_symlink"],
        followed["link_target"],
        followed["size"],
    ) == ("file", True, "f.txt", 5)
    link = (
        await run_module(
            "filesystem:stat", {"path": "l", "follow_symlinks": False}, workspace=tmp_path
        )
    ).summary
    assert (link["type"], link["is_symlink"]) == ("symlink", True)


async def test_stat_missing(tmp_path: Path) -> None:
    r = await run_module("filesystem:stat", {"path": "nope"}, workspace=tmp_path)
    assert r.status == "Failed"
    assert r.error == f"cannot stat {tmp_path}/nope: does not exist"
    r = await run_module(
        "filesystem:stat", {"path": "nope", "must_exist": False}, workspace=tmp_path
    )
    assert r.ok
    assert r.summary == {"path": str(tmp_path / "nope"), "name": "nope", "exists": False}


# -- filesystem:list -------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path)


def make_tree(tmp_path: Path) -> Path:
    for rel in [
        "a.log",
        "b.txt",
        ".hidden.log",
        "sub/c.log",
        "sub/deeper/d.log",
        "sub/e.txt",
        "zdir/f.log",
    ]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(rel)
    return tmp_path


async def test_list_flat_streams_records(tree: Path) -> None:
    r = await run_module("filesystem:list", {"path": "."}, workspace=tree)
    assert r.ok, r.error
    assert [rec["relative_path"] for rec in r.records] == ["a.log", "b.txt", "sub", "zdir"]
    assert r.summary["count"] == 4 and r.summary["truncated"] is False
    assert r.summary["entries"] == r.records
    a = r.records[0]
    assert (a["path"], a["type"], a["size"], a["name"]) == (str(tree / "a.log"), "file", 5, "a.log")
    assert set(a) >= {"mode", "mtime", "modified_time", "owner", "group", "is_dir"}


async def test_list_recursive_pattern_type_depth_hidden(tree: Path) -> None:
    r = await run_module(
        "filesystem:list", {"path": ".", "recursive": True, "pattern": "*.log"}, workspace=tree
    )
    assert [rec["relative_path"] for rec in r.records] == [
        "a.log",
        "sub/c.log",
        "sub/deeper/d.log",
        "zdir/f.log",
    ]
    r = await run_module(
        "filesystem:list", {"recursive": True, "type": "directory"}, workspace=tree
    )
    assert [rec["relative_path"] for rec in r.records] == ["sub", "zdir", "sub/deeper"]
    r = await run_module(
        "filesystem:list", {"recursive": True, "max_depth": 2, "pattern": "*.log"}, workspace=tree
    )
    assert [rec["relative_path"] for rec in r.records] == ["a.log", "sub/c.log", "zdir/f.log"]
    r = await run_module(
        "filesystem:list", {"pattern": "*.log", "include_hidden": True}, workspace=tree
    )
    assert [rec["name"] for rec in r.records] == [".hidden.log", "a.log"]
    r = await run_module(
        "filesystem:list", {"recursive": True, "pattern": "sub/*.txt"}, workspace=tree
    )
    assert [rec["relative_path"] for rec in r.records] == ["sub/e.txt"]


async def test_list_summary_caps_entries(tmp_path: Path) -> None:
    for i in range(1005):
        (tmp_path / f"f{i:04d}").touch()
    r = await run_module("filesystem:list", {"path": str(tmp_path)})
    assert r.summary["count"] == 1005 and len(r.records) == 1005
    assert len(r.summary["entries"]) == 1000 and r.summary["truncated"] is True


async def test_list_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    r = await run_module("filesystem:list", {"path": "file"}, workspace=tmp_path)
    assert r.error == f"cannot list {tmp_path}/file: not a directory"
    r = await run_module("filesystem:list", {"path": "missing"}, workspace=tmp_path)
    assert r.error == f"cannot list {tmp_path}/missing: does not exist"
    r = await run_module("filesystem:list", {"type": "socket"}, workspace=tmp_path)
    assert r.status == "Failed"
    assert (
        "param 'type': Input should be 'any', 'file', 'directory' or 'symlink' (got 'socket')"
        in r.error
    )


def test_list_skips_unreadable_subdirectory() -> None:
    async def check(workdir: Path) -> None:
        root = make_tree(workdir)
        (root / "sub").chmod(0)
        try:
            r = await run_module(
                "filesystem:list", {"recursive": True, "pattern": "*.log"}, workspace=root
            )
        finally:
            (root / "sub").chmod(0o755)
        assert r.ok, r.error
        assert r.counters == {"unreadable_dirs": 1}
        assert any("permission denied" in line for _, line in r.logs)

    async def warm_up(workdir: Path) -> None:
        await run_module("filesystem:list", {"recursive": True}, workspace=make_tree(workdir))

    # As root (CI), in a child that dropped to nobody: root reads every directory.
    run_unprivileged(check, warm_up)


# -- filesystem:manage -----------------------------------------------------------


async def manage(tmp_path: Path, **params) -> object:
    return await run_module("filesystem:manage", params, workspace=tmp_path)


async def test_manage_directory_is_idempotent(tmp_path: Path) -> None:
    first = await manage(tmp_path, path="a/b", state="directory", mode="0750")
    assert first.ok, first.error
    assert first.summary["changed"] is True and first.summary["changes"] == ["created directory"]
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o750
    again = await manage(tmp_path, path="a/b", state="directory", mode="0750")
    assert again.summary["changed"] is False and again.summary["changes"] == []
    assert again.summary["state"] == "directory" and again.summary["mode"] == "0750"
    chmod = await manage(tmp_path, path="a/b", state="directory", mode="0700")
    assert chmod.summary["changes"] == ["mode 0750 -> 0700"]


async def test_manage_present_touch_absent(tmp_path: Path) -> None:
    first = await manage(tmp_path, path="f", state="present")
    assert first.summary["changes"] == ["created file"] and first.summary["mode"] == "0644"
    (tmp_path / "f").write_text("keep me")
    again = await manage(tmp_path, path="f", state="present")
    assert again.summary["changed"] is False
    assert (tmp_path / "f").read_text() == "keep me"
    os.utime(tmp_path / "f", (1_000_000, 1_000_000))
    touched = await manage(tmp_path, path="f", state="touch")
    assert touched.summary["changes"] == ["touched"] and touched.summary["state"] == "present"
    assert (tmp_path / "f").stat().st_mtime > 1_000_000
    gone = await manage(tmp_path, path="f", state="absent")
    assert gone.summary == {
        "path": str(tmp_path / "f"),
        "changed": True,
        "changes": ["removed"],
        "state": "absent",
        "exists": False,
    }
    again = await manage(tmp_path, path="f", state="absent")
    assert again.summary["changed"] is False


async def test_manage_absent_directory_needs_recursive(tmp_path: Path) -> None:
    (tmp_path / "d" / "x").mkdir(parents=True)
    r = await manage(tmp_path, path="d", state="absent")
    assert r.status == "Failed"
    assert (
        r.error
        == f"{tmp_path}/d is a directory that is not empty: set recursive: true to delete it with its contents"
    )
    r = await manage(tmp_path, path="d", state="absent", recursive=True)
    assert r.summary["changes"] == ["removed directory"]
    assert not (tmp_path / "d").exists()


async def test_manage_recursive_mode(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "e" / "f").write_text("x")
    r = await manage(tmp_path, path="d", state="directory", mode="0700", recursive=True)
    assert r.summary["changes"] == [
        "mode 0755 -> 0700",
        "mode/owner/group changed on 2 paths inside",
    ]
    assert (tmp_path / "d" / "e" / "f").stat().st_mode & 0o777 == 0o700
    again = await manage(tmp_path, path="d", state="directory", mode="0700", recursive=True)
    assert again.summary["changed"] is False


@pytest.mark.skipif(not IS_ROOT, reason="changing the owner needs root")
async def test_manage_owner_and_group_by_name_and_id(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    r = await manage(tmp_path, path="f", state="present", owner="nobody", group=65534)
    assert r.ok, r.error
    assert r.summary["changes"] == ["owner root -> nobody", "group root -> nogroup"]
    assert ((tmp_path / "f").stat().st_uid, (tmp_path / "f").stat().st_gid) == (65534, 65534)
    again = await manage(tmp_path, path="f", state="present", owner=65534, group="nogroup")
    assert again.summary["changed"] is False
    assert (again.summary["owner"], again.summary["group"]) == ("nobody", "nogroup")


def test_manage_owner_without_privileges() -> None:
    async def check(workdir: Path) -> None:
        (workdir / "f").write_text("x")
        r = await manage(workdir, path="f", state="present", owner="root")
        assert r.status == "Failed"
        assert "cannot change owner root of" in r.error and "operation not permitted" in r.error

    async def warm_up(workdir: Path) -> None:
        (workdir / "f").write_text("x")
        await manage(workdir, path="f", state="present", owner="nobody", group="nogroup")

    # As root (CI), in a child that dropped to nobody: root may change owners.
    run_unprivileged(check, warm_up)


@pytest.mark.parametrize(
    ("setup", "params", "message"),
    [
        (
            "file",
            {"path": "f", "state": "directory"},
            "{ws}/f exists and is not a directory: remove it first (state: absent)",
        ),
        (
            "dir",
            {"path": "d", "state": "present"},
            "{ws}/d is a directory: state present manages files (use state: directory)",
        ),
        (
            None,
            {"path": "no/f", "state": "touch"},
            "cannot create {ws}/no/f: directory {ws}/no does not exist",
        ),
        (
            None,
            {"path": "f", "state": "present", "owner": "no-such-user-xyz"},
            "unknown user 'no-such-user-xyz'",
        ),
        (
            None,
            {"path": "f", "state": "present", "group": "no-such-group-xyz"},
            "unknown group 'no-such-group-xyz'",
        ),
        (
            None,
            {"path": "f", "state": "absent", "mode": "0644"},
            "mode, owner and group cannot be enforced with state: absent",
        ),
        (
            None,
            {"path": "f", "state": "present", "recursive": True},
            "recursive applies to state: directory or absent, not present",
        ),
        (None, {"path": "f", "state": "gone"}, "param 'state'"),
        (
            None,
            {"path": "f", "state": "present", "mode": 755},
            'mode must be a quoted octal string such as "0644"',
        ),
    ],
)
async def test_manage_errors(tmp_path: Path, setup: str | None, params: dict, message: str) -> None:
    if setup == "file":
        (tmp_path / "f").write_text("x")
    elif setup == "dir":
        (tmp_path / "d").mkdir()
    r = await run_module("filesystem:manage", params, workspace=tmp_path)
    assert r.status == "Failed"
    assert message.format(ws=tmp_path) in r.error
    assert not (tmp_path / "f").exists() or setup == "file"


async def test_filesystem_pipeline_list_to_csv(run_yaml, tree: Path) -> None:
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: fs-pipeline
        channel_policy: {{ buffer_size: 1 }}
        workloads:
          - name: logs
            process: {{ module: filesystem:list, params: {{ path: "{tree}", recursive: true, pattern: "*.log" }} }}
          - name: save
            process:
              module: filesystem:write
              params: {{ path: "{tree}/inventory.txt", format: text, line_template: "{{{{ record.relative_path }}}} {{{{ record.size }}}}" }}
            stream_inputs: [logs]
            register: saved
          - name: check
            process: {{ module: control:assert, params: {{ condition: "saved.records_written == 4" }} }}
        """
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert (
        tree / "inventory.txt"
    ).read_text() == "a.log 5\nsub/c.log 9\nsub/deeper/d.log 16\nzdir/f.log 10\n"
