"""Running one workload: ``when``, ``loop``, ``retry``, ``timeout``, ``register``.

The scheduler decides *when* a workload may run; this module decides *how*. It
never raises for a workload's own failure: the outcome is recorded on the
:class:`~gxo.engine.context.WorkloadState` and announced on the event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from pydantic import ValidationError

from gxo.engine.context import ModuleContext, RunContext, Status, WorkloadState
from gxo.engine.events import EventBus, EventKind
from gxo.engine.slots import LoopSlots
from gxo.engine.streams import MergedReader, StreamWriter
from gxo.errors import GxoError, ModuleError, ModuleParamsError, TemplateError, UpstreamFailedError
from gxo.modules.base import REGISTRY, CheckMode, CheckUnsupported, Module, ModuleSpec
from gxo.state.store import copy_record
from gxo.template.engine import holds_template
from gxo.template.filters import is_truthy
from gxo.template.limits import deadline as render_deadline
from gxo.template.secrets import REDACTED

__all__ = ["WorkloadRunner", "check_skipped", "set_status", "skip_for_check"]

# Retry jitter: one generator for every run (seeding one from urandom per run cost
# 0.1-0.2 ms, a tenth of a daemon instance); tests pass their own ``rng``.
_RNG = random.Random()

_NO_DEADLINE = contextlib.nullcontext()  # reusable; render_deadline(None) in one step less

# Errors that another attempt cannot fix.
_NOT_RETRYABLE = (TemplateError, ModuleParamsError)

# A loop's iteration records (report ``iterations``, the TUI's table) carry each one's
# item and rendered params, bounded so a loop of 10,000 items keeps a sane report: an
# item is kept up to ITEM_MAX characters of JSON (else a cut text of it), an
# iteration's params up to PARAMS_MAX characters, and a loop's params up to
# PARAMS_BUDGET in all (failed iterations get a budget of their own); beyond, the
# record says ``params_omitted`` and why.
ITEM_MAX = 200
PARAMS_MAX = 8 * 1024
PARAMS_BUDGET = 256 * 1024


_TERMINAL = frozenset(s for s in Status if s.terminal)
_WORKLOAD_STATUS = EventKind.WORKLOAD_STATUS
# Globals: ``Status.X`` costs a metaclass attribute lookup, ~10x a global's.
_RUNNING, _COMPLETED, _FAILED = Status.RUNNING, Status.COMPLETED, Status.FAILED


def set_status(bus: EventBus, state: WorkloadState, status: Status, **data: Any) -> None:
    """Record ``state``'s new status and announce it (the only way statuses change)."""
    state.status = status
    terminal = status in _TERMINAL
    if terminal:
        state.finished_at = time.monotonic()
    elif status is _RUNNING and state.started_at is None:
        state.started_at = time.monotonic()
    value = status._value_  # not .value: an enum descriptor call
    # Nobody listens, or not to this status (unless it reports lost records).
    if not bus.wants_status(value, state.records_dropped if terminal else 0):
        return
    # Two of these per workload: one dict, built in its final key order.
    payload = {
        "status": value,
        "reason": state.reason,
        "attempts": state.attempts,
        "duration_ms": state.duration_ms,
        "error": state.error,
    }
    # Listeners (progress on stderr, TUI) must show what a run would otherwise hide.
    if terminal:
        if status is _FAILED and state.workload.ignore_errors:
            payload["ignored"] = True
        if state.check_outcome:  # gxo run --check: ran, predicted or not run
            payload["check"] = state.check_outcome
        if state.records_dropped:
            payload["records_dropped"] = state.records_dropped
    if data:
        payload.update(data)
    bus.publish(_WORKLOAD_STATUS, state.workload.name, payload)


def check_skipped(run: RunContext, name: str) -> bool:
    """gxo run --check: ``name`` was not run (it cannot predict, or needs what was not run)."""
    state = run.states.get(name)
    return run.check and state is not None and state.check_outcome == "not run"


def skip_for_check(runner: WorkloadRunner, state: WorkloadState, dep: str) -> None:
    """Skip ``state``: it needs the result of ``dep``, which check mode did not run."""
    state.check_outcome = "not run"
    runner.skip(state, f"check mode: needs '{dep}', which was not run", blocked=True)


class _Skip(Exception):
    def __init__(self, reason: str, blocked: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.blocked = blocked


class WorkloadRunner:
    """Executes workloads of one run."""

    def __init__(
        self, run: RunContext, *, sleep: Any = asyncio.sleep, rng: random.Random | None = None
    ) -> None:
        self.run = run
        # The run's concurrency limit (set by the scheduler); loop iterations beyond a
        # workload's first borrow from it. None: only loop_control.parallel applies.
        self.slots: asyncio.Semaphore | None = None
        # Workloads cancelled alone (Engine.cancel_workload) -> their error; set by the
        # scheduler. Any other cancellation is the run's interruption.
        self.cancel_reasons: dict[str, str] = {}
        self._sleep = sleep
        self._rng = rng or _RNG
        # Workload name -> whether its params have credential-named keys to mask.
        self._credential_keys: dict[str, bool] = {}

    def set_status(self, state: WorkloadState, status: Status, **data: Any) -> None:
        set_status(self.run.bus, state, status, **data)

    def skip(self, state: WorkloadState, reason: str, *, blocked: bool = False) -> None:
        state.reason = reason
        state.blocked = blocked
        self.set_status(state, Status.SKIPPED)

    async def execute(
        self,
        state: WorkloadState,
        reader: MergedReader,
        writer: StreamWriter,
        *,
        when_names: dict[str, Any] | None = None,
        local: dict[str, Any] | None = None,
        blocked_if_false: bool = False,
    ) -> None:
        """Run ``state``'s workload to a terminal status. Closes ``writer`` when done.

        ``when_names``: more names its ``when`` sees (the status functions, bound by the
        scheduler); ``local``: more names every template of the workload sees (``_gxo``
        with ``pause`` for a ``paused()`` hook); ``blocked_if_false``: a false ``when``
        skips it as blocked (a dependency failed: its own dependents are skipped too).
        """
        w = state.workload
        failed_stream = False
        base = dict(local) if local else {}
        try:
            spec = REGISTRY.get(w.process.module)
            if spec is None:  # validated earlier; a registry change at run time is a bug
                raise ModuleError(f"unknown module '{w.process.module}'")
            per_item = w.when is not None and w.loop is not None and _reads_loop_names(w)
            # A `when` that reads no loop name is decided once, before the loop renders.
            if (
                w.when is not None
                and not per_item
                and not self._when(w, {**base, **(when_names or {})})
            ):
                raise _Skip("when condition is false", blocked=blocked_if_false)
            bus = self.run.bus
            set_status(bus, state, _RUNNING)
            if w.loop is not None:
                item_when = (when_names or {}) if per_item else None
                await self._run_loop(state, spec, reader, writer, base, item_when, blocked_if_false)
            elif w.retry is None and w.timeout is None and not self.run.check:
                # One attempt, no deadline: what _run_attempts and _attempt do for it,
                # without their two coroutine levels (most workloads of most runs).
                if state.attempts < 1:
                    state.attempts = 1
                try:
                    module, ctx, params = self._prepare(state, spec, reader, writer, base, None)
                    summary = await module.perform(ctx, params)
                except (UpstreamFailedError, _FailNow):
                    raise
                except Exception as exc:  # as _run_attempts: the workload fails with it
                    exc.__traceback__ = None  # see _run_attempts: no reference cycle
                    raise _FailNow(exc) from None
                state.summary = self.run.register(
                    w.register_key, {} if summary is None else summary
                )
            else:
                summary = await self._run_attempts(state, spec, reader, writer, base, None)
                state.summary = self.run.register(w.register_key, summary)
            # A producer completes only after each consumer drained its stream.
            writer.close()
            if writer.connected:
                await writer.wait_drained()
            self._collect_counts(state, reader, writer)
            set_status(bus, state, _COMPLETED)
        except _Skip as skip:
            failed_stream = skip.blocked
            self._collect_counts(state, reader, writer)
            self.skip(state, skip.reason, blocked=skip.blocked)
        except UpstreamFailedError as exc:
            failed_stream = True
            self._collect_counts(state, reader, writer)
            if check_skipped(self.run, exc.producer):  # gxo run --check
                skip_for_check(self, state, exc.producer)
            else:
                self.skip(state, f"dependency failed: {exc.message}", blocked=True)
        except _FailNow as fail:
            failed_stream = not w.ignore_errors
            self._fail(state, fail.error, reader, writer)
        except GxoError as exc:
            failed_stream = not w.ignore_errors
            self._fail(state, exc, reader, writer)
        except asyncio.CancelledError:
            failed_stream = True
            state.error = self.cancel_reasons.get(w.name) or "cancelled: the run was interrupted"
            self._collect_counts(state, reader, writer)
            self.set_status(state, Status.FAILED)
            raise
        finally:
            reader.abandon()
            writer.close(failed=failed_stream)

    def _when(self, w: Any, names: dict[str, Any]) -> bool:
        """``w.when`` evaluated with ``names`` on top of the run's; a render error fails."""
        try:
            context = self.run.template_context(names or None)
            return is_truthy(
                self.run.templates.evaluate(w.when, context, path="when", workload=w.name)
            )
        except TemplateError as exc:
            raise _FailNow(exc) from None

    def _fail(
        self, state: WorkloadState, error: BaseException, reader: MergedReader, writer: StreamWriter
    ) -> None:
        state.error = self.run.secrets.redact_str(_describe(error))
        partial = getattr(error, "summary", None)
        if partial is not None and state.workload.loop is None:
            state.summary = self.run.register(state.workload.register_key, partial)
        self._collect_counts(state, reader, writer)
        self.set_status(state, Status.FAILED)

    @staticmethod
    def _collect_counts(state: WorkloadState, reader: MergedReader, writer: StreamWriter) -> None:
        state.records_in = reader.records_in
        state.records_out = writer.records_out
        state.records_dropped = writer.dropped

    # -- loops --------------------------------------------------------------------

    async def _run_loop(
        self,
        state: WorkloadState,
        spec: ModuleSpec,
        reader: MergedReader,
        writer: StreamWriter,
        base: dict[str, Any],
        item_when: dict[str, Any] | None,
        blocked_if_false: bool = False,
    ) -> None:
        """``item_when``: not None when ``when`` is decided per item (it reads the loop
        variable), with the names it sees besides the item's."""
        w = state.workload
        items = w.loop
        if isinstance(items, str) or _has_template(items):
            try:
                items = self.run.templates.render(
                    items, self.run.template_context(base or None), path="loop", workload=w.name
                )
            except TemplateError as exc:
                raise _FailNow(exc) from None
        if isinstance(items, dict):  # Ansible's dict2items: one {key, value} item per entry
            items = [{"key": k, "value": v} for k, v in items.items()]
        if not isinstance(items, list | tuple):
            shown = repr(items)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise _FailNow(
                ModuleError(
                    f"param 'loop': loop must be a list or a mapping, got "
                    f"{type(items).__name__}: {shown}"
                )
            )
        loop_var = w.loop_control.loop_var if w.loop_control else "item"
        parallel = w.loop_control.parallel if w.loop_control else 1
        results: list[Any] = [None] * len(items)
        errors: list[tuple[int, BaseException]] = []
        skipped: list[int] = []
        state.iterations = [{"index": i, "status": Status.PENDING.value} for i in range(len(items))]
        semaphore = asyncio.Semaphore(parallel)
        slots = LoopSlots(self.slots)
        budget = {"ok": PARAMS_BUDGET, "failed": PARAMS_BUDGET}  # params characters left

        async def iteration(index: int, item: Any) -> None:
            async with semaphore:
                slot = await slots.acquire()  # iterations count against --concurrency too
                try:
                    await run_one(index, item)
                finally:
                    slots.release(slot)

        async def run_one(index: int, item: Any) -> None:
            record = state.iterations[index]
            record["item"] = _shown_item(self.run.secrets.redact(item))
            local = {**base, loop_var: item, "loop_index": index}
            started = time.monotonic()
            try:
                if item_when is not None and not self._when(w, {**local, **item_when}):
                    results[index] = {"skipped": True, "reason": "when condition is false"}
                    record["status"] = Status.SKIPPED.value
                    record["reason"] = "when condition is false"
                    skipped.append(index)
                else:
                    record["status"] = Status.RUNNING.value
                    results[index] = await self._run_attempts(
                        state, spec, reader, writer, local, index
                    )
                    record["status"] = Status.COMPLETED.value
            except _FailNow as fail:
                results[index] = getattr(fail.error, "summary", None)
                record["status"] = Status.FAILED.value
                record["error"] = self.run.secrets.redact_str(_describe(fail.error))
                errors.append((index, fail.error))
            except asyncio.CancelledError:  # the record must not stay Running
                record["status"] = Status.FAILED.value
                record["error"] = (
                    self.cancel_reasons.get(w.name) or "cancelled: the run was interrupted"
                )
                raise
            finally:  # also when cancelled: the record stays bounded
                record["duration_ms"] = round((time.monotonic() - started) * 1000, 3)
                _bound_params(record, budget)
            self.run.bus.emit(
                EventKind.WORKLOAD_ITERATION, w.name, **self.run.secrets.redact(record)
            )

        tasks = [asyncio.create_task(iteration(i, item)) for i, item in enumerate(items)]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        state.summary = self.run.register(w.register_key, results)
        if errors:
            index, first = min(errors, key=lambda e: e[0])
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise _FailNow(ModuleError(f"loop iteration {index} failed: {_describe(first)}{more}"))
        if items and len(skipped) == len(items):
            raise _Skip("when condition is false for every item", blocked=blocked_if_false)

    # -- attempts -----------------------------------------------------------------

    async def _run_attempts(
        self,
        state: WorkloadState,
        spec: ModuleSpec,
        reader: MergedReader,
        writer: StreamWriter,
        local: dict[str, Any],
        iteration: int | None,
    ) -> Any:
        w = state.workload
        retry = w.retry
        attempts = retry.attempts if retry else 1
        error: Exception
        for attempt in range(1, attempts + 1):
            # Loop iterations retry independently: the workload shows the most any needed.
            if attempt > state.attempts:
                state.attempts = attempt
            if iteration is not None:
                state.iterations[iteration]["attempts"] = attempt
            try:
                # A CPU-bound template blocks the loop, so asyncio.timeout cannot fire
                # during a render: the renderer checks this deadline itself.
                with render_deadline(w.timeout) if w.timeout is not None else _NO_DEADLINE:
                    summary = await self._attempt(state, spec, reader, writer, local, iteration)
                if (
                    retry is None
                    or retry.until is None
                    # gxo run --check: a prediction does not change between attempts
                    # (nothing was done), so polling it would only wait.
                    or (self.run.check and state.check_outcome == "predicted")
                    or self._until(w, retry.until, summary, local)
                ):
                    return summary
                error = _UntilFalse(retry.until, attempt, summary)
                if attempt >= attempts:
                    raise _FailNow(error)
            except (asyncio.CancelledError, UpstreamFailedError, _Skip, _FailNow):
                raise
            except Exception as exc:  # every module failure goes through retry policy
                error = exc
                if isinstance(exc, _NOT_RETRYABLE) or attempt >= attempts or retry is None:
                    # Its traceback holds this frame, which holds it: without this every
                    # failed workload is a reference cycle (freed by the cycle collector).
                    exc.__traceback__ = None
                    raise _FailNow(error) from None
            if retry is not None:  # attempts left: wait, then try again
                delay = retry.delay_for(attempt - 1)
                if retry.jitter:
                    delay *= 1 + self._rng.uniform(-retry.jitter, retry.jitter)
                delay = max(0.0, delay)
                self.run.bus.emit(
                    EventKind.WORKLOAD_RETRYING,
                    w.name,
                    attempt=attempt,
                    next_attempt=attempt + 1,
                    delay=round(delay, 3),
                    error=self.run.secrets.redact_str(_describe(error)),
                )
                self.run.log(
                    w.name,
                    f"attempt {attempt} failed: {_describe(error)}; retrying in {delay:.2f}s",
                    level="warning",
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _until(self, w: Any, until: str, summary: Any, local: dict[str, Any]) -> bool:
        """``retry.until`` over the attempt's summary (``result``); a render error fails."""
        try:
            context = self.run.template_context({**local, "result": summary})
            return is_truthy(
                self.run.templates.evaluate(until, context, path="retry.until", workload=w.name)
            )
        except TemplateError as exc:
            raise _FailNow(exc) from None

    async def _attempt(
        self,
        state: WorkloadState,
        spec: ModuleSpec,
        reader: MergedReader,
        writer: StreamWriter,
        local: dict[str, Any],
        iteration: int | None,
    ) -> Any:
        w = state.workload
        module, ctx, params = self._prepare(state, spec, reader, writer, local, iteration)
        if w.timeout is not None:
            deadline = asyncio.timeout(w.timeout)
            try:
                async with deadline:
                    summary = await self._perform(module, ctx, params)
            except TimeoutError:
                if deadline.expired():
                    raise ModuleError(f"timed out after {_fmt_seconds(w.timeout)}") from None
                raise
        elif self.run.check:
            summary = await self._perform(module, ctx, params)
        else:  # the common case, one coroutine less
            summary = await module.perform(ctx, params)
        return {} if summary is None else summary

    def _prepare(
        self,
        state: WorkloadState,
        spec: ModuleSpec,
        reader: MergedReader,
        writer: StreamWriter,
        local: dict[str, Any],
        iteration: int | None,
    ) -> tuple[Module, ModuleContext, Any]:
        """An attempt up to ``perform``: the module, its context and its validated params
        (rendered, redacted for the TUI and the report)."""
        w = state.workload
        ctx = ModuleContext(
            self.run, state, reader=reader, writer=writer, local_vars=local, iteration=iteration
        )
        source = w.process.params
        if holds_template(source):
            rendered = self.run.templates.render(
                source,
                ctx.template_context(),
                path="",
                workload=w.name,
                skip=spec.is_raw if spec.raw_paths else None,
            )
            if ctx.deep_copy:
                rendered = copy_record(rendered)
        else:  # nothing to render: fresh containers, as a render returns
            rendered = copy_record(source)
        # Shown by the TUI and kept in loop iteration records (the report): literal
        # credentials (auth.password: xyz) masked as well as secret() values.
        redacted = self.run.secrets.redact(rendered)
        masks = self._credential_keys.get(w.name)
        if masks is None:  # decided once per workload, from its params' (literal) keys
            masks = self._credential_keys[w.name] = _credential_keys_of(source)
        state.rendered_params = mask_credentials(redacted) if masks else redacted
        if iteration is not None:  # this iteration's own (bounded by _run_loop)
            state.iterations[iteration]["params"] = state.rendered_params
        try:
            params = spec.validate_params(rendered)
        except ValidationError as exc:
            raise ModuleParamsError(
                _params_message(spec, exc, rendered, self.run.secrets), workload=w.name
            ) from None
        module = spec.instantiate()
        if w.security_context is not None:  # sandboxed (issue 14, gxo/engine/sandbox/)
            from gxo.engine.sandbox.parent import Sandboxed

            module = Sandboxed(spec.name, rendered, w.security_context)  # type: ignore[assignment]
        return module, ctx, params

    async def _perform(self, module: Module, ctx: ModuleContext, params: Any) -> Any:
        """``perform``, or under ``gxo run --check`` what the module's check mode says."""
        if not self.run.check:
            return await module.perform(ctx, params)
        state = ctx.state
        mode = module.check_mode_for(params)
        if mode is CheckMode.safe:  # read-only: runs for real
            state.check_outcome = state.check_outcome or "ran"
            return await module.perform(ctx, params)
        try:
            if mode is not CheckMode.predict:
                hint = f" ({module.check_hint})" if module.check_hint else ""
                raise CheckUnsupported(
                    f"module '{module.spec.name}' cannot predict what it would do, so it was not run{hint}"
                )
            summary = await module.check(ctx, params)
        except CheckUnsupported as exc:
            state.check_outcome = "not run"
            raise _Skip(f"check mode: {exc.reason}", blocked=True) from None
        if state.check_outcome != "not run":  # a loop: one predicted iteration is enough
            state.check_outcome = "predicted"
        return summary


class _UntilFalse(ModuleError):
    """``retry.until`` is still false after an attempt; ``summary`` is that attempt's."""

    def __init__(self, until: str, attempt: int, summary: Any) -> None:
        super().__init__(f"until condition {until!r} is still false after {attempt} attempt(s)")
        self.summary = summary


def _shown_item(item: Any) -> Any:
    """A loop item as its iteration record shows it (already redacted): itself when
    small, else the start of its JSON text, cut at ITEM_MAX characters."""
    if item is None or isinstance(item, bool | int | float):
        return item
    if isinstance(item, str):
        return item if len(item) <= ITEM_MAX else item[: ITEM_MAX - 1] + "…"
    import json

    text = json.dumps(item, default=str, ensure_ascii=False)
    return item if len(text) <= ITEM_MAX else text[: ITEM_MAX - 1] + "…"


# Param names whose literal values are credentials (a substring, case-insensitive).
_CREDENTIAL_NAMES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "api-key",
    "private_key",
    "access_key",
    "authorization",
    "credential",
)


# Params (by identity) -> whether they have credential-named keys: a daemon runs the
# same workload model in thousands of runs (the params are kept alive by the entry).
_CREDENTIAL_KEYS: dict[int, tuple[Any, bool]] = {}
_CREDENTIAL_KEYS_MAX = 4096


def _credential_keys_of(params: Any) -> bool:
    entry = _CREDENTIAL_KEYS.get(id(params))
    if entry is not None and entry[0] is params:
        return entry[1]
    masks = _has_credential_keys(params)
    if len(_CREDENTIAL_KEYS) >= _CREDENTIAL_KEYS_MAX:
        _CREDENTIAL_KEYS.clear()
    _CREDENTIAL_KEYS[id(params)] = (params, masks)
    return masks


def _has_credential_keys(value: Any) -> bool:
    if not value:  # {} (many workloads), None, ""
        return False
    if isinstance(value, dict):
        return any(
            (isinstance(k, str) and any(w in k.lower() for w in _CREDENTIAL_NAMES))
            or _has_credential_keys(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_credential_keys(v) for v in value)
    return False


def mask_credentials(value: Any) -> Any:
    """``value`` with the strings under credential-named keys replaced by ``***``."""
    if isinstance(value, dict):
        return {
            k: "***"
            if isinstance(v, str)
            and v
            and "[REDACTED]" not in v  # a secret(): shown as such
            and isinstance(k, str)
            and any(w in k.lower() for w in _CREDENTIAL_NAMES)
            else mask_credentials(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_credentials(v) for v in value]
    return value


def _bound_params(record: dict[str, Any], budget: dict[str, int]) -> None:
    """Keep ``record["params"]`` within PARAMS_MAX and the loop's ``budget``; else say so."""
    params = record.get("params")
    if params is None:
        return
    kind = "failed" if record.get("status") == Status.FAILED.value else "ok"
    if budget[kind] <= 0:  # spent: not even measured (the rest of a 10,000-item loop)
        reason = "loop budget spent"
    else:
        import json

        size = len(json.dumps(params, default=str, ensure_ascii=False))
        if size > PARAMS_MAX:
            reason = f"{size} chars > {PARAMS_MAX}"
        elif size > budget[kind]:
            budget[kind] = 0
            reason = "loop budget spent"
        else:
            budget[kind] -= size
            return
    del record["params"]
    record["params_omitted"] = reason


def _reads_loop_names(w: Any) -> bool:
    """Whether ``w.when`` reads the loop variable or ``loop_index`` (Ansible's rule: then
    it is decided per item)."""
    if not isinstance(w.when, str):
        return False
    from gxo.template.references import find_references

    loop_var = w.loop_control.loop_var if w.loop_control else "item"
    try:
        roots = find_references(w.when, bare=True)[0]
    except TemplateError:
        return False  # evaluated once, where its syntax error fails the workload
    return loop_var in roots or "loop_index" in roots


class _FailNow(Exception):
    """Carries the error that fails the workload (after retries)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _has_template(value: Any) -> bool:
    from gxo.template.engine import iter_template_strings

    return any(True for _ in iter_template_strings(value))


def _describe(error: BaseException) -> str:
    if isinstance(error, GxoError):
        if isinstance(error, TemplateError) and error.param_path:
            return f"param '{error.param_path}': {error.message}"
        return error.message
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _params_message(
    spec: ModuleSpec, exc: ValidationError, rendered: Any = None, secrets: Any = None
) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown param '{loc}'")
        elif err["type"] == "missing":
            parts.append(f"missing required param '{loc}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = repr(err.get("input"))
            if secrets and _secret_input(secrets, rendered, err["loc"], err.get("input")):
                # A validator may have transformed it (`method` is upper-cased): the
                # registry would not recognise the echo, so it is not echoed at all.
                msg, got = secrets.redact_str(msg.replace(got, REDACTED)), REDACTED
            parts.append(f"param '{loc}': {msg} (got {got})" if loc else msg)
    return f"module '{spec.name}' params: " + "; ".join(parts)


def _secret_input(secrets: Any, rendered: Any, loc: tuple[Any, ...], value: Any) -> bool:
    original = rendered
    for key in loc:  # the rendered param at loc, before validators changed it
        try:
            original = original[key]
        except (KeyError, IndexError, TypeError):
            break
    return bool(secrets.is_secret(original) or secrets.is_secret(value))


def _fmt_seconds(seconds: float) -> str:
    from gxo.config.durations import format_duration

    return format_duration(seconds)
