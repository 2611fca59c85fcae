"""``gxo run --check`` / ``--diff`` through the Engine (docs/check-mode.md)."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from rich.console import Console

from gxo.console import print_diffs, print_summary
from gxo.engine.report import build_report
from gxo.errors import RegistryError
from gxo.modules.base import (
    REGISTRY,
    CheckMode,
    CheckUnsupported,
    Module,
    ModuleParams,
    register,
)


def statuses(result: Any) -> dict[str, str]:
    return {name: s.status.value for name, s in result.states.items()}


def outcomes(result: Any) -> dict[str, str | None]:
    return {name: s.check_outcome for name, s in result.states.items()}


# -- the module API ---------------------------------------------------------------------

EXPECTED_MODES = {
    "control:assert": "safe",
    "control:barrier": "safe",
    "control:identity": "safe",
    "control:wait_for_signal": "safe",
    "data:aggregate": "safe",
    "data:filter": "safe",
    "data:format": "safe",
    "data:generate_from_list": "safe",
    "data:join": "safe",
    "data:map": "safe",
    "data:parse": "safe",
    "passthrough": "safe",
    "filesystem:list": "safe",
    "filesystem:read": "safe",
    "filesystem:stat": "safe",
    "test:assert": "safe",
    "test:mock_http_server": "safe",
    "filesystem:write": "predict",
    "filesystem:manage": "predict",
    "database:query": "predict",
    "http:request": "predict",
    "exec": "unsupported",
    "crypto:hash": "safe",
    "crypto:hmac": "safe",
    "crypto:encrypt": "safe",
    "object_storage:list_objects": "safe",
}

# Read-only unless they write ``dest``.
UNLESS_DEST = (
    "crypto:decrypt",
    "crypto:generate_key",
    "vault:read",
    "vault:decrypt",
    "vault:encrypt",
)


def test_every_builtin_declares_a_valid_check_mode() -> None:
    for spec in REGISTRY.all():
        assert isinstance(spec.cls.check_mode, CheckMode), spec.name
    for name, mode in EXPECTED_MODES.items():
        found = REGISTRY.get(name)
        assert found is not None, name
        assert found.cls.check_mode == mode, name


def test_module_reference_and_docs_show_the_check_mode() -> None:
    from gxo.modules.docs import generate
    from gxo.modules.reference import module_reference, print_module

    spec = REGISTRY.get("exec")
    assert spec is not None
    assert module_reference(spec)["check_mode"] == "unsupported"
    out = io.StringIO()
    print_module("exec", console=Console(file=out, width=200, no_color=True))
    assert out.getvalue().startswith("exec  layer: system  check mode: unsupported\n")
    system = generate()["system.md"]
    assert "**Check mode:** predict (`gxo run --check` reports what it would change" in system


def test_per_call_check_modes() -> None:
    def mode(name: str, **params: Any) -> CheckMode:
        spec = REGISTRY.get(name)
        assert spec is not None
        return spec.instantiate().check_mode_for(spec.params_model.model_validate(params))

    assert mode("http:request", url="http://x", method="get") is CheckMode.safe
    assert mode("http:request", url="http://x", method="HEAD") is CheckMode.safe
    assert mode("http:request", url="http://x", method="POST") is CheckMode.predict
    assert mode("exec", command="ls") is CheckMode.unsupported
    assert mode("exec", command="ls", check_mode="safe") is CheckMode.safe
    assert mode("database:query", query="SELECT 1") is CheckMode.safe
    assert mode("database:query", query="WITH x AS (DELETE FROM t) SELECT 1") is CheckMode.predict
    assert mode("database:query", query="SELECT 1; COMMIT") is CheckMode.predict
    assert mode("database:query", query="SELECT * INTO t2 FROM t") is CheckMode.predict
    assert mode("database:query", query="SELECT nextval('s')") is CheckMode.predict
    assert mode("data:format", format="json") is CheckMode.safe
    assert mode("data:format", format="json", path="out.json") is CheckMode.unsupported
    from types import SimpleNamespace

    for name in UNLESS_DEST:
        spec = REGISTRY.get(name)
        assert spec is not None, name
        module = spec.instantiate()
        assert module.check_mode_for(SimpleNamespace(dest=None)) is CheckMode.safe, name
        assert module.check_mode_for(SimpleNamespace(dest="x")) is CheckMode.unsupported, name
        assert module.check_hint == "it writes dest"


def test_registration_checks_the_check_mode_declaration() -> None:
    class P(ModuleParams):
        x: int = Field(0, description="x")

    def make(name: str, **attrs: Any) -> type[Module]:
        async def perform(self: Any, ctx: Any, params: Any) -> dict[str, Any]:
            return {}

        return type(name, (Module,), {"Params": P, "perform": perform, **attrs})

    with pytest.raises(RegistryError, match="check_mode must be one of safe, predict"):
        register("tests:bad_mode", layer="test")(make("A", check_mode="maybe"))
    with pytest.raises(RegistryError, match="check_mode predict needs 'async def check"):
        register("tests:no_check", layer="test")(make("B", check_mode=CheckMode.predict))

    def sync_check(self: Any, ctx: Any, params: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(RegistryError, match="check must be 'async def'"):
        register("tests:sync_check", layer="test")(make("C", check=sync_check))

    async def bad_signature(self: Any, params: Any) -> dict[str, Any]:
        return {}

    with pytest.raises(RegistryError, match=r"check must have the signature \(self, ctx, params\)"):
        register("tests:bad_sig", layer="test")(make("D", check=bad_signature))
    ok = register("tests:str_mode", layer="test")(make("E", check_mode="safe"))
    assert ok.check_mode is CheckMode.safe
    with pytest.raises(CheckUnsupported, match="module 'tests:str_mode' cannot predict what"):
        asyncio.run(ok().check(None, None))


@pytest.fixture
def test_modules() -> None:
    """Modules the engine tests use: one that predicts, one that streams without being
    able to predict. Registered per test (conftest removes them after it): registered
    at import, they would be in the registry other test files enumerate."""

    @register("tests:counter", layer="test")
    class _Counter(Module):
        """Counts real runs in a file; predicts a change.

        Example:
            x: 1
        """

        class Params(ModuleParams):
            path: str = Field(..., description="the file counting runs")
            refuse: bool = Field(False, description="raise CheckUnsupported from check")

        check_mode = CheckMode.predict

        async def perform(self, ctx: Any, params: Params) -> dict[str, Any]:
            path = ctx.resolve_path(params.path)
            with path.open("a") as fh:
                fh.write("x")
            return {"changed": True}

        async def check(self, ctx: Any, params: Params) -> dict[str, Any]:
            if params.refuse:
                raise CheckUnsupported("tests:counter was told to refuse")
            ctx.add_diff(f"--- {params.path}\n+++ {params.path}\n+x\n")
            return {"changed": True, "would_write": params.path}

    @register("tests:unpredictable_source", layer="test")
    class _Source(Module):
        """Emits records; declares nothing about check mode.

        Example:
            x: 1
        """

        class Params(ModuleParams):
            n: int = Field(3, description="records")

        produces = True

        async def perform(self, ctx: Any, params: Params) -> dict[str, Any]:
            for i in range(params.n):
                await ctx.emit({"i": i})
            return {}


async def test_check_runs_safe_modules_predicts_others_and_skips_what_needs_the_unpredictable(
    run_yaml, tmp_path: Path, test_modules: None
) -> None:
    (tmp_path / "cfg.txt").write_text("old\nsame\n")
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: check
        workloads:
          - name: write_cfg
            process:
              module: filesystem:write
              params: { path: cfg.txt, content: "new\\nsame\\n" }
            register: written
          - name: read_cfg                     # read-only: runs, and sees the old content
            depends_on: [write_cfg]
            process: { module: filesystem:read, params: { path: cfg.txt } }
            register: cfg
          - name: deploy                       # exec: not run
            process: { module: exec, params: { command: touch, args: [deployed] } }
            register: deployed
          - name: by_reference
            process: { module: control:identity, params: { code: "{{ deployed.exit_code }}" } }
            register: ref
          - name: transitively
            process: { module: control:identity, params: { again: "{{ ref }}" } }
          - name: by_depends_on
            depends_on: [deploy]
            process: { module: control:identity, params: { ok: true } }
          - name: source
            process: { module: tests:unpredictable_source, params: { n: 5 } }
          - name: consumer                     # stream_inputs from what was not run
            stream_inputs: [source]
            process: { module: passthrough }
          - name: safe_exec
            process: { module: exec, params: { command: uname, check_mode: safe } }
            register: kernel
          - name: uses_safe_exec
            process: { module: control:identity, params: { k: "{{ kernel.stdout }}" } }
            register: k
          - name: predicted
            process: { module: tests:counter, params: { path: count.txt } }
          - name: independent
            process: { module: control:identity, params: { fine: true } }
        """,
        workspace=tmp_path,
        check=True,
    )
    assert result.status == "Completed"
    assert result.check is True
    assert statuses(result) == {
        "write_cfg": "Completed",
        "read_cfg": "Completed",
        "deploy": "Skipped",
        "by_reference": "Skipped",
        "transitively": "Skipped",
        "by_depends_on": "Skipped",
        "source": "Skipped",
        "consumer": "Skipped",
        "safe_exec": "Completed",
        "uses_safe_exec": "Completed",
        "predicted": "Completed",
        "independent": "Completed",
    }
    assert outcomes(result) == {
        "write_cfg": "predicted",
        "read_cfg": "ran",
        "deploy": "not run",
        "by_reference": "not run",
        "transitively": "not run",
        "by_depends_on": "not run",
        "source": "not run",
        "consumer": "not run",
        "safe_exec": "ran",
        "uses_safe_exec": "ran",
        "predicted": "predicted",
        "independent": "ran",
    }
    s = result.states
    assert s["deploy"].reason == (
        "check mode: module 'exec' cannot predict what it would do, so it was not run "
        "(set check_mode: safe on a read-only command to run it under --check)"
    )
    assert s["by_reference"].reason == "check mode: needs 'deploy', which was not run"
    assert s["transitively"].reason == "check mode: needs 'by_reference', which was not run"
    assert s["consumer"].reason == "check mode: needs 'source', which was not run"
    assert s["source"].reason == (
        "check mode: module 'tests:unpredictable_source' cannot predict what it would do, "
        "so it was not run"
    )
    # Nothing changed on disk; the prediction and the real read are in the summaries.
    assert (tmp_path / "cfg.txt").read_text() == "old\nsame\n"
    assert not (tmp_path / "deployed").exists()
    assert not (tmp_path / "count.txt").exists()
    assert s["write_cfg"].summary["changed"] is True
    assert s["read_cfg"].summary["content"] == "old\nsame\n"
    assert s["uses_safe_exec"].summary == {"k": os.uname().sysname}
    assert s["predicted"].summary == {"changed": True, "would_write": "count.txt"}
    assert all(not st.diffs for st in s.values())  # no --diff: no diffs collected

    report = build_report(result)
    assert report["check"] is True
    assert report["workloads"]["write_cfg"]["check"] == "predicted"
    assert report["workloads"]["deploy"]["check"] == "not run"
    assert "diff" not in report["workloads"]["write_cfg"]

    out = io.StringIO()
    print_summary(Console(file=out, width=300, no_color=True), result)
    line = out.getvalue()
    assert line.startswith("Completed (check) check (run ")
    assert "6 completed, 6 skipped" in line
    assert "check: 2 would change, 6 not run" in line


async def test_without_check_nothing_is_marked_and_modules_perform(
    run_yaml, tmp_path: Path, test_modules: None
) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: real
        workloads:
          - name: predicted
            process: { module: tests:counter, params: { path: count.txt } }
        """,
        workspace=tmp_path,
    )
    assert result.status == "Completed" and result.check is False
    assert (tmp_path / "count.txt").read_text() == "x"
    assert result.states["predicted"].check_outcome is None
    report = build_report(result)
    assert "check" not in report and "check" not in report["workloads"]["predicted"]
    out = io.StringIO()
    print_summary(Console(file=out, width=300, no_color=True), result)
    assert out.getvalue().startswith("Completed real (run ")


async def test_a_check_that_refuses_skips_and_a_loop_predicts_each_item(
    run_yaml, tmp_path: Path, test_modules: None
) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: loops
        workloads:
          - name: refuses
            process: { module: tests:counter, params: { path: a.txt, refuse: true } }
          - name: looped
            loop: [one, two]
            process: { module: tests:counter, params: { path: "{{ item }}.txt" } }
            register: looped
          - name: after_loop
            process: { module: control:identity, params: { n: "{{ looped | length }}" } }
        """,
        workspace=tmp_path,
        check=True,
        diff=True,
    )
    s = result.states
    assert statuses(result) == {
        "refuses": "Skipped",
        "looped": "Completed",
        "after_loop": "Completed",
    }
    assert s["refuses"].reason == "check mode: tests:counter was told to refuse"
    assert s["looped"].check_outcome == "predicted"
    assert s["looped"].summary == [
        {"changed": True, "would_write": "one.txt"},
        {"changed": True, "would_write": "two.txt"},
    ]
    assert s["after_loop"].summary == {"n": 2}
    assert s["looped"].diffs == ["--- one.txt\n+++ one.txt\n+x\n", "--- two.txt\n+++ two.txt\n+x\n"]
    assert build_report(result)["workloads"]["looped"]["diff"] == "".join(s["looped"].diffs)
    assert list(tmp_path.iterdir()) == []


async def test_dead_letters_are_counted_but_not_written_and_format_to_a_file_is_not_run(
    run_yaml, tmp_path: Path
) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: data
        workloads:
          - name: gen
            process: { module: data:generate_from_list, params: { items: [{ n: 1 }, { n: 0 }] } }
          - name: inverse
            stream_inputs: [gen]
            process:
              module: data:map
              params: { fields: { inv: "{{ 1 / record.n }}" }, on_error: dead_letter }
          - name: to_file
            stream_inputs: [inverse]
            process: { module: data:format, params: { format: json, path: out.json } }
        """,
        workspace=tmp_path,
        check=True,
    )
    s = result.states
    assert s["inverse"].status.value == "Completed" and s["inverse"].check_outcome == "ran"
    assert s["inverse"].counters == {"dead_lettered": 1}
    assert any("check mode: 1 dead letters not written" in line for _, _, line in s["inverse"].logs)
    assert s["to_file"].status.value == "Skipped"
    assert s["to_file"].reason.endswith("so it was not run (it writes path)")
    assert list(tmp_path.iterdir()) == []


def test_print_diffs_colours_and_redacts() -> None:
    from gxo.engine.context import WorkloadState
    from gxo.engine.scheduler import RunResult
    from gxo.template.secrets import SecretRegistry

    secrets = SecretRegistry()
    secrets.add("hunter2-secret")
    state = WorkloadState(_workload("w"))
    state.diffs = ["--- a\n+++ a\n@@ -1 +1 @@\n-old\n+hunter2-secret\n"]
    other = WorkloadState(_workload("quiet"))
    from datetime import UTC, datetime

    result = RunResult(
        "pb", "r1", "Completed", datetime.now(UTC), 1.0, {"w": state, "quiet": other}
    )
    result.secrets = secrets
    out = io.StringIO()
    console = Console(
        file=out, width=200, force_terminal=True, color_system="standard", highlight=False
    )
    print_diffs(console, result)
    text = out.getvalue()
    assert "hunter2-secret" not in text and "+[REDACTED]" in text
    assert "\x1b[31m-old" in text  # red removal
    assert "diff w" in text and "diff quiet" not in text


def _workload(name: str) -> Any:
    from gxo.config.models import Process, Workload

    return Workload(name=name, process=Process(module="control:identity", params={}))


async def test_a_status_function_when_does_not_run_what_needs_an_unrun_result(
    run_yaml, tmp_path: Path
) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: hooks
        workloads:
          - name: deploy
            process: { module: exec, params: { command: "false" } }
            register: deployed
          - name: cleanup
            when: "always()"
            process: { module: control:identity, params: { code: "{{ deployed.exit_code }}" } }
          - name: report
            when: "always()"
            process: { module: control:identity, params: { ok: true } }
        """,
        workspace=tmp_path,
        check=True,
    )
    assert result.status == "Completed"
    assert statuses(result) == {"deploy": "Skipped", "cleanup": "Skipped", "report": "Completed"}
    assert result.states["cleanup"].reason == "check mode: needs 'deploy', which was not run"
