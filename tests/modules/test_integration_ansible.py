"""ansible:playbook with ansible-core on localhost (connection local)."""

from __future__ import annotations

import json
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


FAKE_PLAYBOOK_CLI = r"""#!{python}
# Stands in for ansible-playbook: prints its arguments (and the files they name) as
# a warning event, then canned callback events: an unreachable host, a non-JSON line.
import json, sys
args = sys.argv[1:]
files = {{}}
for flag in ("-e", "--vault-password-file"):
    if flag in args:
        path = args[args.index(flag) + 1].lstrip("@")
        files[flag] = open(path).read()
print(json.dumps({{"event": "warning", "message": json.dumps({{"args": args, "files": files}})}}))
print("[WARNING]: a line that is not JSON")
print(json.dumps({{"event": "play", "name": "p"}}))
print(json.dumps({{"event": "task", "name": "t"}}))
print(json.dumps({{"event": "result", "status": "unreachable", "host": "web9", "task": "t", "play": "p",
                  "result": {{"msg": "ssh: connect to host web9 port 22: Connection refused", "unreachable": True}}}}))
print(json.dumps({{"event": "result", "status": "failed", "host": "web8", "task": "t", "play": "p",
                  "result": {{"msg": {{"nested": "message"}}, "failed": True}}}}))
print(json.dumps([1, 2]))
print(json.dumps({{"event": "stats", "hosts": {{"web9": {{"ok": 0, "changed": 0, "failures": 0,
                  "unreachable": 1, "skipped": 0, "rescued": 0, "ignored": 0}}}}}}))
sys.exit(4)
"""


async def test_arguments_and_unreachable_hosts(tmp_path: Path) -> None:
    fake = tmp_path / "ansible-playbook"
    fake.write_text(FAKE_PLAYBOOK_CLI.format(python=sys.executable))
    fake.chmod(0o755)
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "hosts.ini").write_text("web9\n")
    r = await run_module(
        "ansible:playbook",
        {
            "playbook": "site.yml",
            "inventory": "hosts.ini",
            "extra_vars": {"n": 1},
            "vault_password": "vault-pa55-word",
            "tags": "deploy",
            "skip_tags": ["slow", "flaky"],
            "limit": "web*",
            "diff": True,
            "forks": 3,
            "binary": str(fake),
            "extra_args": ["-v"],
        },
        workspace=tmp_path,
    )
    assert r.status == "Failed"
    error = str(r.error)
    assert error.startswith("ansible-playbook failed (exit 4): web9: unreachable: ssh: connect")
    assert 'web8: task \'t\' failed: {"nested": "message"}' in error
    assert r.summary["unreachable"] == 1 and r.summary["failed"] == 1
    assert r.summary["stats"]["web9"]["unreachable"] == 1
    warning = next(line for _, line in r.logs if line.startswith('{"args"'))
    assert "vault-pa55-word" not in warning  # the password file's content is redacted
    seen = json.loads(warning.replace("[REDACTED]", "REDACTED"))
    args = seen["args"]
    assert args[0] == str(tmp_path / "site.yml")
    assert args[args.index("-i") + 1] == str(tmp_path / "hosts.ini")
    assert json.loads(seen["files"]["-e"]) == {"n": 1}
    assert seen["files"]["--vault-password-file"] == "REDACTED"
    for flag, value in [
        ("--tags", "deploy"),
        ("--skip-tags", "slow,flaky"),
        ("--limit", "web*"),
        ("--forks", "3"),
    ]:
        assert args[args.index(flag) + 1] == value
    assert "--diff" in args and args[-1] == "-v"
    assert any("a line that is not JSON" in line for _, line in r.logs)
    # the temporary files are gone
    assert not Path(args[args.index("-e") + 1].lstrip("@")).exists()


async def test_no_ansible_playbook_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    r = await run_module("ansible:playbook", {"playbook": "site.yml"}, workspace=tmp_path)
    assert "ansible-playbook is not on PATH" in str(r.error)
