"""``ansible:playbook``: run ansible-playbook and report per-task results."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from gxo.engine.context import ModuleContext
from gxo.modules.base import CheckMode, Module, ModuleParams, register
from gxo.modules.integration._cli import find_binary, run_cli

PLUGINS = Path(__file__).resolve().parent / "_ansible_plugins"
MAX_TASKS = 1000


@register("ansible:playbook", layer="integration")
class AnsiblePlaybook(Module):
    """Run an Ansible playbook; its per-host task results become the summary.

    ansible-playbook (``binary``, else from PATH, else beside GXO's Python) runs
    with a JSON stdout callback shipped with GXO: every task result is streamed
    to the workload's log as it arrives and collected into ``tasks`` (``{play,
    task, host, status, changed, msg}``, status ``ok | changed | failed | skipped
    | unreachable``), with the play recap per host in ``stats``. ``changed`` is
    true when any host reported a change. A failed or unreachable host fails the
    workload, with the failing tasks' messages in the error (the partial summary
    is kept).

    ``inventory`` is a path, or a list of hosts (``[localhost]`` becomes
    ``-i localhost,``). ``extra_vars`` are passed through a temporary JSON file
    (mode 0600, removed afterwards), never on the command line; so is
    ``vault_password``. ``check: true`` runs in check mode (``--check``), ``diff``
    adds ``--diff``. Under ``gxo run --check`` the playbook runs in Ansible's own
    check mode (``--check``; ``--diff`` too with ``gxo run --diff``): its tasks
    report what they would change.

    Example:
        - name: configure
          process:
            module: ansible:playbook
            params:
              playbook: ansible/site.yml
              inventory: ansible/hosts.ini
              extra_vars: { app_version: "{{ build.version }}" }
              tags: [config]
              check: true
    """

    class Params(ModuleParams):
        playbook: str = Field(..., min_length=1, description="Playbook file")
        inventory: str | list[str] | None = Field(
            None, description="Inventory path, or a list of host names"
        )
        extra_vars: dict[str, Any] = Field(default_factory=dict, description="Extra variables (-e)")
        tags: list[str] | str | None = Field(None, description="Only run tasks with these tags")
        skip_tags: list[str] | str | None = Field(None, description="Skip tasks with these tags")
        limit: str | None = Field(None, min_length=1, description="Limit to these hosts (pattern)")
        check: bool = Field(False, description="Check mode: report what would change")
        diff: bool = Field(False, description="Show file differences (--diff)")
        connection: str | None = Field(
            None, min_length=1, description="Connection type, e.g. local, ssh"
        )
        forks: int | None = Field(None, ge=1, description="Parallel processes")
        vault_password: str | None = Field(
            None, min_length=1, description="Password of vault-encrypted files"
        )
        binary: str | None = Field(None, min_length=1, description="ansible-playbook command")
        env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables")
        extra_args: list[str] = Field(
            default_factory=list, description="More ansible-playbook arguments"
        )

        @field_validator("tags", "skip_tags")
        @classmethod
        def _tags(cls, value: list[str] | str | None) -> list[str] | str | None:
            if isinstance(value, list) and any("," in t or not t.strip() for t in value):
                raise ValueError("tags are names without commas")
            return value

    summary = {
        "playbook": "absolute path of the playbook",
        "changed": "true when any host reported a change",
        "check": "whether it ran in check mode",
        "plays": "names of the plays run",
        "tasks": "per-host task results: {play, task, host, status, changed, msg}",
        "stats": "play recap per host: {ok, changed, failures, unreachable, skipped, rescued, ignored}",
        "failed": "number of failed task results (not ignored)",
        "unreachable": "number of unreachable results",
    }
    path_params = ("playbook",)
    check_mode = CheckMode.predict

    def check_mode_for(self, params: Params) -> CheckMode:
        return CheckMode.safe if params.check else CheckMode.predict

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """gxo run --check: ansible-playbook --check (and --diff with gxo run --diff)."""
        update = {"check": True, "diff": params.diff or ctx.diff}
        return await self.perform(ctx, params.model_copy(update=update))

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        binary = params.binary or find_binary(("ansible-playbook",))
        if binary is not None and os.sep in binary and not os.path.isabs(binary):
            binary = str(ctx.workspace / binary)  # a relative path: in the workspace
        if binary is None:
            beside = Path(sys.executable).with_name("ansible-playbook")
            binary = str(beside) if beside.exists() else None
        if binary is None:
            raise ctx.fail("ansible-playbook is not on PATH: install ansible-core, or set binary")
        playbook = ctx.resolve_path(params.playbook, param="playbook")
        if not await ctx.to_thread(playbook.is_file):
            raise ctx.fail(f"playbook {playbook} does not exist")
        if params.vault_password:
            ctx.run.secrets.add(params.vault_password)
        temp = await ctx.to_thread(tempfile.mkdtemp, prefix="gxo-ansible-")
        try:
            argv = await ctx.to_thread(_argv, ctx, params, binary, playbook, Path(temp))
            env = {
                **os.environ,
                "ANSIBLE_STDOUT_CALLBACK": "gxo_json",
                "ANSIBLE_CALLBACK_PLUGINS": str(PLUGINS),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
                "PYTHONUNBUFFERED": "1",
                **params.env,
            }
            state = _Collector(ctx)
            try:
                result = await run_cli(
                    argv,
                    cwd=playbook.parent,
                    env=env,
                    on_stdout=state.on_line,
                    on_stderr=state.on_stderr,
                )
            except OSError as exc:
                raise ctx.fail(f"cannot run {binary}: {exc.strerror or exc}") from None
        finally:
            await ctx.to_thread(_rmtree, temp)
        out = state.summary(str(playbook), params.check)
        if result.returncode != 0:
            problems = (
                state.problems()
                or [line for line in result.stderr if line.strip() and "WARNING" not in line][-5:]
            )
            detail = "; ".join(problems) or "no error message"
            raise ctx.fail(
                f"ansible-playbook failed (exit {result.returncode}): {detail}", summary=out
            )
        return out


def _argv(
    ctx: ModuleContext, params: AnsiblePlaybook.Params, binary: str, playbook: Path, temp: Path
) -> list[str]:
    argv = [binary, str(playbook)]
    if isinstance(params.inventory, list):
        argv += ["-i", ",".join(params.inventory) + ","]
    elif params.inventory is not None:
        inv = params.inventory
        path = ctx.resolve_path(inv, param="inventory")
        argv += ["-i", str(path) if path.exists() else inv]
    if params.extra_vars:
        varfile = temp / "extra_vars.json"
        varfile.write_text(json.dumps(params.extra_vars, default=str), encoding="utf-8")
        varfile.chmod(0o600)
        argv += ["-e", f"@{varfile}"]
    if params.vault_password:
        pwfile = temp / "vault_password"
        pwfile.write_text(params.vault_password, encoding="utf-8")
        pwfile.chmod(0o600)
        argv += ["--vault-password-file", str(pwfile)]
    for flag, value in (("--tags", params.tags), ("--skip-tags", params.skip_tags)):
        if value:
            argv += [flag, value if isinstance(value, str) else ",".join(value)]
    if params.limit:
        argv += ["--limit", params.limit]
    if params.check:
        argv.append("--check")
    if params.diff:
        argv.append("--diff")
    if params.connection:
        argv += ["-c", params.connection]
    if params.forks:
        argv += ["--forks", str(params.forks)]
    return argv + params.extra_args


def _rmtree(path: str) -> None:
    import shutil

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


class _Collector:
    """Events from the JSON callback → logs as they come, and the summary at the end."""

    def __init__(self, ctx: ModuleContext) -> None:
        self.ctx = ctx
        self.plays: list[str] = []
        self.tasks: list[dict[str, Any]] = []
        self.stats: dict[str, Any] = {}
        self.failed = 0
        self.unreachable = 0
        self.changed = False
        self._problems: list[str] = []

    def on_stderr(self, line: str) -> None:
        if line.strip():
            self.ctx.log(line, stream="stderr")

    def on_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            if line.strip():
                self.ctx.log(line)
            return
        if not isinstance(event, dict):
            return
        kind = event.get("event")
        if kind == "play":
            self.plays.append(str(event.get("name", "")))
            self.ctx.log(f"PLAY [{event.get('name', '')}]")
        elif kind == "task":
            self.ctx.log(f"TASK [{event.get('name', '')}]")
        elif kind == "result":
            self._result(event)
        elif kind == "stats":
            self.stats = dict(event.get("hosts") or {})
            for host, s in self.stats.items():
                self.ctx.log(
                    f"{host}: ok={s['ok']} changed={s['changed']} unreachable={s['unreachable']} "
                    f"failed={s['failures']} skipped={s['skipped']}"
                )
        elif kind == "warning":
            self.ctx.log(str(event.get("message", "")), level="warning")

    def _result(self, event: dict[str, Any]) -> None:
        raw = event.get("result") or {}
        status = str(event.get("status", "ok"))
        ignored = bool(event.get("ignored"))
        msg = raw.get("msg")
        if msg is None and status == "failed":
            msg = raw.get("stderr") or raw.get("module_stderr") or raw.get("stdout")
        task: dict[str, Any] = {
            "play": event.get("play"),
            "task": event.get("task"),
            "host": event.get("host"),
            "status": status,
            "changed": bool(raw.get("changed")),
        }
        if msg is not None:
            task["msg"] = msg if isinstance(msg, str) else json.dumps(msg, default=str)
        if ignored:
            task["ignored"] = True
        for key in ("rc", "stdout", "stderr", "results"):
            if key in raw and key not in task:
                task[key] = raw[key]
        skip = ("ansible_facts", "changed", "failed", "skipped", "msg")
        extra = {k: v for k, v in raw.items() if k not in task and k not in skip}
        if extra:
            task["result"] = extra
        if len(self.tasks) < MAX_TASKS:
            self.tasks.append(task)
        if task["changed"]:
            self.changed = True
        if status == "failed" and not ignored:
            self.failed += 1
            self._problems.append(
                f"{event.get('host')}: task '{event.get('task')}' failed: {task.get('msg', '')}".rstrip(
                    ": "
                )
            )
        elif status == "unreachable":
            self.unreachable += 1
            self._problems.append(f"{event.get('host')}: unreachable: {task.get('msg', '')}")
        line = f"{event.get('host')}: {status}"
        if ignored:
            line += " (ignored)"
        if msg and status in ("failed", "unreachable"):
            line += f": {task['msg']}"
        self.ctx.log(
            f"  {line}",
            level="error" if status in ("failed", "unreachable") and not ignored else "info",
        )

    def problems(self) -> list[str]:
        return self._problems[:10]

    def summary(self, playbook: str, check: bool) -> dict[str, Any]:
        return {
            "playbook": playbook,
            "changed": self.changed,
            "check": check,
            "plays": self.plays,
            "tasks": self.tasks,
            "stats": self.stats,
            "failed": self.failed,
            "unreachable": self.unreachable,
        }
