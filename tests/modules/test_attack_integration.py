"""Regression tests for what attacking the integration layer (issue 15) found:
``template:render`` under ``gxo run --check`` / ``--diff`` (Ansible's template module
predicts and diffs; GXO skipped it as "cannot predict", and its dependents with it)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from gxo.modules.testkit import run_playbook_text


async def run(tmp_path: Path, workloads: str, **kw: Any) -> Any:
    text = 'schemaVersion: "1.0.0"\nname: tr\nworkloads:\n' + textwrap.indent(
        textwrap.dedent(workloads).strip("\n"), "  "
    )
    return await run_playbook_text(text, workspace=tmp_path, **kw)


RENDER = """
- name: same
  process: {module: template:render, params: {src: t.j2, dest: same.conf, vars: {v: a}}}
- name: text
  process: {module: template:render, params: {src: t.j2, dest: text.conf, vars: {v: b}}}
- name: mode
  process: {module: template:render, params: {src: t.j2, dest: same2.conf, vars: {v: a}, mode: "0600"}}
- name: new
  process: {module: template:render, params: {src: t.j2, dest: sub/new.conf, vars: {v: "{{ secret('GXO_ATTACK_TR') }}"}}}
  register: made
- name: after
  process: {module: control:identity, params: {changed: "{{ made.changed }}"}}
"""


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GXO_ATTACK_TR", "tr-s3cret-value")
    (tmp_path / "t.j2").write_text("key={{ v }}\nport=80\n")
    for name in ("same.conf", "same2.conf"):
        (tmp_path / name).write_text("key=a\nport=80\n")
        (tmp_path / name).chmod(0o644)
    (tmp_path / "text.conf").write_text("key=old\nport=80\n")
    return tmp_path


async def test_check_mode_predicts_without_writing_and_diffs(files: Path) -> None:
    before = {p.name: (p.read_bytes(), p.stat().st_mode) for p in files.iterdir()}
    result = await run(files, RENDER, check=True, diff=True)
    s = result.states
    assert result.status == "Completed", {n: st.error for n, st in s.items()}
    assert {p.name: (p.read_bytes(), p.stat().st_mode) for p in files.iterdir()} == before
    assert not (files / "sub").exists()
    assert [s[n].summary["changed"] for n in ("same", "text", "mode", "new")] == [
        False,
        True,
        True,
        True,
    ]
    assert s["mode"].summary["mode"] == "0600"
    assert s["new"].summary["mode"] == "0644"
    assert s["after"].summary == {"changed": True}  # its dependent runs on the prediction
    assert s["same"].diffs == []
    assert s["text"].diffs == [
        f"--- {files}/text.conf\n+++ {files}/text.conf\n@@ -1,2 +1,2 @@\n"
        "-key=old\n+key=b\n port=80\n"
    ]
    assert s["mode"].diffs == [
        f"--- {files}/same2.conf\n+++ {files}/same2.conf\nold mode 0644\nnew mode 0600\n"
    ]
    # A secret the template renders is redacted in the diff.
    new = s["new"].diffs[0]
    assert "tr-s3cret-value" not in new
    assert new == (
        f"new file mode 0644\n--- /dev/null\n+++ {files}/sub/new.conf\n@@ -0,0 +1,2 @@\n"
        "+key=[REDACTED]\n+port=80\n"
    )


async def test_real_run_diffs_what_it_changed(files: Path) -> None:
    result = await run(files, RENDER, diff=True)
    s = result.states
    assert result.status == "Completed", {n: st.error for n, st in s.items()}
    assert (files / "text.conf").read_text() == "key=b\nport=80\n"
    assert (files / "sub" / "new.conf").read_text() == "key=tr-s3cret-value\nport=80\n"
    assert os.stat(files / "same2.conf").st_mode & 0o777 == 0o600
    assert s["same"].diffs == []
    assert "-key=old\n+key=b\n" in s["text"].diffs[0]
    assert "tr-s3cret-value" not in s["new"].diffs[0]
    # Without --diff: no diff kept.
    (files / "text.conf").write_text("key=old\n")
    again = await run(files, RENDER)
    assert again.states["text"].summary["changed"] is True
    assert again.states["text"].diffs == []


async def test_check_mode_errors_are_the_run_errors(files: Path) -> None:
    (files / "bad.j2").write_text("{{ 1 / 0 }}")
    (files / "dir.conf").mkdir()
    result = await run(
        files,
        """
        - name: missing
          process: {module: template:render, params: {src: nope.j2, dest: x.conf}}
        - name: broken
          process: {module: template:render, params: {src: bad.j2, dest: x.conf}}
        - name: dir
          process: {module: template:render, params: {src: t.j2, dest: dir.conf, vars: {v: 1}}}
        """,
        check=True,
        diff=True,
    )
    s = result.states
    assert s["missing"].error == f"cannot read src {files}/nope.j2: does not exist"
    assert s["broken"].error.startswith("cannot render template bad.j2:")
    # A directory where the file would go: it would change (the real run fails to write).
    assert s["dir"].summary["changed"] is True
    assert not (files / "x.conf").exists()


async def test_a_password_in_the_object_storage_endpoint_url_is_masked(tmp_path: Path) -> None:
    result = await run(
        tmp_path,
        """
        - name: get
          process:
            module: object_storage:get_object
            params:
              bucket: bkt1
              key: x
              endpoint_url: "http://u:LitEpPass9@127.0.0.1:1"
              region: us-east-1
              access_key: AKIATEST
              secret_key: test-secret-key
        """,
    )
    error = result.states["get"].error
    assert "cannot reach the endpoint" in error
    assert "LitEpPass9" not in error and "http://u:[REDACTED]@127.0.0.1:1/bkt1/x" in error


ANSIBLE_PLAY = """
- name: configure
  hosts: all
  gather_facts: false
  tasks:
    - name: write a file
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "hello\\n"
"""


async def test_gxo_check_runs_an_ansible_playbook_in_its_check_mode(tmp_path: Path) -> None:
    # ansible:playbook declared no check mode: `gxo run --check` skipped it (and its
    # dependents), where Ansible users expect its own --check.
    pytest.importorskip("ansible", reason="ansible-core (dev dependency)")
    import sys

    (tmp_path / "site.yml").write_text(ANSIBLE_PLAY)
    out = tmp_path / "hello.txt"
    params = (
        "{playbook: site.yml, inventory: [localhost], connection: local, "
        f"extra_vars: {{ansible_python_interpreter: {sys.executable}, out: {out}}}}}"
    )
    workloads = f"""
    - name: configure
      process: {{module: ansible:playbook, params: {params}}}
      register: conf
    - name: after
      process: {{module: control:identity, params: {{changed: "{{{{ conf.changed }}}}"}}}}
    """
    result = await run(tmp_path, workloads, check=True, diff=True)
    s = result.states
    assert result.status == "Completed", {n: st.error for n, st in s.items()}
    assert s["configure"].check_outcome == "predicted"
    assert s["configure"].summary["check"] is True
    assert s["configure"].summary["changed"] is True
    assert s["after"].summary == {"changed": True}
    assert not out.exists()


def test_get_object_runs_under_check_unless_it_writes_dest() -> None:
    # A read (the object as text in the summary) was skipped by gxo run --check.
    from types import SimpleNamespace

    from gxo.modules.base import REGISTRY, CheckMode

    spec = REGISTRY.get("object_storage:get_object")
    assert spec is not None
    module = spec.instantiate()
    assert module.check_mode_for(SimpleNamespace(dest=None)) is CheckMode.safe
    assert module.check_mode_for(SimpleNamespace(dest="x")) is CheckMode.unsupported
    assert module.check_hint == "it writes dest"


async def test_gxo_check_plans_a_terraform_apply(tmp_path: Path) -> None:
    # terraform:run declared no check mode: `gxo run --check` skipped even plan/output.
    import json
    import stat
    import sys

    support = Path(__file__).resolve().parents[1] / "support"
    binary = tmp_path / "bin" / "terraform"
    binary.parent.mkdir()
    binary.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{support / "fake_terraform.py"}" "$@"\n'
    )
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.fake.json").write_text(
        json.dumps(
            {
                "variables": {"name": {"default": "x"}},
                "resources": {"terraform_data.a": "hello ${var.name}"},
                "outputs": {"greeting": {"value": "${terraform_data.a}"}},
            }
        )
    )
    base = f"binary: {binary}, dir: infra"
    # init for real first (a check run does not init)
    assert (
        await run(
            tmp_path,
            f"- name: i\n  process: {{module: terraform:run, params: {{{base}, command: init}}}}",
        )
    ).status == "Completed"
    result = await run(
        tmp_path,
        f"""
        - name: init
          process: {{module: terraform:run, params: {{{base}, command: init}}}}
        - name: apply
          process: {{module: terraform:run, params: {{{base}, command: apply, auto_approve: true}}}}
          register: applied
        - name: plan
          process: {{module: terraform:run, params: {{{base}, command: plan}}}}
        - name: no_approve
          process: {{module: terraform:run, params: {{{base}, command: apply}}}}
        - name: after
          process: {{module: control:identity, params: {{changed: "{{{{ applied.changed }}}}"}}}}
        """,
        check=True,
    )
    s = result.states
    assert s["init"].status.value == "Skipped"
    assert s["init"].reason.startswith("check mode: module 'terraform:run' cannot predict")
    assert s["apply"].summary["planned"] is True
    assert s["apply"].summary["command"] == "apply"
    assert s["apply"].summary["changes"] == {"add": 1, "change": 0, "destroy": 0, "import": 0}
    assert s["after"].summary == {"changed": True}
    assert s["plan"].check_outcome == "ran" and s["plan"].summary["changed"] is True
    assert s["no_approve"].error.startswith("apply needs auto_approve: true")
    assert (
        not (infra / ".fake-tfstate.json").exists()
        or "terraform_data.a" not in (infra / ".fake-tfstate.json").read_text()
    )
