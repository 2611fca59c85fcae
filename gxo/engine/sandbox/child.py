"""The module side of the sandbox: a :class:`SandboxContext` that speaks JSON lines.

It offers what modules use of :class:`~gxo.engine.context.ModuleContext`: params,
``records()``/``batches()`` (input arrives in batches; each consumed batch returns
credit to the engine, so a slow module holds its producers back), ``emit`` (waits
for the engine's acknowledgement once ``WINDOW`` records are in flight), ``log``,
``count``, ``publish``, templates against a snapshot of the run's context,
``resolve_path`` with the run's confinement, and the secret values of the params
for redaction. ``defer`` callbacks run when the module returns (the sandbox ends
with the workload).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import ChainMap, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from gxo.engine.confine import PathResolver
from gxo.errors import GxoError, ModuleError
from gxo.template.engine import TemplateEngine
from gxo.template.secrets import SecretRegistry

__all__ = ["WINDOW", "SandboxContext", "prepare", "run"]

T = TypeVar("T")
WINDOW = 256  # records in flight across the boundary, each way


class _Channel:
    """The protocol: writes JSON lines, dispatches what the engine sends."""

    def __init__(self, out: asyncio.StreamWriter) -> None:
        self.out = out
        self.inbox: deque[dict[str, Any]] = deque()
        self.input_done = False
        self.input_error: str | None = None
        self.input_event = asyncio.Event()
        self.credit = WINDOW
        self.credit_event = asyncio.Event()

    def send(self, message: dict[str, Any]) -> None:
        self.out.write((json.dumps(message, default=str) + "\n").encode())

    async def flush(self) -> None:
        await self.out.drain()

    def dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("t")
        if kind == "rec":
            self.inbox.extend(message["r"])
            self.input_event.set()
        elif kind == "eof":
            self.input_done = True
            self.input_error = message.get("error")
            self.input_event.set()
        elif kind == "ack":
            self.credit += message["n"]
            self.credit_event.set()


class _Input:
    def __init__(self, channel: _Channel, connected: bool) -> None:
        self._ch = channel
        self.connected = connected
        self.records_in = 0

    async def next_batch(self, max_records: int | None = None) -> list[dict[str, Any]] | None:
        ch = self._ch
        while not ch.inbox:
            if ch.input_done:
                if ch.input_error:
                    raise ModuleError(ch.input_error)
                return None
            ch.input_event.clear()
            await ch.input_event.wait()
        n = len(ch.inbox) if max_records is None else min(max_records, len(ch.inbox))
        batch = [ch.inbox.popleft() for _ in range(n)]
        self.records_in += n
        ch.send({"t": "credit", "n": n})
        await ch.flush()
        return batch

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while (batch := await self.next_batch()) is not None:
            for record in batch:
                yield record

    async def batches(self, max_records: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        while (batch := await self.next_batch(max_records)) is not None:
            yield batch

    async def drain(self) -> None:
        while await self.next_batch() is not None:
            pass

    def by_producer(self, producer: str) -> Any:
        raise ModuleError("input_from(producer) is not available in a sandbox (security_context)")


class _Output:
    def __init__(self, channel: _Channel, connected: bool) -> None:
        self._ch = channel
        self.connected = connected

    async def send(self, record: dict[str, Any]) -> None:
        await self.send_many([record])

    async def send_many(self, records: Iterable[dict[str, Any]]) -> None:
        ch = self._ch
        batch = list(records)
        while batch:
            while ch.credit <= 0:
                ch.credit_event.clear()
                await ch.credit_event.wait()
            part, batch = batch[: ch.credit], batch[ch.credit :]
            ch.credit -= len(part)
            ch.send({"t": "emit", "r": part})
            await ch.flush()


class SandboxContext:
    """A :class:`~gxo.engine.context.ModuleContext` across the sandbox boundary."""

    def __init__(self, init: dict[str, Any], channel: _Channel | None = None) -> None:
        self._init = init
        self.workload: str = init["workload"]
        self.iteration: int | None = init.get("iteration")
        self.local_vars: dict[str, Any] = init.get("local_vars") or {}
        self.deep_copy = False  # records are fresh copies: they crossed a pipe
        secrets = SecretRegistry(provider=lambda name: None)
        for value in init.get("secrets", []):
            secrets.add(value)
        paths = PathResolver(
            Path(init["workspace"]), confined=init["confined"], allow=init.get("allow", [])
        )
        self.run = SimpleNamespace(
            run_id=init["run_id"],
            workspace=Path(init["workspace"]),
            secrets=secrets,
            paths=paths,
            templates=TemplateEngine(secrets),
            signals=None,
        )
        self.state = SimpleNamespace(
            workload=SimpleNamespace(
                name=self.workload, stream_inputs=init.get("stream_inputs", [])
            )
        )
        self._channel = channel
        self._deferred: list[Callable[[], Awaitable[None]]] = []
        self.diff: list[str] | None = None

    def attach(self, channel: _Channel) -> None:
        self._channel = channel
        self.input = _Input(channel, self._init.get("has_input", False))
        self.output = _Output(channel, self._init.get("has_output", False))

    # identity and paths
    @property
    def run_id(self) -> str:
        return str(self.run.run_id)

    @property
    def workspace(self) -> Path:
        return Path(self.run.workspace)

    def resolve_path(self, path: str | Path, *, param: str = "path") -> Path:
        return self.run.paths.resolve(path, workload=self.workload, param=param)

    # streams
    @property
    def has_input(self) -> bool:
        return bool(self.input.connected)

    @property
    def has_output(self) -> bool:
        return bool(self.output.connected)

    def records(self) -> AsyncIterator[dict[str, Any]]:
        return self.input.__aiter__()

    def batches(self, max_records: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        return self.input.batches(max_records)

    def input_from(self, producer: str) -> Any:
        return self.input.by_producer(producer)

    async def emit(self, record: dict[str, Any]) -> None:
        await self.output.send(record)

    async def emit_many(self, records: Iterable[dict[str, Any]]) -> None:
        await self.output.send_many(records)

    # templates: against the snapshot of the run's context taken when the workload started
    def template_context(self, **extra: Any) -> ChainMap[str, Any]:
        return ChainMap({**self.local_vars, **extra}, self._init.get("context", {}))

    def render(self, value: Any, *, path: str = "", **extra: Any) -> Any:
        return self.run.templates.render(
            value, self.template_context(**extra), path=path, workload=self.workload
        )

    def render_unredacted(self, value: Any, *, path: str = "") -> Any:
        return self.render(value, path=path)

    def evaluate(self, expression: Any, *, path: str = "", **extra: Any) -> Any:
        return self.run.templates.evaluate(
            expression, self.template_context(**extra), path=path, workload=self.workload
        )

    def truthy(self, expression: Any, *, path: str = "", **extra: Any) -> bool:
        from gxo.template.filters import is_truthy

        return is_truthy(self.evaluate(expression, path=path, **extra))

    def compile(self, template: str, *, bare: bool = False) -> Callable[..., Any]:
        engine = self.run.templates
        compiled = engine.compile_bare(template) if bare else engine.compile(template)
        return engine.renderer(compiled, self.template_context(), workload=self.workload)

    # state
    def get_state(self, key: str, default: Any = None) -> Any:
        return self._init.get("context", {}).get(key, default)

    def publish(self, summary: dict[str, Any]) -> None:
        self._send({"t": "publish", "summary": summary})

    def defer(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._deferred.append(callback)

    # observability
    def log(self, line: str, *, stream: str = "log", level: str = "info") -> None:
        self._send({"t": "log", "line": self.redact_str(line), "stream": stream, "level": level})

    def count(self, name: str, n: int = 1) -> None:
        self._send({"t": "count", "name": name, "n": n})

    def add_diff(self, text: str) -> None:
        self._send({"t": "log", "line": self.redact_str(text), "stream": "diff", "level": "info"})

    def redact(self, value: Any) -> Any:
        return self.run.secrets.redact(value)

    def redact_str(self, text: str) -> str:
        return str(self.run.secrets.redact_str(text))

    def redact_excerpt(self, text: str, limit: int, suffix: str = "…") -> str:
        return str(self.run.secrets.redact_excerpt(text, limit, suffix))

    def fail(self, message: str, *, summary: dict[str, Any] | None = None) -> ModuleError:
        return ModuleError(message, summary=summary, workload=self.workload)

    async def to_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _send(self, message: dict[str, Any]) -> None:
        if self._channel is not None:
            self._channel.send(message)

    async def run_deferred(self) -> None:
        while self._deferred:
            callback = self._deferred.pop()
            try:
                await callback()
            except Exception as exc:
                self.log(f"cleanup failed: {type(exc).__name__}: {exc}", level="warning")


def prepare(init: dict[str, Any]) -> tuple[Any, Any, SandboxContext]:
    """Import the module and validate its params (before privileges are dropped)."""
    from pydantic import ValidationError

    from gxo.modules.base import REGISTRY

    spec = REGISTRY.get(init["module"])
    if spec is None and init.get("import"):  # registered in the engine, not built in
        import importlib
        import sys

        sys.path[:0] = [p for p in init.get("sys_path", []) if p not in sys.path]
        try:
            importlib.import_module(init["import"])
        except Exception as exc:
            raise ModuleError(
                f"module '{init['module']}' cannot be imported in the sandbox "
                f"({init['import']}: {type(exc).__name__}: {exc})"
            ) from None
        spec = REGISTRY.get(init["module"])
    if spec is None:
        raise ModuleError(
            f"module '{init['module']}' is not available in the sandbox: its class is not "
            f"importable by name (defined in {init.get('import') or 'an unknown place'})"
        )
    try:
        params = spec.params_model.model_validate(init["params"])
    except ValidationError as exc:
        raise ModuleError(f"module '{spec.name}' params: {exc}") from None
    return spec.instantiate(), params, SandboxContext(init)


def run(
    prepared: tuple[Any, Any, SandboxContext],
    rest: bytes,
    fd_in: int,
    fd_out: int,
    loop: asyncio.AbstractEventLoop | None = None,
) -> int:
    """Serve the module (on ``loop``, made beforehand, or a new one); the caller exits
    the process right after.

    No event-loop teardown (cancelling leftovers, joining the thread pool): the result is
    sent, and the sandbox ends with the workload; the kernel ends what is left in it.
    """
    loop = loop or new_loop()
    return loop.run_until_complete(_serve(prepared, rest, fd_in, fd_out))


def new_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop; subprocesses are watched through a pidfd where the
    default (before Python 3.12) starts a thread blocked in ``waitpid`` for each. No
    thread is started: a filter (seccomp) or a user switch applies to every thread."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if sys.version_info < (3, 12) and hasattr(os, "pidfd_open"):
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError:  # a kernel older than 5.3: the default watcher
            return loop
        watcher = asyncio.PidfdChildWatcher()
        watcher.attach_loop(loop)
        asyncio.set_child_watcher(watcher)
    return loop


def warm(loop: asyncio.AbstractEventLoop) -> None:
    """Run the protocol's code paths once on a pipe of our own (JSON lines through
    asyncio's pipe transports): the pages they touch are copied (copy-on-write from the
    zygote) now, while the sandbox waits for a workload, not once the workload started."""

    async def roundtrip() -> None:
        r, w = os.pipe()
        reader = asyncio.StreamReader(loop=loop)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(r, "rb", 0)
        )
        wt, wp = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(w, "wb", 0)
        )
        writer = asyncio.StreamWriter(wt, wp, None, loop)
        task = asyncio.create_task(reader.readline())
        writer.write((json.dumps({"t": "done", "summary": {}}, default=str) + "\n").encode())
        await writer.drain()
        json.loads(await task)
        writer.close()
        transport.close()
        await asyncio.sleep(0)

    loop.run_until_complete(roundtrip())


async def _serve(
    prepared: tuple[Any, Any, SandboxContext], rest: bytes, fd_in: int, fd_out: int
) -> int:
    module, params, ctx = prepared
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26, loop=loop)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd_in, "rb", 0)
    )
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.streams.FlowControlMixin(loop=loop), os.fdopen(fd_out, "wb", 0)
    )
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    channel = _Channel(writer)
    ctx.attach(channel)
    if rest:
        reader.feed_data(rest)

    async def receive() -> None:
        while line := await reader.readline():
            channel.dispatch(json.loads(line))
        channel.input_done = True  # the engine went away
        channel.input_event.set()

    receiver = asyncio.create_task(receive())
    code = 0
    try:
        summary = await module.perform(ctx, params)
        channel.send({"t": "done", "summary": {} if summary is None else summary})
    except Exception as exc:
        code = 1
        message = exc.message if isinstance(exc, GxoError) else f"{type(exc).__name__}: {exc}"
        channel.send(
            {
                "t": "error",
                "kind": type(exc).__name__,
                "message": message,
                "summary": getattr(exc, "summary", None),
            }
        )
    finally:
        await ctx.run_deferred()
        await channel.flush()
        receiver.cancel()
        try:
            await receiver
        except asyncio.CancelledError:
            pass
        writer.close()
    return code
