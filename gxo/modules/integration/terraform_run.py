"""``terraform:run``: run terraform (or OpenTofu) init / plan / apply / destroy / output."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._cli import find_binary, run_cli
from gxo.template.secrets import SecretStr

LEVELS = {"error": "error", "warn": "warning", "info": "info", "debug": "debug", "trace": "debug"}


@register("terraform:run", layer="integration")
class TerraformRun(Module):
    """Run ``terraform`` (or OpenTofu's ``tofu``) in ``dir``: init, plan, apply, destroy or output.

    The binary is ``binary`` if given, else ``terraform`` or ``tofu`` from PATH.
    It runs non-interactively (``-input=false``, ``TF_IN_AUTOMATION``) with
    machine-readable output (``-json``): each message is streamed to the
    workload's log as it happens, error diagnostics become the failure message,
    and plan/apply/destroy put their change counts in the summary
    (``changes: {add, change, destroy, import}``; ``changed`` is true when any is
    non-zero — for ``plan``, that changes are pending). After ``apply`` (and for
    ``command: output``) ``terraform output -json`` is parsed into ``outputs``
    (``name: value``); sensitive outputs are registered as secrets, so they are
    redacted wherever they appear.

    ``vars`` are passed through a temporary ``.tfvars.json`` file (mode 0600,
    deleted afterwards), so values keep their types and never appear on a command
    line. ``var_files`` are relative to ``dir``. ``workspace`` is selected (created
    if missing) before the command, after it for ``init``. ``apply`` and
    ``destroy`` need ``auto_approve: true``: there is no one to answer the prompt.

    Example:
        - name: infra
          process:
            module: terraform:run
            params:
              command: apply
              dir: infra/
              workspace: staging
              vars: { instance_count: 2, tags: { team: web } }
              auto_approve: true
          register: infra
        - name: use_it
          process:
            module: exec
            params: { command: echo, args: ["{{ infra.outputs.lb_address }}"] }
    """

    class Params(ModuleParams):
        command: Literal["init", "plan", "apply", "destroy", "output"] = Field(
            ..., description="init, plan, apply, destroy or output"
        )
        dir: str = Field(".", min_length=1, description="Directory of the configuration")
        workspace: str | None = Field(
            None, min_length=1, description="Workspace to select (created if missing)"
        )
        vars: dict[str, Any] = Field(
            default_factory=dict, description="Input variables (any JSON type)"
        )
        var_files: list[str] = Field(
            default_factory=list, description="-var-file files, relative to dir"
        )
        backend_config: dict[str, Any] | list[str] = Field(
            default_factory=dict,
            description="init: backend settings (key: value), or a list of files / key=value strings",
        )
        auto_approve: bool = Field(
            False, description="apply/destroy: required (no interactive prompt)"
        )
        upgrade: bool = Field(False, description="init: -upgrade (newer provider/module versions)")
        binary: str | None = Field(
            None, min_length=1, description="terraform or tofu command (default: PATH)"
        )
        env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables")
        extra_args: list[str] = Field(
            default_factory=list, description="More arguments for the command"
        )

        @field_validator("workspace")
        @classmethod
        def _workspace(cls, value: str | None) -> str | None:
            if value is not None and (value.startswith("-") or "/" in value or " " in value):
                raise ValueError(f"invalid workspace name {value!r}")
            return value

        @model_validator(mode="after")
        def _consistent(self) -> TerraformRun.Params:
            if self.backend_config and self.command != "init":
                raise ValueError("backend_config applies to command: init")
            if self.command in ("init", "output") and (self.vars or self.var_files):
                raise ValueError(f"vars and var_files do not apply to command: {self.command}")
            return self

    summary = {
        "command": "the command run",
        "binary": "the CLI used (terraform or tofu path)",
        "dir": "absolute path of the configuration directory",
        "workspace": "the selected workspace",
        "changes": "plan/apply/destroy: {add, change, destroy, import} resource counts",
        "changed": "plan: changes are pending; apply/destroy: something changed",
        "planned": "gxo run --check of apply: true (the changes are terraform plan's)",
        "outputs": "apply/output: the root module's outputs (name: value; sensitive ones redacted)",
        "diagnostics": "warning messages",
    }
    path_params = ("dir",)

    check_mode = CheckMode.predict
    check_hint = "init downloads providers and writes .terraform; destroy is not planned"

    def check_mode_for(self, params: Params) -> CheckMode:
        """gxo run --check: plan and output only read; apply is planned; init and
        destroy are not run."""
        if params.command in ("plan", "output"):
            return CheckMode.safe
        return CheckMode.predict if params.command == "apply" else CheckMode.unsupported

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """apply under gxo run --check: ``terraform plan`` says what it would change."""
        if not params.auto_approve:  # the real run's error, not a prediction
            return await self.perform(ctx, params)
        ctx.log("check mode: terraform plan instead of apply")
        out = await self.perform(ctx, params.model_copy(update={"command": "plan"}))
        return {**out, "command": params.command, "planned": True}

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        binary = params.binary or find_binary(("terraform", "tofu"))
        if binary is not None and os.sep in binary and not os.path.isabs(binary):
            binary = str(ctx.workspace / binary)  # a relative path: in the workspace
        if binary is None:
            raise ctx.fail("neither terraform nor tofu is on PATH: install one, or set binary")
        if params.binary and os.sep not in binary and find_binary((binary,)) is None:
            raise ctx.fail(f"binary '{binary}' is not on PATH")
        workdir = ctx.resolve_path(params.dir, param="dir")
        if not await ctx.to_thread(workdir.is_dir):
            raise ctx.fail(f"dir {workdir} is not a directory")
        if params.command in ("apply", "destroy") and not params.auto_approve:
            raise ctx.fail(
                f"{params.command} needs auto_approve: true (GXO cannot answer terraform's prompt); "
                "run command: plan to review first"
            )
        for name in params.var_files:
            if not await ctx.to_thread((workdir / name).is_file):
                raise ctx.fail(f"var_files: {workdir / name} does not exist")
        env = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
            **params.env,
        }
        run = _Run(ctx, binary, workdir, env)
        out: dict[str, Any] = {
            "command": params.command,
            "binary": binary,
            "dir": str(workdir),
        }
        varfile = await ctx.to_thread(_write_vars, params.vars) if params.vars else None
        try:
            if params.command == "init":
                await run.plain(
                    [
                        "init",
                        "-input=false",
                        "-no-color",
                        *_backend(params),
                        *(["-upgrade"] if params.upgrade else []),
                        *params.extra_args,
                    ]
                )
                if params.workspace:
                    await run.select(params.workspace)
            else:
                if params.workspace:
                    await run.select(params.workspace)
                if params.command == "output":
                    out["outputs"] = await run.outputs(params.extra_args)
                else:
                    args = [params.command, "-input=false", "-json"]
                    if params.command in ("apply", "destroy"):
                        args.append("-auto-approve")
                    args += [f"-var-file={f}" for f in params.var_files]
                    if varfile is not None:
                        args.append(f"-var-file={varfile}")
                    await run.machine([*args, *params.extra_args])
                    changes = run.changes or {"add": 0, "change": 0, "destroy": 0, "import": 0}
                    out["changes"] = changes
                    out["changed"] = any(changes.values())
                    if params.command == "apply":
                        out["outputs"] = await run.outputs([])
        finally:
            if varfile is not None:
                await ctx.to_thread(_remove, varfile)
        if params.workspace:
            out["workspace"] = params.workspace
        if run.warnings:
            out["diagnostics"] = run.warnings[:50]
        return out


def _backend(params: TerraformRun.Params) -> list[str]:
    if isinstance(params.backend_config, dict):
        return [f"-backend-config={k}={_scalar(v)}" for k, v in params.backend_config.items()]
    return [f"-backend-config={item}" for item in params.backend_config]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _write_vars(values: dict[str, Any]) -> str:
    fd, path = tempfile.mkstemp(prefix="gxo-", suffix=".tfvars.json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh, default=str)
    os.chmod(path, 0o600)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class _Run:
    """One module call's invocations of the CLI, their streamed logs and parsed results."""

    def __init__(self, ctx: ModuleContext, binary: str, workdir: Path, env: dict[str, str]) -> None:
        self.ctx = ctx
        self.binary = binary
        self.workdir = workdir
        self.env = env
        self.name = Path(binary).name
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.changes: dict[str, int] | None = None

    def _stderr(self, line: str) -> None:
        if line.strip():
            self.ctx.log(line, stream="stderr")

    async def _call(self, args: list[str], on_stdout: Any) -> Any:
        try:
            return await run_cli(
                [self.binary, *args],
                cwd=self.workdir,
                env=self.env,
                on_stdout=on_stdout,
                on_stderr=self._stderr,
            )
        except OSError as exc:
            raise self.ctx.fail(f"cannot run {self.binary}: {exc.strerror or exc}") from None

    def _fail(self, args: list[str], code: int, stderr: list[str]) -> Exception:
        detail = (
            "; ".join(self.errors) or "\n".join(line for line in stderr if line.strip())[-2000:]
        )
        return self.ctx.fail(
            f"{self.name} {args[0]} failed (exit {code}): {detail or 'no error message'}"
        )

    async def plain(self, args: list[str]) -> None:
        """A command with human-readable output (init, workspace)."""
        lines: list[str] = []

        def on_line(line: str) -> None:
            if line.strip():
                lines.append(line)
                self.ctx.log(line)

        result = await self._call(args, on_line)
        if result.returncode != 0:
            self.errors = [ln.strip("│╷╵ ").strip() for ln in lines if "Error" in ln][:5]
            raise self._fail(args, result.returncode, result.stderr + lines)

    async def select(self, workspace: str) -> None:
        await self.plain(["workspace", "select", "-or-create=true", "-no-color", workspace])

    async def machine(self, args: list[str]) -> None:
        """A command with -json output: stream messages, keep diagnostics and change counts."""

        def on_line(line: str) -> None:
            try:
                msg = json.loads(line)
            except ValueError:
                if line.strip():
                    self.ctx.log(line)
                return
            if not isinstance(msg, dict):
                return
            level = LEVELS.get(str(msg.get("@level", "info")), "info")
            text = str(msg.get("@message", ""))
            kind = msg.get("type")
            if kind == "diagnostic":
                diag = msg.get("diagnostic") or {}
                full = ": ".join(p for p in (diag.get("summary"), diag.get("detail")) if p) or text
                where = (diag.get("range") or {}).get("filename")
                if where:
                    full = f"{where}: {full}"
                (
                    self.errors
                    if diag.get("severity", msg.get("@level")) == "error"
                    else self.warnings
                ).append(full)
                self.ctx.log(full, level=level)
                return
            if kind == "change_summary":
                c = msg.get("changes") or {}
                self.changes = {
                    "add": int(c.get("add", 0)),
                    "change": int(c.get("change", 0)),
                    "destroy": int(c.get("remove", c.get("destroy", 0))),
                    "import": int(c.get("import", 0)),
                }
            if text:
                self.ctx.log(text, level=level)

        result = await self._call(args, on_line)
        if result.returncode != 0:
            raise self._fail(args, result.returncode, result.stderr)

    async def outputs(self, extra: list[str]) -> dict[str, Any]:
        chunks: list[str] = []
        result = await self._call(["output", "-json", "-no-color", *extra], chunks.append)
        if result.returncode != 0:
            raise self._fail(["output"], result.returncode, result.stderr + chunks)
        text = "\n".join(chunks).strip()
        try:
            raw = json.loads(text) if text else {}
        except ValueError:
            raise self.ctx.fail(
                f"{self.name} output -json printed something that is not JSON"
            ) from None
        outputs: dict[str, Any] = {}
        for name, item in (raw or {}).items():
            value = item.get("value") if isinstance(item, dict) else item
            if isinstance(item, dict) and item.get("sensitive"):
                value = _secret(self.ctx, value)
            outputs[name] = value
        return outputs


def _secret(ctx: ModuleContext, value: Any) -> Any:
    from gxo.modules.integration._crypto import register_secret

    if isinstance(value, str):
        register_secret(ctx, value, data=True)
        return SecretStr(value)
    if isinstance(value, dict):
        return {k: _secret(ctx, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_secret(ctx, v) for v in value]
    return value
