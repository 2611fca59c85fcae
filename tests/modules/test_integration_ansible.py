"""ansible:playbook with ansible-core on localhost (connection local)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gxo.modules.testkit import run_module

pytest.importorskip("ansible", reason="ansible-core (dev dependency)")

PLAYBOOK = """
- name: configure
  hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy:
        dest: "{{ out_dir }}/hello.txt"
        content: "hello {{ who }}\\n"
      tags: [files]
    - name: say something
      ansible.builtin.debug:
        msg: "greeting {{ who }}"
    - name: only when tagged
      ansible.builtin.command: "true"
      tags: [never, extra]
    - name: may fail
      ansible.builtin.fail:
        msg: tolerated
      ignore_errors: true
      tags: [files]
"""

FAILING = """
- name: broken
  hosts: all
  gather_facts: false
  tasks:
    - name: boom
      ansible.builtin.fail:
        msg: "deliberate failure for {{ who }}"
"""


def base(tmp_path: Path, **extra: object) -> dict:
    return {
        "playbook": "site.yml",
        "inventory": ["localhost"],
        "connection": "local",
        "extra_vars": {
            "ansible_python_interpreter": sys.executable,
            "out_dir": str(tmp_path / "out"),
            "who": "ada",
        },
        **extra,
    }


async def test_playbook_run_then_check_mode(tmp_path: Path) -> None:
    (tmp_path / "site.yml").write_text(PLAYBOOK)
    (tmp_path / "out").mkdir()
    run = await run_module("ansible:playbook", base(tmp_path), workspace=tmp_path)
    assert run.ok, run.error
    s = run.summary
    assert (tmp_path / "out" / "hello.txt").read_text() == "hello ada\n"
    assert s["plays"] == ["configure"]
    assert s["playbook"] == str(tmp_path / "site.yml")
    assert s["check"] is False
    by_task = {t["task"]: t for t in s["tasks"]}
    assert set(by_task) == {"write a file", "say something", "may fail"}  # "never" tag skipped
    wrote = by_task["write a file"]
    assert (
        wrote["status"] == "changed" and wrote["host"] == "localhost" and wrote["changed"] is True
    )
    assert wrote["result"]["dest"] == str(tmp_path / "out" / "hello.txt")
    assert by_task["say something"] == {
        "play": "configure",
        "task": "say something",
        "host": "localhost",
        "status": "ok",
        "changed": False,
        "msg": "greeting ada",
    }
    assert by_task["may fail"]["status"] == "failed" and by_task["may fail"]["ignored"] is True
    assert by_task["may fail"]["msg"] == "tolerated"
    assert s["changed"] is True and s["failed"] == 0 and s["unreachable"] == 0
    assert s["stats"]["localhost"]["changed"] == 1 and s["stats"]["localhost"]["ignored"] == 1
    assert any("TASK [write a file]" in line for _, line in run.logs)
    assert any("localhost: changed" in line for _, line in run.logs)

    # check mode, only the `files` tag, with the file already right: nothing would change
    (tmp_path / "out" / "hello.txt").chmod(0o644)
    check = await run_module(
        "ansible:playbook", base(tmp_path, check=True, tags=["files"]), workspace=tmp_path
    )
    assert check.ok, check.error
    assert check.summary["check"] is True
    assert check.summary["changed"] is False
    assert [t["task"] for t in check.summary["tasks"]] == ["write a file", "may fail"]


async def test_failure_and_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site.yml").write_text(FAILING)
    r = await run_module("ansible:playbook", base(tmp_path), workspace=tmp_path)
    assert r.status == "Failed"
    assert (
        "ansible-playbook failed (exit 2): localhost: task 'boom' failed: deliberate failure for ada"
        in str(r.error)
    )
    missing = await run_module(
        "ansible:playbook", base(tmp_path, playbook="nope.yml"), workspace=tmp_path
    )
    assert "playbook" in str(missing.error) and "does not exist" in str(missing.error)
    bad_tag = await run_module("ansible:playbook", base(tmp_path, tags=["a,b"]), workspace=tmp_path)
    assert "without commas" in str(bad_tag.error)
    nobin = await run_module(
        "ansible:playbook", base(tmp_path, binary=str(tmp_path / "nope")), workspace=tmp_path
    )
    assert "cannot run" in str(nobin.error)
