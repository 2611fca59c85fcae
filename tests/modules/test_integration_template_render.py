"""template:render: a Jinja2 file rendered by GXO's engine into an atomically written file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from gxo.modules.testkit import run_module


async def test_render_vars_and_idempotence(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text(
        "listen {{ port }};\n{% for u in upstreams %}server {{ u }};\n{% endfor %}"
        "env={{ env }} x={{ x | upper }}\n",
        encoding="utf-8",
    )
    params = {
        "src": "t.j2",
        "dest": "out/nginx.conf",
        "vars": {"port": 8080, "upstreams": ["a", "b"], "x": "y"},
    }
    r = await run_module(
        "template:render", params, workspace=tmp_path, variables={"env": "prod", "x": "no"}
    )
    assert r.ok, r.error
    out = tmp_path / "out" / "nginx.conf"
    text = "listen 8080;\nserver a;\nserver b;\nenv=prod x=Y\n"
    assert out.read_text() == text
    assert r.summary["changed"] is True
    assert r.summary["size"] == len(text)
    assert r.summary["mode"] == "0644"
    assert r.summary["path"] == str(out)
    inode = out.stat().st_ino
    again = await run_module(
        "template:render", params, workspace=tmp_path, variables={"env": "prod"}
    )
    assert again.summary["changed"] is False
    assert out.stat().st_ino == inode  # not rewritten
    mode = await run_module(
        "template:render", {**params, "mode": "0600"}, workspace=tmp_path, variables={"env": "prod"}
    )
    assert mode.summary["changed"] is True and mode.summary["mode"] == "0600"
    assert (out.stat().st_mode & 0o777) == 0o600
    other = await run_module(
        "template:render", params, workspace=tmp_path, variables={"env": "dev"}
    )
    assert other.summary["changed"] is True
    assert "env=dev" in out.read_text()
    assert (out.stat().st_mode & 0o777) == 0o600  # an existing file keeps its mode
    assert not list(out.parent.glob("*.gxo-tmp"))


async def test_single_expression_file_and_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "obj.j2").write_text("{{ data }}")
    r = await run_module(
        "template:render",
        {"src": "obj.j2", "dest": "obj.json", "vars": {"data": {"a": 1}}},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert (tmp_path / "obj.json").read_text() == '{\n  "a": 1\n}'
    monkeypatch.setenv("T15_DB_PASSWORD", "pa55-w0rd-xyz")
    (tmp_path / "db.j2").write_text("password={{ secret('T15_DB_PASSWORD') }}\n")
    r = await run_module("template:render", {"src": "db.j2", "dest": "db.ini"}, workspace=tmp_path)
    assert r.ok, r.error
    assert (tmp_path / "db.ini").read_text() == "password=pa55-w0rd-xyz\n"
    assert "pa55-w0rd-xyz" not in repr(r.summary)
    assert not any("pa55-w0rd-xyz" in str(e) for e in r.events)


@pytest.mark.parametrize(
    ("files", "params", "message"),
    [
        ({}, {"src": "missing.j2", "dest": "o"}, "cannot read src {ws}/missing.j2: does not exist"),
        ({"d/": ""}, {"src": "d", "dest": "o"}, "is a directory"),
        ({"t.j2": "{{ nope }}"}, {"src": "t.j2", "dest": "o"}, "cannot render template t.j2"),
        ({"t.j2": "{% for %}"}, {"src": "t.j2", "dest": "o"}, "cannot render template t.j2"),
        ({"t.j2": b"\xff\xfe"}, {"src": "t.j2", "dest": "o"}, "is not valid utf-8 text"),
        ({"t.j2": "x"}, {"src": "t.j2", "dest": "o", "encoding": "klingon"}, "unknown encoding"),
        ({"t.j2": "é"}, {"src": "t.j2", "dest": "o", "encoding": "ascii"}, "is not valid ascii"),
        (
            {"t.j2": "{{ '\\u00e9' }}"},
            {"src": "t.j2", "dest": "o", "encoding": "ascii"},
            "cannot be encoded as ascii",
        ),
        ({"t.j2": "x", "f": "file"}, {"src": "t.j2", "dest": "f/o"}, "cannot write dest"),
    ],
)
async def test_errors(tmp_path: Path, files: dict[str, Any], params: dict, message: str) -> None:
    for name, content in files.items():
        if name.endswith("/"):
            (tmp_path / name).mkdir()
        elif isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content)
    r = await run_module("template:render", params, workspace=tmp_path)
    assert r.status == "Failed"
    assert message.format(ws=tmp_path) in str(r.error)
    assert not (tmp_path / "o").exists()
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".gxo-tmp")]


async def test_bad_mode_is_a_params_error(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text("x")
    r = await run_module(
        "template:render", {"src": "t.j2", "dest": "o", "mode": 644}, workspace=tmp_path
    )
    assert r.status == "Failed"
    assert "mode" in str(r.error)
