"""``data:kv``: keyed state shared by the records and workloads of one run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from gxo.engine.context import ModuleContext
from gxo.engine.kvstore import DEFAULT_MAX_KEYS, KVError, KVStores, as_number
from gxo.errors import GxoError
from gxo.modules.base import CheckMode, Module, StreamRole, raw_template, register
from gxo.modules.connection._streams import value_builder
from gxo.modules.data._records import (
    BadRecords,
    DeadLetter,
    RecordErrorParams,
    dead_letter_field,
)
from gxo.state.store import copy_record

OPS = ("get", "set", "delete", "incr", "has", "none")
READ_ONLY = frozenset({"get", "has", "none"})
Op = Literal["get", "set", "delete", "incr", "has", "none"]
_MISSING: Any = object()


@register("data:kv", layer="data")
class KV(Module):
    """Read and write a key-value store shared by every workload of the run.

    ``op`` is ``get`` (the value, or ``default`` when the key is unknown), ``set``
    (store ``value``), ``delete``, ``incr`` (add ``by`` to a number, counting from
    ``default`` -- 0 unless given -- when the key is unknown; text holding a number
    counts as one) or ``has``; ``none`` does nothing (lets a templated op skip
    some records). Keys are text (numbers are converted). The stores live as long
    as the run -- or the daemon instance, for a service -- and are discarded at
    its end; ``store`` names one (``default``). Values are deep-copied in and out;
    a secret stays a secret (redacted in logs, summaries and reports).

    Without ``stream_inputs`` the op runs once and the summary is its result:
    ``{op, store, key, value, found, changed, size}``. With ``stream_inputs`` it
    runs once per record, in input order, every param templated per ``record``,
    and emits the record plus ``kv: {op, store, key, value, found, changed}``
    (``kv: null`` for op ``none``). ``value`` is the value read (``get``), written
    (``set``), removed (``delete``), the new number (``incr``) or ``found``
    (``has``); ``found`` says whether the key existed before the op. A record the
    op fails on (``incr`` of text, a full store) is a bad record (``on_error``);
    ``on_error: emit`` sends it on with ``kv: {op, store, key, error}`` instead, so
    a service can answer it.

    Under ``gxo run --check`` a literal ``get``, ``has`` or ``none`` runs for real;
    other ops (a templated one too) are predicted against the store as it is:
    nothing is written, and a workload's later records see its earlier predictions.

    Example:
        - name: count_hits
          stream_inputs: [requests]
          process:
            module: data:kv
            params: { op: incr, store: hits, key: "{{ record.path }}" }
        - name: remember
          process:
            module: data:kv
            params: { op: set, key: last_deploy, value: { version: "{{ version }}" } }
    """

    class Params(RecordErrorParams):
        op: str = raw_template(
            ...,
            description="get | set | delete | incr | has | none (per record: a template over `record`)",
        )
        key: Any = raw_template(None, description="The key (text; numbers are converted)")
        value: Any = raw_template(None, description="set: the value to store (any JSON-like value)")
        default: Any = raw_template(
            None,
            description="get: the value when the key is unknown; incr: the starting number (0)",
        )
        by: Any = raw_template(1, description="incr: the number to add (negative to subtract)")
        store: str = Field(
            "default", min_length=1, max_length=200, description="Name of the store (per run)"
        )
        max_keys: int = Field(
            DEFAULT_MAX_KEYS,
            ge=1,
            le=10_000_000,
            description="Most keys the store may hold: a set/incr of a new key beyond it fails",
        )
        on_error: Literal["fail", "skip", "dead_letter", "emit"] = Field(
            "fail",
            description="Stream mode, a record the op fails on: fail the workload, skip it, dead_letter it, or emit it with kv.error (all but fail count it in bad_records)",
        )
        dead_letter: DeadLetter | None = dead_letter_field()

    consumes = StreamRole.optional
    produces = True
    summary = {
        "op / key / value / found / changed": "one op: what it did (value read, written, removed or counted)",
        "store / size": "the store and how many keys it holds afterwards",
        "records / changed / bad_records": "stream mode: records processed, how many changed the store, bad records",
    }
    path_params = ("dead_letter.path",)
    check_mode = CheckMode.predict

    def check_mode_for(self, params: Any) -> CheckMode:
        # A literal read-only op runs for real; a write (or a templated op) is predicted.
        return CheckMode.safe if params.op in READ_ONLY else CheckMode.predict

    async def perform(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        return await _apply(ctx, params, dry=False)

    async def check(self, ctx: ModuleContext, params: Params) -> dict[str, Any]:
        """What ``perform`` would do, against the store as it is: nothing is written."""
        return await _apply(ctx, params, dry=True)


class _Bad(Exception):
    """A record (or the one op) the store refuses: bad params or a KVError."""


class _Ops:
    """One workload's view of the run's stores; ``dry`` (check mode) writes to an overlay."""

    def __init__(self, ctx: ModuleContext, params: KV.Params, dry: bool) -> None:
        kv = getattr(ctx.run, "kv", None)
        if kv is None:  # a sandboxed child process has no run state to share
            raise ctx.fail(
                "data:kv cannot run sandboxed (security_context): its stores are the run's,"
                " in the engine process"
            )
        self.kv: KVStores = kv
        self.ctx = ctx
        self.store = params.store
        self.max_keys = params.max_keys
        self.dry = dry
        # check mode: key -> predicted value (_MISSING: predicted deleted), and
        # how many keys the predictions add to the store
        self.overlay: dict[str, Any] = {}
        self.added = 0

    def size(self) -> int:
        return self.kv.size(self.store) + self.added

    def _predict(self, key: str, value: Any, found: bool) -> None:
        self.added += (value is not _MISSING) - found
        self.overlay[key] = value

    def _lookup(self, key: str) -> tuple[bool, Any]:
        if key in self.overlay:
            value = self.overlay[key]
            return (False, None) if value is _MISSING else (True, copy_record(value))
        return self.kv.lookup(self.store, key)

    def apply(self, op: str, key: str, value: Any, default: Any, by: Any) -> dict[str, Any]:
        """``{op, store, key, value, found, changed}``; raises _Bad."""
        try:
            if self.dry or op in READ_ONLY:
                found, result, changed = self._read_or_predict(op, key, value, default, by)
            elif op == "set":
                found, previous = self.kv.set(self.store, key, value, self.max_keys)
                changed = not found or previous != value or type(previous) is not type(value)
                result = copy_record(value)
            elif op == "delete":
                found, result = self.kv.delete(self.store, key)
                changed = found
            else:  # incr
                step = _step(by)
                start = 0 if default is None else default
                found, result = self.kv.incr(self.store, key, step, start, self.max_keys)
                changed = True
        except KVError as exc:
            raise _Bad(str(exc)) from None
        return {
            "op": op,
            "store": self.store,
            "key": key,
            "value": result,
            "found": found,
            "changed": changed,
        }

    def _read_or_predict(
        self, op: str, key: str, value: Any, default: Any, by: Any
    ) -> tuple[bool, Any, bool]:
        """``(found, value, changed)`` of a read, or of a write predicted in the overlay."""
        found, current = self._lookup(key)
        if op == "get":
            return found, (current if found else copy_record(default)), False
        if op == "has":
            return found, found, False
        if op == "set":
            self._predict_new(found)
            changed = not found or current != value or type(current) is not type(value)
            self._predict(key, copy_record(value), found)
            return found, copy_record(value), changed
        if op == "delete":
            self._predict(key, _MISSING, found)
            return found, current, found
        step = _step(by)  # incr
        start = 0 if default is None else default
        base = as_number(current if found else start)
        if base is None:
            what = "holds a" if found else "default is a"
            held = current if found else start
            raise KVError(f"incr: key '{key}' {what} {type(held).__name__} that is not a number")
        self._predict_new(found)
        result = base + step
        self._predict(key, result, found)
        return found, result, True

    def _predict_new(self, found: bool) -> None:
        if not found and self.size() >= self.max_keys:
            raise KVError(
                f"store '{self.store}' is full: {self.size()} keys (max_keys: {self.max_keys})"
            )


def _step(by: Any) -> int | float:
    step = as_number(by)
    if step is None:
        raise _Bad(f"by: {type(by).__name__} is not a number")
    return step


def _op(value: Any) -> str:
    op = str(value).strip().lower() if isinstance(value, str) else value
    if op not in OPS:
        shown = (
            value if isinstance(value, str | int | float | bool | None) else type(value).__name__
        )
        raise _Bad(f"op: {shown!r} is not one of {', '.join(OPS)}")
    return op  # type: ignore[no-any-return]


def _key(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise _Bad("key: rendered to nothing" if value is None else "key: must be text, got a bool")
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise _Bad(f"key: must be text, got a {type(value).__name__}")
    if not value:
        raise _Bad("key: rendered to empty text")
    return value


async def _apply(ctx: ModuleContext, params: KV.Params, *, dry: bool) -> dict[str, Any]:
    ops = _Ops(ctx, params, dry)
    if not ctx.has_input:
        return _once(ctx, params, ops)
    op_of = value_builder(ctx, params.op, "op")
    key_of = value_builder(ctx, params.key, "key")
    value_of = value_builder(ctx, params.value, "value")
    default_of = value_builder(ctx, params.default, "default")
    by_of = value_builder(ctx, params.by, "by")
    send = ctx.output.send
    emit_errors = params.on_error == "emit"
    index = processed = changed = emitted_errors = 0
    async with BadRecords(ctx, params) as bad:
        async for batch in ctx.batches():
            for record in batch:
                index += 1
                try:
                    op = _op(op_of(record))
                    if op == "none":
                        out = None
                    else:
                        key = _key(key_of(record))
                        value = value_of(record) if op == "set" else None
                        default = default_of(record) if op in ("get", "incr") else None
                        by = by_of(record) if op == "incr" else None
                        out = ops.apply(op, key, value, default, by)
                except (GxoError, _Bad) as exc:
                    if emit_errors:
                        await send(
                            {**record, "kv": _error(ctx, exc, op_of, key_of, record, params.store)}
                        )
                        emitted_errors += 1
                        ctx.count("errors")
                        continue
                    bad(index, ctx.redact(record), _redacted(ctx, exc))
                    continue
                processed += 1
                changed += bool(out and out["changed"])
                await send({**record, "kv": out})
            await bad.maybe_flush()
    return {
        "records": processed,
        "changed": changed,
        "bad_records": bad.count + emitted_errors,
        "store": params.store,
        "size": ops.size(),
    }


def _once(ctx: ModuleContext, params: KV.Params, ops: _Ops) -> dict[str, Any]:
    try:
        op = _op(ctx.render(params.op, path="op"))
        if op == "none":
            return {"op": "none", "store": params.store, "size": ops.size(), "changed": False}
        key = _key(ctx.render(params.key, path="key"))
        value = ctx.render(params.value, path="value") if op == "set" else None
        default = ctx.render(params.default, path="default") if op in ("get", "incr") else None
        by = ctx.render(params.by, path="by") if op == "incr" else None
        result = ops.apply(op, key, value, default, by)
    except _Bad as exc:
        raise ctx.fail(_redacted(ctx, exc)) from None
    if op in ("set", "delete", "incr") and result["changed"]:
        verb = f"would {op}" if ops.dry else op
        ctx.log(f"{verb} {ctx.run.secrets.redact_str(key)} in store '{params.store}'")
    result["size"] = ops.size()
    return result


def _error(
    ctx: ModuleContext,
    exc: Exception,
    op_of: Callable[[dict[str, Any]], Any],
    key_of: Callable[[dict[str, Any]], Any],
    record: dict[str, Any],
    store: str,
) -> dict[str, Any]:
    """``{op, store, key, error}`` for a record the op failed on (on_error: emit)."""
    out: dict[str, Any] = {"op": None, "store": store, "key": None}
    for name, fn in (("op", op_of), ("key", key_of)):
        try:
            out[name] = fn(record)
        except GxoError:
            pass
    if isinstance(exc, GxoError):
        reason = exc.message
        param_path = getattr(exc, "param_path", None)
        if param_path:
            reason = f"param '{param_path}': {reason}"
    else:
        reason = str(exc)
    out["error"] = ctx.run.secrets.redact_str(reason)
    return out


def _redacted(ctx: ModuleContext, exc: Exception) -> Any:
    if isinstance(exc, GxoError):
        return exc
    return ctx.run.secrets.redact_str(str(exc))
