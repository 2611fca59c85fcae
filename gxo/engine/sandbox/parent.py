"""The engine side of the sandbox: :func:`perform_sandboxed`.

Creates the workload's cgroups (memory, pids) when ``limits`` asks, starts
``python -m gxo.engine.sandbox`` in its own process group, sends the setup line
and relays: input records go out in batches as the child returns credit, emitted
records go into the workload's stream and are acknowledged once the stream took
them (back-pressure both ways), logs, counters and published summaries land in the
run as if the module ran in the engine. The child's stderr is logged (stream
``stderr``). On return, error, timeout or cancel the whole process group is killed
with SIGKILL (the pid namespace's init dies, the kernel kills the rest) and the
cgroups are removed. A child the kernel killed for memory fails the workload with
``memory limit 256Mi exceeded``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

from gxo.config.security import SecurityContext, format_size, parse_size
from gxo.engine.sandbox.zygote import SandboxProcess, spawn
from gxo.errors import GxoError, ModuleError, ModuleParamsError, UpstreamFailedError

if TYPE_CHECKING:
    from gxo.engine.context import ModuleContext

__all__ = ["NOT_SANDBOXABLE", "Sandboxed", "perform_sandboxed"]

WINDOW = 256  # records in flight each way (as gxo.engine.sandbox.child.WINDOW)
STOP_GRACE = 2.0  # seconds for the keeper to empty the sandbox before SIGKILL to all
STDERR_TAIL = 20  # lines of the child's stderr kept for an error message
# Modules that act on the engine itself (signals, pauses) cannot run in another process.
NOT_SANDBOXABLE = frozenset({"control:wait_for_signal"})
_counter = itertools.count()


class _Cgroups:
    """The workload's own groups (created in gxo's group; removed afterwards)."""

    def __init__(self, sc: SecurityContext) -> None:
        from gxo.engine.sandbox.host import cgroup_controller

        self.dirs: list[tuple[str, int]] = []
        self.memory: tuple[str, int] | None = None
        limits = sc.limits
        if limits is None:
            return
        name = f"gxo-sandbox-{os.getpid()}-{next(_counter)}"
        for field, controller in (("memory", "memory"), ("pids", "pids")):
            value = getattr(limits, field)
            if value is None:
                continue
            where = cgroup_controller(controller)
            if isinstance(where, str):  # checked at load time; the host changed since
                raise ModuleError(f"security_context.limits.{field}: no cgroup: {where}")
            path = os.path.join(where.parent, name)
            try:
                if where.version == 2:
                    _enable(where.parent, controller)
                os.makedirs(path, exist_ok=True)
                self.dirs.append((path, where.version))
                if controller == "memory":
                    self._memory(path, where.version, parse_size(value))
                    self.memory = (path, where.version)
                else:
                    _write(path, "pids.max", str(value))
            except OSError as exc:
                self.remove()
                raise ModuleError(
                    f"security_context.limits.{field}: cannot set up the cgroup {path}: "
                    f"{exc.strerror or exc}"
                ) from None

    @staticmethod
    def _memory(path: str, version: int, limit: int) -> None:
        if version == 2:
            _write(path, "memory.max", str(limit))
            with contextlib.suppress(OSError):
                _write(path, "memory.swap.max", "0")
        else:
            _write(path, "memory.limit_in_bytes", str(limit))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to cap
                _write(path, "memory.memsw.limit_in_bytes", str(limit))

    @property
    def procs(self) -> list[str]:
        return [os.path.join(path, "cgroup.procs") for path, _ in self.dirs]

    def oom_killed(self) -> bool:
        if self.memory is None:
            return False
        path, version = self.memory
        name = "memory.events" if version == 2 else "memory.oom_control"
        try:
            with open(os.path.join(path, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        except OSError:
            return False
        return False

    def remove(self) -> None:
        for path, _ in reversed(self.dirs):
            for _ in range(50):  # the last processes may still be leaving
                try:
                    os.rmdir(path)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    import time

                    time.sleep(0.002)
        self.dirs = []


async def _cgroups(sc: SecurityContext) -> _Cgroups:
    """The workload's cgroups (file system work: in a thread, unless there is none)."""
    if sc.limits is None or (sc.limits.memory is None and sc.limits.pids is None):
        return _Cgroups(sc)
    return await asyncio.to_thread(_Cgroups, sc)


def _write(path: str, name: str, value: str) -> None:
    with open(os.path.join(path, name), "w") as f:
        f.write(value)


def _enable(parent: str, controller: str) -> None:
    with open(os.path.join(parent, "cgroup.subtree_control")) as f:
        if controller in f.read().split():
            return
    _write(parent, "cgroup.subtree_control", f"+{controller}")


def _context_snapshot(ctx: ModuleContext) -> dict[str, Any]:
    """The names templates see, as plain data (registered results are redacted)."""
    context = ctx.run.template_context()
    out: dict[str, Any] = {}
    for key in context:
        value = context[key]
        if key == "_gxo":
            value = {k: (dict(v) if k in ("workloads", "tasks") else v) for k, v in value.items()}
        out[key] = value
    return out


def _import_path(module: str) -> str | None:
    """Where the sandbox imports a module the engine registered (not a built-in one)."""
    from gxo.modules.base import REGISTRY

    spec = REGISTRY.get(module)
    if spec is None or spec.cls.__module__.startswith("gxo."):
        return None
    return str(spec.cls.__module__)


def _secrets_in(ctx: ModuleContext, params: Any) -> list[str]:
    """The secret values the params carry: the child redacts them itself too."""
    secrets = ctx.run.secrets
    text = json.dumps(params, default=str)
    return [v for v in getattr(secrets, "_values", ()) if v and v in text]


async def perform_sandboxed(
    ctx: ModuleContext, module: str, params: Any, sc: SecurityContext, validated: Any = None
) -> Any:
    """Run ``module`` with ``params`` (the rendered, unredacted dict) in a sandbox.

    ``exec`` (``validated``: its params model) runs in the engine and only its command
    in the sandbox (:mod:`.command`)."""
    if module in NOT_SANDBOXABLE:
        raise ModuleError(
            f"module '{module}' acts on the engine and cannot run in a sandbox (security_context)"
        )
    workload = ctx.state.workload
    for rel in sc.writable_paths:  # bind-mount sources must exist
        ctx.run.paths.resolve(rel, workload=ctx.workload, param="security_context.writable_paths")
        os.makedirs(os.path.join(ctx.workspace, rel), exist_ok=True)
    namespaces = sc.effective_namespaces()
    if module == "exec" and validated is not None:
        return await _perform_exec(ctx, validated, sc, namespaces)
    resolver = ctx.run.paths
    init = {
        "sc": sc.model_dump(mode="json"),
        "namespaces": sc.effective_namespaces(),
        "module": module,
        "import": _import_path(module),
        "sys_path": [p for p in sys.path if p],
        "params": params,
        "workload": ctx.workload,
        "run_id": ctx.run_id,
        "workspace": str(ctx.workspace),
        "confined": resolver.confined,
        "allow": list(resolver.roots[1:]),
        "iteration": ctx.iteration,
        "local_vars": ctx.local_vars,
        "stream_inputs": list(workload.stream_inputs),
        "has_input": ctx.has_input,
        "has_output": ctx.has_output,
        "secrets": _secrets_in(ctx, params),
        "env": dict(os.environ),
        "context": _context_snapshot(ctx),
    }
    proc: SandboxProcess | None = None
    cgroups: _Cgroups | None = None
    tasks: list[asyncio.Task[Any]] = []
    try:
        cgroups = await _cgroups(sc)
        init["cgroups"] = cgroups.procs
        setup = (json.dumps(init, separators=(",", ":"), default=str) + "\n").encode()
        proc = await spawn(module, init["namespaces"], setup)
        return await _relay(ctx, proc, sc, cgroups, tasks)
    finally:
        for task in tasks:
            task.cancel()
        if proc is not None:
            await _stop(proc)
        await asyncio.gather(*tasks, return_exceptions=True)
        if cgroups is not None:
            await asyncio.to_thread(cgroups.remove)


class _CommandContext:
    """The workload's context, plus the sandbox that execs ``exec``'s command."""

    def __init__(self, ctx: ModuleContext, spawn_command: Any) -> None:
        self._ctx = ctx
        self.spawn_command = spawn_command

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


async def _perform_exec(
    ctx: ModuleContext, params: Any, sc: SecurityContext, namespaces: list[str]
) -> Any:
    """``exec`` in the engine, its command sandboxed (started by the sandbox's init)."""
    from gxo.engine.sandbox.command import SandboxedCommand, spawn_command
    from gxo.modules.base import REGISTRY

    started: list[SandboxedCommand] = []
    cgroups: _Cgroups | None = None

    async def spawn(argv: list[str], cwd: str, env: dict[str, str], stdin: bool) -> Any:
        assert cgroups is not None
        init = {
            "sc": sc.model_dump(mode="json"),
            "namespaces": namespaces,
            "workspace": str(ctx.workspace),
            "env": dict(os.environ),
            "cgroups": cgroups.procs,
            "exec": {"argv": argv, "cwd": cwd, "env": env, "stdin": stdin},
        }
        return await spawn_command(init, started)

    try:
        cgroups = await _cgroups(sc)
        spec = REGISTRY.get("exec")
        assert spec is not None
        instance = spec.instantiate()
        try:
            return await instance.perform(_CommandContext(ctx, spawn), params)  # type: ignore[arg-type]
        except ModuleError:
            if cgroups.oom_killed():
                assert sc.limits is not None and sc.limits.memory is not None
                raise ModuleError(
                    f"memory limit {format_size(sc.limits.memory)} exceeded"
                ) from None
            raise
    finally:
        for command in started:
            await command.close()
        if cgroups is not None:
            await asyncio.to_thread(cgroups.remove)


async def _stop(proc: SandboxProcess) -> None:
    """SIGTERM to the keeper (it kills the sandbox and waits for the namespace to
    empty), SIGKILL to its whole process group after STOP_GRACE or when cancelled."""
    if proc.running:
        proc.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(proc.finish()), STOP_GRACE)
        except (TimeoutError, asyncio.CancelledError):
            proc.signal(signal.SIGKILL, group=True)
    await proc.finish()


async def _relay(
    ctx: ModuleContext,
    proc: SandboxProcess,
    sc: SecurityContext,
    cgroups: _Cgroups,
    tasks: list[asyncio.Task[Any]],
) -> Any:
    stdin, stdout, stderr = proc.stdin, proc.stdout, proc.stderr
    credit = WINDOW
    credit_event = asyncio.Event()
    upstream: list[BaseException] = []
    tail: list[str] = []

    async def feed() -> None:
        nonlocal credit
        try:
            while True:
                while credit <= 0:
                    credit_event.clear()
                    await credit_event.wait()
                batch = await ctx.input.next_batch(credit)
                if batch is None:
                    stdin.write(b'{"t":"eof"}\n')
                    await stdin.drain()
                    return
                credit -= len(batch)
                stdin.write((json.dumps({"t": "rec", "r": batch}, default=str) + "\n").encode())
                await stdin.drain()
        except UpstreamFailedError as exc:
            upstream.append(exc)
            with contextlib.suppress(Exception):  # ends the module even if a kill misses
                eof = {"t": "eof", "error": exc.message}
                stdin.write((json.dumps(eof) + "\n").encode())
            proc.signal(signal.SIGKILL, group=True)
        except (BrokenPipeError, ConnectionResetError):
            return

    async def errors() -> None:
        while line := await stderr.readline():
            text = line.decode(errors="replace").rstrip("\n")
            tail.append(text)
            del tail[:-STDERR_TAIL]
            ctx.log(text, stream="stderr")

    if ctx.has_input:
        tasks.append(asyncio.create_task(feed()))
    else:
        stdin.write(b'{"t":"eof"}\n')
    tasks.append(asyncio.create_task(errors()))
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # it says why on stdout
        await stdin.drain()
    outcome: dict[str, Any] | None = None
    while line := await stdout.readline():
        message = json.loads(line)
        kind = message.get("t")
        if kind == "emit":
            records = message["r"]
            await ctx.output.send_many(records)
            stdin.write(b'{"t":"ack","n":%d}\n' % len(records))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await stdin.drain()
        elif kind == "credit":
            credit += message["n"]
            credit_event.set()
        elif kind == "log":
            ctx.log(message["line"], stream=message["stream"], level=message["level"])
        elif kind == "count":
            ctx.count(message["name"], message["n"])
        elif kind == "publish":
            ctx.publish(message["summary"])
        elif kind in ("done", "error"):
            outcome = message
        elif kind == "exit":
            proc.returncode = message["code"]
    await proc.finish()
    await tasks[-1]  # the last stderr lines are logged before the verdict
    if upstream:
        raise upstream[0]
    if cgroups.oom_killed():
        assert sc.limits is not None and sc.limits.memory is not None
        raise ModuleError(f"memory limit {format_size(sc.limits.memory)} exceeded")
    if outcome is not None and outcome["t"] == "done":
        return outcome["summary"]
    if outcome is not None:
        error_class: type[GxoError] = ModuleError
        if outcome.get("kind") in ("ModuleParamsError", "ConfinementError"):
            error_class = ModuleParamsError
        message = outcome["message"]
        if outcome.get("kind") == "SandboxSetupError":
            message = f"sandbox: security_context.{message}"
        elif outcome.get("kind") == "SandboxError":
            message = f"sandbox: {message}"
        if error_class is ModuleError:
            raise ModuleError(message, summary=outcome.get("summary"))
        raise error_class(message)
    code = proc.returncode or 0
    if code > 128 and code - 128 == signal.SIGXCPU and sc.limits and sc.limits.cpu_seconds:
        raise ModuleError(f"cpu time limit {sc.limits.cpu_seconds}s exceeded")
    why = f"killed by signal {code - 128}" if code > 128 else f"exited with code {code}"
    detail = f": {tail[-1]}" if tail else ""
    raise ModuleError(f"sandbox {why} before the module finished{detail}")


class Sandboxed:
    """Stands in for a module instance: ``perform`` runs the module in a sandbox.

    The engine validated ``params`` already (errors are reported without a child);
    the child validates the rendered dict again on its side. Everything else (the
    check-mode declarations of ``gxo run --check``: ``check_mode_for``, ``check``,
    ``check_hint``, ``spec``) is the module's own, in the engine: a ``safe`` module
    then performs for real, in the sandbox; a prediction (``check``) is read-only and
    runs in the engine.
    """

    def __init__(self, module: str, rendered: Any, sc: SecurityContext) -> None:
        self.module = module
        self.rendered = rendered
        self.sc = sc
        self._instance: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_instance":
            raise AttributeError(name)
        if self._instance is None:
            from gxo.modules.base import REGISTRY

            spec = REGISTRY.get(self.module)
            if spec is None:
                raise AttributeError(name)
            self._instance = spec.instantiate()
        return getattr(self._instance, name)

    async def perform(self, ctx: ModuleContext, params: Any) -> Any:
        return await perform_sandboxed(ctx, self.module, self.rendered, self.sc, params)
