"""Helpers shared by the data-plane modules: the bad-record policy, dead letters,
dotted field access and JSON-friendly values.

A *bad record* is one a module cannot process: a line that is not JSON, a
template that fails on this record, a value that is not a number. What happens
next is the workload's ``on_error`` policy:

``fail`` (default)
    the workload fails with a message naming the record (its position in the
    input, 1-based, and a preview of it).
``skip``
    the record is dropped and counted (``counters.skipped`` in the report).
``dead_letter``
    the record is dropped, counted (``counters.dead_lettered``) and appended as
    one JSON line ``{"workload", "index", "error", "record"}`` to
    ``dead_letter.path`` (default ``dead_letters/<workload>.jsonl`` in the
    workspace). Secrets are redacted in dead letters as in logs.

The first few bad records are also logged as warnings.
"""

from __future__ import annotations

import base64
import datetime as _dt
import decimal
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from gxo.errors import GxoError
from gxo.modules.base import ModuleParams
from gxo.template.limits import RenderStopped

if TYPE_CHECKING:
    from gxo.engine.context import ModuleContext

__all__ = [
    "MISSING",
    "BadRecords",
    "DeadLetter",
    "OnError",
    "RecordErrorParams",
    "dead_letter_field",
    "field_getter",
    "hashable",
    "on_error_field",
    "preview",
    "to_jsonable",
]

MISSING: Any = object()
LOGGED_BAD_RECORDS = 5  # bad records logged one by one; the rest are only counted
_FLUSH_EVERY = 200  # dead letters buffered before a write


class DeadLetter(ModuleParams):
    path: str = Field(
        ...,
        min_length=1,
        description="JSON-lines file (relative to the workspace) that bad records are appended to",
    )


OnError = Literal["fail", "skip", "dead_letter"]


def on_error_field() -> Any:
    """The ``on_error`` param; declare it last in a :class:`RecordErrorParams` model."""
    return Field(
        "fail",
        description="What a bad record does: fail the workload, skip it (counted), or dead_letter it (counted and written to dead_letter.path)",
    )


def dead_letter_field() -> Any:
    """The ``dead_letter`` param; declare it last in a :class:`RecordErrorParams` model."""
    return Field(
        None,
        description="Where dead letters go (on_error: dead_letter); default dead_letters/<workload>.jsonl",
    )


class RecordErrorParams(ModuleParams):
    """Base of the params of modules applying the bad-record policy.

    Subclasses declare, after their own fields (so docs list those first)::

        on_error: OnError = on_error_field()
        dead_letter: DeadLetter | None = dead_letter_field()
    """

    @model_validator(mode="after")
    def _dead_letter_needs_policy(self) -> RecordErrorParams:
        on_error = getattr(self, "on_error", "fail")
        if getattr(self, "dead_letter", None) is not None and on_error != "dead_letter":
            raise ValueError(
                f"dead_letter is set but on_error is '{on_error}' (set on_error: dead_letter)"
            )
        return self


class BadRecords:
    """Applies a workload's ``on_error`` policy. Use as ``async with``: dead letters are flushed on exit."""

    def __init__(self, ctx: ModuleContext, params: RecordErrorParams) -> None:
        self.ctx = ctx
        self.policy: str = getattr(params, "on_error", "fail")
        self.count = 0
        self._pending: list[str] = []
        self.path: Path | None = None
        if self.policy == "dead_letter":
            dead_letter: DeadLetter | None = getattr(params, "dead_letter", None)
            where = dead_letter.path if dead_letter else f"dead_letters/{ctx.workload}.jsonl"
            self.path = ctx.resolve_path(where, param="dead_letter.path")

    async def __aenter__(self) -> BadRecords:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.flush()
        if self.count > LOGGED_BAD_RECORDS:
            verb = "dead-lettered" if self.policy == "dead_letter" else "skipped"
            self.ctx.log(f"{self.count} bad records {verb} in total", level="warning")

    def __call__(
        self, index: int, record: Any, error: BaseException | str, *, unit: str = "record #"
    ) -> None:
        """Input ``record`` number ``index`` (1-based) could not be processed. Raises under ``fail``.

        ``unit`` names what ``index`` counts in messages: ``record #`` or ``line `` ...
        """
        # The workload's timeout or Ctrl-C stopped a render: not this record's fault.
        if isinstance(error, RenderStopped):
            raise error
        where = f"{unit}{index}"
        reason = error.message if isinstance(error, GxoError) else str(error)
        param_path = getattr(error, "param_path", None) if isinstance(error, GxoError) else None
        if param_path:
            reason = f"param '{param_path}': {reason}"
        if self.policy == "fail":
            raise self.ctx.fail(
                f"bad {where} {preview(record)}: {reason} (on_error: skip or dead_letter would drop it)"
            )
        self.count += 1
        if self.policy == "skip":
            self.ctx.count("skipped")
            verb = "skipped"
        else:
            self.ctx.count("dead_lettered")
            verb = "dead-lettered"
            entry = {
                "workload": self.ctx.workload,
                "index": index,
                "error": reason,
                "record": record,
            }
            self._pending.append(
                json.dumps(self.ctx.redact(entry), default=str, ensure_ascii=False)
            )
        if self.count <= LOGGED_BAD_RECORDS:
            self.ctx.log(f"{verb} bad {where}: {reason}", level="warning")
            if self.count == LOGGED_BAD_RECORDS:
                self.ctx.log("further bad records are counted but not logged", level="warning")

    async def maybe_flush(self) -> None:
        if len(self._pending) >= _FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        if not self._pending or self.path is None:
            return
        lines, self._pending = self._pending, []
        if self.ctx.check:  # gxo run --check: counted and logged, never written
            self.ctx.log(f"check mode: {len(lines)} dead letters not written to {self.path}")
            return
        try:
            await self.ctx.to_thread(_append_lines, self.path, lines)
        except OSError as exc:
            raise self.ctx.fail(
                f"cannot write dead letters to {self.path}: {exc.strerror or exc}"
            ) from None


def _append_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def preview(record: Any, limit: int = 200) -> str:
    """A short one-line rendering of a record for error messages."""
    try:
        text = json.dumps(record, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(record)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def field_getter(path: str) -> Callable[[Any], Any]:
    """A function reading dotted ``path`` (``user.id``, ``items.0.name``) from a record; MISSING if absent."""
    parts = path.split(".")
    if len(parts) == 1:
        key = parts[0]

        def get_one(record: Any) -> Any:
            return record.get(key, MISSING) if isinstance(record, dict) else MISSING

        return get_one

    def get_path(record: Any) -> Any:
        value = record
        for part in parts:
            if isinstance(value, dict):
                value = value.get(part, MISSING)
            elif isinstance(value, list) and part.lstrip("-").isdigit():
                index = int(part)
                value = value[index] if -len(value) <= index < len(value) else MISSING
            else:
                return MISSING
            if value is MISSING:
                return MISSING
        return value

    return get_path


def hashable(value: Any) -> Any:
    """A hashable stand-in for a JSON value (group and join keys)."""
    if isinstance(value, dict):
        return ("__dict__", tuple(sorted((k, hashable(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("__list__", tuple(hashable(v) for v in value))
    return value


_PLAIN = (str, int, float, bool, type(None))


def to_jsonable(value: Any) -> Any:
    """``value`` with non-JSON types converted: Decimal → int/float, dates → ISO 8601,
    bytes → base64, UUID → str, sets/tuples → lists; other objects → str."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return str(value)
