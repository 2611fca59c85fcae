"""filesystem:write and filesystem:manage under ``gxo run --check`` and ``--diff``."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

from unprivileged import run_unprivileged

from gxo.modules.system._diff import DIFF_LIMIT, content_diff
from gxo.modules.testkit import run_playbook_text


async def run(
    tmp_path: Path, workloads: str, *, check: bool = True, diff: bool = True, **kw: Any
) -> Any:
    text = 'schemaVersion: "1.0.0"\nname: fs\nworkloads:\n' + textwrap.indent(
        textwrap.dedent(workloads).strip("\n"), "  "
    )
    return await run_playbook_text(text, workspace=tmp_path, check=check, diff=diff, **kw)


def one(result: Any, name: str = "w") -> Any:
    return result.states[name]


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None, float]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
            out[str(p.relative_to(root))] = (st.st_mode, data, st.st_mtime)
    return out


# -- filesystem:write ---------------------------------------------------------------


async def test_write_predicts_content_and_mode_changes_without_writing(tmp_path: Path) -> None:
    (tmp_path / "same.txt").write_text("a\nb\n")
    (tmp_path / "same.txt").chmod(0o644)
    (tmp_path / "mode.txt").write_text("m\n")
    (tmp_path / "mode.txt").chmod(0o644)
    (tmp_path / "text.txt").write_text("one\ntwo\nthree")
    (tmp_path / "log.txt").write_text("first\n")
    before = snapshot(tmp_path)
    result = await run(
        tmp_path,
        """
        - name: same
          process: { module: filesystem:write, params: { path: same.txt, content: "a\\nb\\n" } }
        - name: mode
          process: { module: filesystem:write, params: { path: mode.txt, content: "m\\n", mode: "0600" } }
        - name: text
          process: { module: filesystem:write, params: { path: text.txt, content: "one\\n2\\nthree" } }
        - name: new
          process: { module: filesystem:write, params: { path: sub/new.json, content: { k: 1 } } }
        - name: append
          process: { module: filesystem:write, params: { path: log.txt, content: "second\\n", append: true } }
        - name: append_nothing
          process: { module: filesystem:write, params: { path: log.txt, content: "", append: true } }
        """,
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert snapshot(tmp_path) == before  # nothing written, created or chmod-ed
    s = result.states
    assert {n: st.check_outcome for n, st in s.items()} == dict.fromkeys(s, "predicted")
    assert s["same"].summary == {
        "path": str(tmp_path / "same.txt"),
        "bytes_written": 4,
        "changed": False,
        "mode": "0644",
    }
    assert s["same"].diffs == []
    assert s["mode"].summary["changed"] is True and s["mode"].summary["mode"] == "0600"
    assert s["mode"].diffs == [
        f"--- {tmp_path / 'mode.txt'}\n+++ {tmp_path / 'mode.txt'}\nold mode 0644\nnew mode 0600\n"
    ]
    path = tmp_path / "text.txt"
    assert s["text"].diffs == [
        f"--- {path}\n+++ {path}\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
        "\\ No newline at end of file\n"
    ]
    new = tmp_path / "sub" / "new.json"
    assert s["new"].summary == {
        "path": str(new),
        "bytes_written": len(json.dumps({"k": 1}, indent=2)) + 1,
        "changed": True,
        "mode": "0644",
    }
    assert (
        s["new"]
        .diffs[0]
        .startswith(f"new file mode 0644\n--- /dev/null\n+++ {new}\n@@ -0,0 +1,3 @@\n+{{\n")
    )
    log = tmp_path / "log.txt"
    assert s["append"].summary["changed"] is True and s["append"].summary["bytes_written"] == 7
    assert s["append"].diffs == [f"--- {log}\n+++ {log}\n@@ -1 +1,2 @@\n first\n+second\n"]
    assert s["append_nothing"].summary["changed"] is False


async def test_write_check_reads_the_input_stream_and_follows_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real.jsonl").write_text('{"n": 1}\n')
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "real.jsonl")
    result = await run(
        tmp_path,
        """
        - name: gen
          process: { module: data:generate_from_list, params: { items: [{ n: 1 }, { n: 2 }] } }
        - name: w
          stream_inputs: [gen]
          process: { module: filesystem:write, params: { path: link.jsonl } }
        - name: csv
          stream_inputs: [gen]
          process: { module: filesystem:write, params: { path: out.csv, format: csv } }
        """,
    )
    assert result.status == "Completed"
    w = one(result)
    assert w.summary == {
        "path": str(tmp_path / "real.jsonl"),
        "bytes_written": 18,
        "changed": True,
        "mode": "0644",
        "records_written": 2,
    }
    assert w.records_in == 2
    assert w.diffs[0].endswith('@@ -1 +1,2 @@\n {"n": 1}\n+{"n": 2}\n')
    assert one(result, "csv").summary["records_written"] == 2
    assert "+n\n+1\n+2\n" in one(result, "csv").diffs[0]
    assert (tmp_path / "real.jsonl").read_text() == '{"n": 1}\n'
    assert not (tmp_path / "out.csv").exists()


async def test_write_check_shows_binary_and_large_files_by_size(tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"\0\1\2")
    big = "x" * (DIFF_LIMIT + 10)
    (tmp_path / "big.txt").write_text(big)
    result = await run(
        tmp_path,
        f"""
        - name: bin
          process: {{ module: filesystem:write, params: {{ path: bin, content: "AAEC", binary: true }} }}
        - name: bin_changed
          process: {{ module: filesystem:write, params: {{ path: bin, content: "AAED", binary: true }} }}
        - name: big
          process: {{ module: filesystem:write, params: {{ path: big.txt, content: "{big[:-1]}" }} }}
        """,
    )
    assert result.status == "Completed", [s.error for s in result.states.values()]
    s = result.states
    assert s["bin"].summary["changed"] is False
    assert s["bin_changed"].diffs == [f"Binary file {tmp_path / 'bin'} differs (3 -> 3 bytes)\n"]
    assert s["big"].summary["changed"] is True
    n = DIFF_LIMIT + 10
    assert s["big"].diffs == [
        f"{tmp_path / 'big.txt'}: content differs ({n} -> {n - 1} bytes; too large to show)\n"
    ]


async def test_write_check_fails_where_the_write_would_fail(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("")
    result = await run(
        tmp_path,
        """
        - name: is_dir
          process: { module: filesystem:write, params: { path: adir, content: x } }
        - name: file_parent
          process: { module: filesystem:write, params: { path: afile/x.txt, content: x } }
        - name: no_parents
          process: { module: filesystem:write, params: { path: missing/x.txt, content: x, create_parents: false } }
        - name: both
          process: { module: filesystem:write, params: { path: x.txt, content: x } }
          stream_inputs: [gen]
        - name: gen
          process: { module: data:generate_from_list, params: { items: [1] } }
        - name: encoding
          process: { module: filesystem:write, params: { path: x.txt, content: x, encoding: nope } }
        """,
    )
    s = result.states
    assert result.status == "Failed"
    assert s["is_dir"].error == f"cannot write {tmp_path / 'adir'}: it is a directory"
    assert s["file_parent"].error == (
        f"cannot write {tmp_path / 'afile' / 'x.txt'}: {tmp_path / 'afile'} is a file, not a directory"
    )
    assert s["no_parents"].error == (
        f"cannot write {tmp_path / 'missing' / 'x.txt'}: directory {tmp_path / 'missing'} "
        "does not exist (create_parents is false)"
    )
    assert s["both"].error == "give either content or stream_inputs, not both"
    assert s["encoding"].error == "unknown encoding 'nope'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "afile"]


def test_check_predicts_permission_denied() -> None:
    """As root (CI) in a child that dropped to nobody: root may write anywhere."""

    async def check(workdir: Path) -> None:
        locked = workdir / "locked"
        locked.mkdir(mode=0o500)
        try:
            result = await run(
                workdir,
                """
                - name: write
                  process: { module: filesystem:write, params: { path: locked/new/x.txt, content: x } }
                - name: manage
                  process: { module: filesystem:manage, params: { path: locked/x, state: present } }
                """,
            )
        finally:
            locked.chmod(0o700)
        s = result.states
        assert s["write"].error == f"cannot write {locked / 'new' / 'x.txt'}: permission denied"
        assert s["manage"].error == f"cannot manage {locked / 'x'}: permission denied"
        assert list(locked.iterdir()) == []

    async def warm_up(workdir: Path) -> None:
        await run(
            workdir,
            """
            - name: write
              process: { module: filesystem:write, params: { path: x.txt, content: x } }
            - name: manage
              process: { module: filesystem:manage, params: { path: x, state: present } }
            """,
        )

    run_unprivileged(check, warm_up)


async def test_write_with_diff_but_without_check_shows_the_real_change(tmp_path: Path) -> None:
    (tmp_path / "cfg").write_text("port: 1\n")
    result = await run(
        tmp_path,
        """
        - name: w
          process: { module: filesystem:write, params: { path: cfg, content: "port: 2\\n" } }
        - name: new
          process: { module: filesystem:write, params: { path: fresh, content: "" } }
        - name: unchanged
          depends_on: [w]
          process: { module: filesystem:write, params: { path: cfg, content: "port: 2\\n" } }
        """,
        check=False,
    )
    assert result.status == "Completed"
    assert (tmp_path / "cfg").read_text() == "port: 2\n"
    cfg = tmp_path / "cfg"
    assert one(result).diffs == [f"--- {cfg}\n+++ {cfg}\n@@ -1 +1 @@\n-port: 1\n+port: 2\n"]
    assert one(result, "new").diffs == [
        f"--- /dev/null\n+++ {tmp_path / 'fresh'}\nnew file mode 0644\n"
    ]
    assert one(result, "unchanged").diffs == []
    assert one(result).check_outcome is None


def test_content_diff_edge_cases() -> None:
    assert content_diff("p", b"a", b"a") == ""
    assert content_diff("p", None, b"a", size_before=9, size_after=1) == (
        "p: content differs (9 -> 1 bytes; too large to show)\n"
    )
    assert content_diff("p", b"\xff", b"a") == "Binary file p differs (1 -> 1 bytes)\n"


# -- filesystem:manage --------------------------------------------------------------


async def test_manage_predicts_each_change_and_makes_none(tmp_path: Path) -> None:
    (tmp_path / "gone.txt").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    (tmp_path / "tree").mkdir(mode=0o755)
    (tmp_path / "tree").chmod(0o755)
    (tmp_path / "tree" / "a").write_text("")
    (tmp_path / "tree" / "a").chmod(0o644)
    (tmp_path / "keep.txt").write_text("k")
    (tmp_path / "keep.txt").chmod(0o644)
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    result = await run(
        tmp_path,
        """
        - name: mkdir
          process: { module: filesystem:manage, params: { path: new/deep, state: directory, mode: "0750" } }
        - name: rm_file
          process: { module: filesystem:manage, params: { path: gone.txt, state: absent } }
        - name: rm_tree
          process: { module: filesystem:manage, params: { path: full, state: absent, recursive: true } }
        - name: rm_empty
          process: { module: filesystem:manage, params: { path: empty, state: absent } }
        - name: rm_missing
          process: { module: filesystem:manage, params: { path: nothing, state: absent } }
        - name: touch
          process: { module: filesystem:manage, params: { path: keep.txt, state: touch } }
        - name: chmod
          process: { module: filesystem:manage, params: { path: keep.txt, state: present, mode: "0600" } }
        - name: create
          process: { module: filesystem:manage, params: { path: new.txt, state: present, owner: "65534", group: "65534" } }
        - name: inside
          process: { module: filesystem:manage, params: { path: tree, state: directory, mode: "0700", recursive: true } }
        - name: steady
          process: { module: filesystem:manage, params: { path: keep.txt, state: present, mode: "0644" } }
        """,
    )
    assert result.status == "Completed", {n: s.error for n, s in result.states.items()}
    assert snapshot(tmp_path) == before
    s = result.states
    assert s["mkdir"].summary == {
        "path": str(tmp_path / "new" / "deep"),
        "changed": True,
        "changes": ["created directory"],
        "state": "directory",
        "exists": True,
        "mode": "0750",
        "owner": s["mkdir"].summary["owner"],
        "group": s["mkdir"].summary["group"],
    }
    assert s["rm_file"].summary["changes"] == ["removed"]
    assert s["rm_file"].summary["exists"] is False
    assert s["rm_tree"].summary["changes"] == ["removed directory"]
    assert s["rm_empty"].summary["changes"] == ["removed directory"]
    assert s["rm_missing"].summary["changed"] is False
    assert s["touch"].summary["changes"] == ["touched"]
    assert s["chmod"].summary["changes"] == ["mode 0644 -> 0600"]
    assert s["chmod"].summary["mode"] == "0600"
    created = s["create"].summary
    uid_changes = [c for c in created["changes"] if c.startswith(("owner", "group"))]
    expected = 2 - (os.geteuid() == 65534) - (os.getegid() == 65534)
    assert created["changes"][0] == "created file" and len(uid_changes) == expected
    assert s["inside"].summary["changes"] == [
        "mode 0755 -> 0700",
        "mode/owner/group changed on 1 paths inside",
    ]
    assert s["steady"].summary["changed"] is False and s["steady"].diffs == []
    path = tmp_path / "keep.txt"
    assert s["chmod"].diffs == [
        f"--- {path} (before)\n+++ {path} (after)\n@@ -1,5 +1,5 @@\n path: {path}\n state: present\n"
        f"-mode: 0644\n+mode: 0600\n owner: {created['owner'] if False else s['chmod'].summary['owner']}\n"
        f" group: {s['chmod'].summary['group']}\n"
    ]
    assert s["touch"].diffs == ["# touched\n"]
    assert s["inside"].diffs[0].endswith("# mode/owner/group changed on 1 paths inside\n")


async def test_manage_check_refuses_what_the_real_run_refuses(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    (tmp_path / "afile").write_text("")
    result = await run(
        tmp_path,
        """
        - name: not_empty
          process: { module: filesystem:manage, params: { path: full, state: absent } }
        - name: file_not_dir
          process: { module: filesystem:manage, params: { path: afile, state: directory } }
        - name: under_file
          process: { module: filesystem:manage, params: { path: afile/sub, state: directory } }
        - name: no_parent
          process: { module: filesystem:manage, params: { path: nowhere/x, state: present } }
        - name: dir_as_file
          process: { module: filesystem:manage, params: { path: full, state: touch } }
        """,
    )
    s = result.states
    assert s["not_empty"].error == (
        f"{tmp_path / 'full'} is a directory that is not empty: set recursive: true to delete it "
        "with its contents"
    )
    assert s["file_not_dir"].error.endswith(
        "exists and is not a directory: remove it first (state: absent)"
    )
    assert s["under_file"].error == (
        f"cannot manage {tmp_path / 'afile' / 'sub'}: {tmp_path / 'afile'} is a file, not a directory"
    )
    assert s["no_parent"].error.startswith(f"cannot create {tmp_path / 'nowhere' / 'x'}: directory")
    assert s["dir_as_file"].error.endswith("state touch manages files (use state: directory)")
    assert (tmp_path / "full" / "f").exists()


async def test_manage_with_diff_but_without_check_shows_the_real_change(tmp_path: Path) -> None:
    result = await run(
        tmp_path,
        """
        - name: w
          process: { module: filesystem:manage, params: { path: d, state: directory, mode: "0700" } }
        """,
        check=False,
    )
    d = tmp_path / "d"
    assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700
    diff = one(result).diffs[0]
    assert diff.startswith(f"--- {d} (before)\n+++ {d} (after)\n")
    assert "-state: absent\n+state: directory\n+mode: 0700\n" in diff


async def test_confined_check_does_not_read_through_a_symlink_out_of_the_workspace(
    tmp_path: Path,
) -> None:
    from gxo.engine.confine import Confinement

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "link.txt").symlink_to(outside / "secret.txt")
    text = """
    - name: w
      process: { module: filesystem:write, params: { path: link.txt, content: "x\\n" } }
    """
    result = await run_playbook_text(
        'schemaVersion: "1.0.0"\nname: fs\nworkloads:\n'
        + textwrap.indent(textwrap.dedent(text).strip("\n"), "  "),
        workspace=Confinement(ws),
        check=True,
        diff=True,
    )
    w = one(result)
    assert w.status.value == "Failed"
    assert w.error.startswith(f"param 'path': path 'link.txt' resolves to {outside / 'secret.txt'}")
    assert w.diffs == []
    assert (outside / "secret.txt").read_text() == "top secret\n"
