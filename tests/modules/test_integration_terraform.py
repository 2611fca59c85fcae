"""terraform:run against a fake CLI following terraform's -json output contract
(tests/support/fake_terraform.py), and against the real terraform / tofu when on PATH."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path

import pytest

from gxo.modules.testkit import run_module

SUPPORT = Path(__file__).resolve().parents[1] / "support"
REDACTED = "[REDACTED]"


def fake_cli(bin_dir: Path, name: str = "terraform") -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / name
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{SUPPORT / "fake_terraform.py"}" "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    """(fake terraform binary, a configuration directory)."""
    binary = fake_cli(tmp_path / "bin")
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.fake.json").write_text(
        json.dumps(
            {
                "variables": {"name": {}, "size": {"default": 1}},
                "resources": {"terraform_data.greet": "hello ${var.name} x${var.size}"},
                "outputs": {
                    "greeting": {"value": "${terraform_data.greet}"},
                    "token": {"value": "tok-${var.name}-s3cret", "sensitive": True},
                },
            }
        )
    )
    return binary, infra


async def test_fake_lifecycle(fake: tuple[Path, Path], tmp_path: Path) -> None:
    binary, infra = fake
    base = {"binary": str(binary), "dir": "infra"}
    r = await run_module(
        "terraform:run",
        {
            **base,
            "command": "init",
            "backend_config": {"bucket": "tf", "encrypt": True},
            "workspace": "staging",
        },
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary == {
        "command": "init",
        "binary": str(binary),
        "dir": str(infra),
        "workspace": "staging",
    }
    assert json.loads((infra / ".terraform" / "backend.json").read_text()) == [
        "bucket=tf",
        "encrypt=true",
    ]
    assert any("successfully initialized" in line for _, line in r.logs)

    (infra / "extra.tfvars.json").write_text('{"size": 3}')
    params = {
        **base,
        "vars": {"name": "ada"},
        "var_files": ["extra.tfvars.json"],
        "workspace": "staging",
    }
    plan = await run_module("terraform:run", {**params, "command": "plan"}, workspace=tmp_path)
    assert plan.ok, plan.error
    assert plan.summary["changes"] == {"add": 1, "change": 0, "destroy": 0, "import": 0}
    assert plan.summary["changed"] is True
    assert "outputs" not in plan.summary
    assert any("Plan: 1 to add" in line for _, line in plan.logs)
    assert any("terraform_data.greet: Plan to create" in line for _, line in plan.logs)

    apply = await run_module(
        "terraform:run", {**params, "command": "apply", "auto_approve": True}, workspace=tmp_path
    )
    assert apply.ok, apply.error
    assert apply.summary["changes"] == {"add": 1, "change": 0, "destroy": 0, "import": 0}
    assert apply.summary["outputs"] == {"greeting": "hello ada x3", "token": REDACTED}
    assert not any("tok-ada-s3cret" in line for _, line in apply.logs)
    again = await run_module(
        "terraform:run", {**params, "command": "apply", "auto_approve": True}, workspace=tmp_path
    )
    assert again.summary["changed"] is False
    out = await run_module(
        "terraform:run", {**base, "command": "output", "workspace": "staging"}, workspace=tmp_path
    )
    assert out.summary["outputs"]["greeting"] == "hello ada x3"
    # the default workspace is untouched
    other = await run_module(
        "terraform:run", {**base, "command": "output", "workspace": "default"}, workspace=tmp_path
    )
    assert other.summary["outputs"] == {}
    gone = await run_module(
        "terraform:run", {**params, "command": "destroy", "auto_approve": True}, workspace=tmp_path
    )
    assert gone.summary["changes"]["destroy"] == 1 and gone.summary["changed"] is True
    # the vars file is gone
    assert not [
        p
        for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("gxo-*.tfvars.json")
        if p.stat().st_mtime > time.time() - 60
    ]


async def test_fake_errors(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary, _infra = fake
    base = {"binary": str(binary), "dir": "infra"}
    before_init = await run_module(
        "terraform:run", {**base, "command": "plan", "vars": {"name": "x"}}, workspace=tmp_path
    )
    assert before_init.status == "Failed"
    assert "terraform plan failed (exit 1): Backend initialization required" in str(
        before_init.error
    )
    assert (await run_module("terraform:run", {**base, "command": "init"}, workspace=tmp_path)).ok
    no_var = await run_module("terraform:run", {**base, "command": "plan"}, workspace=tmp_path)
    assert "No value for required variable" in str(no_var.error)
    assert 'input variable "name" is not set' in str(no_var.error)
    approve = await run_module("terraform:run", {**base, "command": "apply"}, workspace=tmp_path)
    assert "apply needs auto_approve: true" in str(approve.error)
    missing_vf = await run_module(
        "terraform:run",
        {**base, "command": "plan", "var_files": ["nope.tfvars"]},
        workspace=tmp_path,
    )
    assert "var_files:" in str(missing_vf.error) and "does not exist" in str(missing_vf.error)
    nodir = await run_module(
        "terraform:run", {**base, "command": "plan", "dir": "nope"}, workspace=tmp_path
    )
    assert "is not a directory" in str(nodir.error)
    for params, message in [
        (
            {"command": "plan", "backend_config": {"a": 1}},
            "backend_config applies to command: init",
        ),
        ({"command": "init", "vars": {"a": 1}}, "do not apply to command: init"),
        ({"command": "plan", "workspace": "-bad"}, "invalid workspace name"),
        ({"command": "show"}, "command"),
    ]:
        r = await run_module("terraform:run", {**base, **params}, workspace=tmp_path)
        assert r.status == "Failed" and message in str(r.error), (params, r.error)
    notfound = await run_module(
        "terraform:run", {"command": "init", "binary": "no-such-terraform"}, workspace=tmp_path
    )
    assert "binary 'no-such-terraform' is not on PATH" in str(notfound.error)
    bad_ws = await run_module(
        "terraform:run", {**base, "command": "output", "dir": "."}, workspace=tmp_path
    )  # a directory without .terraform: workspace-less output still works (empty)
    assert bad_ws.ok, bad_ws.error
    ws_fail = await run_module(
        "terraform:run",
        {**base, "command": "output", "dir": ".", "workspace": "w"},
        workspace=tmp_path,
    )
    assert "terraform workspace failed (exit 1)" in str(ws_fail.error)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    none = await run_module("terraform:run", {"command": "init"}, workspace=tmp_path)
    assert "neither terraform nor tofu is on PATH" in str(none.error)


async def test_relative_binary_is_in_the_workspace(fake: tuple[Path, Path], tmp_path: Path) -> None:
    r = await run_module(
        "terraform:run",
        {"command": "init", "binary": "bin/terraform", "dir": "infra"},
        workspace=tmp_path,
    )
    assert r.ok, r.error
    assert r.summary["binary"] == str(tmp_path / "bin" / "terraform")


async def test_found_on_path_as_tofu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tofu = fake_cli(tmp_path / "bin", "tofu")
    monkeypatch.setenv("PATH", f"{tofu.parent}{os.pathsep}/usr/bin{os.pathsep}/bin")
    r = await run_module("terraform:run", {"command": "init"}, workspace=tmp_path)
    assert r.ok, r.error
    assert r.summary["binary"] == str(tofu)


async def test_timeout_stops_the_cli(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary, _infra = fake
    base = {"binary": str(binary), "dir": "infra"}
    assert (await run_module("terraform:run", {**base, "command": "init"}, workspace=tmp_path)).ok
    monkeypatch.setenv("FAKE_TF_SLEEP", "30")
    started = time.monotonic()
    r = await run_module(
        "terraform:run",
        {**base, "command": "apply", "auto_approve": True, "vars": {"name": "x"}},
        workspace=tmp_path,
        workload={"timeout": "1s"},
    )
    assert r.status == "Failed"
    assert time.monotonic() - started < 10


REAL = shutil.which("terraform") or shutil.which("tofu")


@pytest.mark.skipif(REAL is None, reason="neither terraform nor tofu is installed")
async def test_real_cli(tmp_path: Path) -> None:
    infra = tmp_path / "infra"
    infra.mkdir()
    (infra / "main.tf").write_text(
        """
variable "name" { type = string }
variable "tags" {
  type    = map(string)
  default = {}
}
resource "terraform_data" "greet" { input = "hello ${var.name}" }
output "greeting" { value = terraform_data.greet.output }
output "tags" { value = var.tags }
output "secret" {
  value     = "s3cret-${var.name}-value"
  sensitive = true
}
"""
    )
    base = {"dir": "infra", "workspace": "ci"}
    init = await run_module("terraform:run", {**base, "command": "init"}, workspace=tmp_path)
    assert init.ok, init.error
    params = {**base, "vars": {"name": "ada", "tags": {"team": "web"}}}
    plan = await run_module("terraform:run", {**params, "command": "plan"}, workspace=tmp_path)
    assert plan.ok, plan.error
    assert plan.summary["changes"] == {"add": 1, "change": 0, "destroy": 0, "import": 0}
    apply = await run_module(
        "terraform:run", {**params, "command": "apply", "auto_approve": True}, workspace=tmp_path
    )
    assert apply.ok, apply.error
    assert apply.summary["outputs"] == {
        "greeting": "hello ada",
        "tags": {"team": "web"},
        "secret": REDACTED,
    }
    assert (infra / "terraform.tfstate.d" / "ci" / "terraform.tfstate").exists()
    again = await run_module(
        "terraform:run", {**params, "command": "apply", "auto_approve": True}, workspace=tmp_path
    )
    assert again.summary["changed"] is False
    bad = await run_module("terraform:run", {**base, "command": "plan"}, workspace=tmp_path)
    assert bad.status == "Failed" and "No value for required variable" in str(bad.error)
    gone = await run_module(
        "terraform:run", {**params, "command": "destroy", "auto_approve": True}, workspace=tmp_path
    )
    assert gone.ok, gone.error
    assert gone.summary["changes"]["destroy"] == 1
