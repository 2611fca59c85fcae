"""Limits on the work one template render may do: operations, time, Ctrl-C, regex time.

A render runs synchronously on the event loop, so while a CPU-bound template
computes, ``asyncio.timeout`` cannot fire and the loop never sees SIGINT. The
sandbox therefore counts its own work (:func:`counted` wraps every ``{% for %}``
iterable, :class:`BudgetMixin` counts calls and filter/test dispatch) and, every
1,024 operations, checks three things: the operation budget of this render
(:data:`MAX_OPERATIONS`), the deadline of the running workload (:func:`deadline`,
set by the runner from ``timeout:``) and whether a signal asked the run to stop
(:func:`interrupt_renders`, installed by ``gxo run``). Regular expressions run in
C, where no counter reaches: they get a time limit (:func:`run_regex`).
"""

from __future__ import annotations

import functools
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

from gxo.errors import TemplateError
from gxo.template.sizes import check_format_spec, checked_concat

__all__ = [
    "MAX_EXPRESSION_DEPTH",
    "MAX_OPERATIONS",
    "REGEX_TIMEOUT",
    "RenderStopped",
    "TemplateLimitError",
    "clear_interrupt",
    "counted",
    "deadline",
    "expression_too_deep",
    "interrupt_renders",
    "interrupted",
    "run_regex",
]

# Loop iterations plus weighted calls in one render. Python renders one to a few million
# of them per second, so this stops a runaway template within seconds, while a
# per-record template (a handful of operations, reset per record) never nears it.
MAX_OPERATIONS = 5_000_000
# Wall-clock limit of one regular expression (the `regex` package may overrun it
# by a factor of about two: it checks the clock between backtracking steps).
REGEX_TIMEOUT = 1.0
# A macro call or a sandboxed method call costs some microseconds, a loop step
# a fraction of one: a call counts as this many operations.
CALL_WEIGHT = 8
_CHECK_MASK = 0x3FF  # check time and signals every 1,024 operations
# Nesting of one template's syntax tree (`a|f|f|...`, `x.a.a...`, `not not ...`,
# `1 + 1 + ...` each nest one level per term). Python's parser refuses the code
# Jinja generates beyond about 200 levels, and Jinja's compiler slows down
# steeply well before that; 100 levels is far beyond any hand-written template.
MAX_EXPRESSION_DEPTH = 100


class TemplateLimitError(TemplateError):
    """A render exceeded its budget, its workload's deadline, or was interrupted."""


class RenderStopped(TemplateLimitError):
    """Stopped from outside (the workload's deadline, a signal): not the fault of the
    record being rendered, so per-record ``on_error`` policies must not swallow it."""


class _Budget:
    # One count for the process, not per thread: renders run on the event loop,
    # and a threading.local costs three times as much per operation. Renders in
    # worker threads (none today) would share, and reset, this one count.
    __slots__ = ("limit", "remaining")

    def __init__(self) -> None:
        self.limit = MAX_OPERATIONS  # what each render starts with
        self.remaining = MAX_OPERATIONS


class _RegexState(threading.local):
    # Per thread: the signal handler (main thread) may only raise into a regex
    # that runs in the main thread.
    active: bool = False


BUDGET = _Budget()
_REGEX = _RegexState()
_interrupted = False  # process-wide: set by the signal handler of `gxo run`
_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("gxo_render_deadline", default=None)


def checkpoint() -> None:
    """Raise if this render is over budget, past its deadline, or interrupted."""
    if BUDGET.remaining <= 0:
        raise TemplateLimitError(
            f"template exceeded its budget of {BUDGET.limit:,} operations "
            f"(loop iterations; a call counts {CALL_WEIGHT})"
        )
    check_stopped()


def check_stopped() -> None:
    """Raise if the workload's deadline passed or a signal asked the run to stop."""
    if _interrupted:
        raise RenderStopped("template rendering interrupted by a signal")
    limit = _DEADLINE.get()
    if limit is not None and time.monotonic() > limit[0]:
        raise _timed_out(limit[1])


def _timed_out(seconds: float) -> RenderStopped:
    return RenderStopped(
        f"template rendering timed out after {seconds:g}s (the workload's timeout)"
    )


def tick() -> None:
    """Count one call: CALL_WEIGHT operations (a call costs about that many loop steps)."""
    budget = BUDGET
    before = budget.remaining
    budget.remaining = after = before - CALL_WEIGHT
    if (before ^ after) >> 10 or after <= 0:  # crossed a multiple of 1,024
        checkpoint()


def counted(iterable: Iterable[Any]) -> Iterable[Any]:
    """``iterable``, counting one operation per item (every ``{% for %}`` goes through it).

    A sized iterable is counted as a whole when the loop starts, so the loop
    itself runs at full speed; an iterator is counted item by item.
    """
    try:
        n = len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return _counting(iterable)
    budget = BUDGET
    before = budget.remaining
    budget.remaining = after = before - n
    if (before ^ after) >> 10 or after <= 0:  # crossed a multiple of 1,024
        checkpoint()
    return iterable


def _counting(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = BUDGET
    for item in iterable:
        budget.remaining -= 1
        if not budget.remaining & _CHECK_MASK:
            checkpoint()
        yield item


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Renders in this context (task) fail once ``seconds`` have passed (None: no limit)."""
    if seconds is None:
        yield
        return
    token = _DEADLINE.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def interrupt_renders(signum: int | None = None, frame: Any = None) -> None:
    """Make every running render fail at its next check (a Python-level signal handler).

    asyncio's own signal handling runs on the loop, which a CPU-bound render
    blocks; a Python-level handler runs between bytecodes of the render itself.
    The loop still learns of the signal through its wakeup fd and cancels the run.
    """
    global _interrupted
    _interrupted = True
    if _REGEX.active:  # a regex in C: only an exception raised here stops it
        _REGEX.active = False
        raise RenderStopped("template rendering interrupted by a signal")


def interrupted() -> bool:
    """Whether a signal stopped renders (and the run has not cleared it yet)."""
    return _interrupted


def clear_interrupt() -> None:
    global _interrupted
    _interrupted = False


def run_regex(fn: Callable[..., Any], pattern: str, *args: Any, **kwargs: Any) -> Any:
    """``fn(pattern, *args, timeout=..., **kwargs)`` for a ``regex`` module function.

    The limit is :data:`REGEX_TIMEOUT`, or less when the workload's deadline is nearer.
    """
    check_stopped()
    timeout = REGEX_TIMEOUT
    limit = _DEADLINE.get()
    if limit is not None:
        timeout = max(0.001, min(timeout, limit[0] - time.monotonic()))
    state = _REGEX
    state.active = True
    try:
        return fn(pattern, *args, timeout=timeout, **kwargs)
    except TimeoutError:
        if limit is not None and time.monotonic() >= limit[0] - 0.01:
            raise _timed_out(limit[1]) from None  # the workload's deadline cut it short
        raise TemplateLimitError(
            f"regular expression {_short(pattern)} ran longer than {REGEX_TIMEOUT:g}s, "
            "the limit per regex (catastrophic backtracking?)"
        ) from None
    finally:
        state.active = False


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


def expression_too_deep(tree: nodes.Node) -> bool:
    """Whether ``tree`` nests deeper than :data:`MAX_EXPRESSION_DEPTH` (checked iteratively)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())
    return False


# -- the sandbox hooks ---------------------------------------------------------------


def _is_counted(node: nodes.Node) -> bool:
    return (
        isinstance(node, nodes.Call)
        and isinstance(node.node, nodes.EnvironmentAttribute)
        and node.node.name == "gxo_counted"
    )


class BudgetCodeGenerator(CodeGenerator):
    """Routes every ``{% for %}`` iterable through :func:`counted`, every ``~`` through a cap."""

    def visit_Call(self, node: nodes.Call, frame: Any, forward_caller: bool = False) -> None:
        if _is_counted(node):  # a direct call: the sandbox's call() costs microseconds per loop
            self.write("environment.gxo_counted(")
            self.visit(node.args[0], frame)
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Template(self, node: nodes.Template, frame: Any = None) -> None:
        for loop in node.find_all(nodes.For):
            if not _is_counted(loop.iter):  # idempotent: parse trees are cached and shared
                loop.iter = nodes.Call(
                    nodes.EnvironmentAttribute("gxo_counted"),
                    [loop.iter],
                    [],
                    None,
                    None,
                    lineno=loop.iter.lineno,
                )
        super().visit_Template(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.gxo_concat(")
        if frame.eval_ctx.volatile:
            self.write("(markup_join if context.eval_ctx.volatile else str_join)")
        else:
            self.write("markup_join" if frame.eval_ctx.autoescape else "str_join")
        self.write(", (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _CheckedFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class _CheckedEscapeFormatter(SandboxedEscapeFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class BudgetMixin:
    """Sandbox hooks of the render budget and of the size caps (mixed into engine._Sandbox).

    Calls, filters and tests dispatched by name (``map``/``select`` per item)
    count as operations; loops count per item through ``gxo_counted``.
    """

    code_generator_class: type[CodeGenerator] = BudgetCodeGenerator
    gxo_counted = staticmethod(counted)
    gxo_concat = staticmethod(checked_concat)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        tick()
        return super().call(__context, __obj, *args, **kwargs)  # type: ignore[misc]

    def call_filter(self, *args: Any, **kwargs: Any) -> Any:
        tick()
        return super().call_filter(*args, **kwargs)  # type: ignore[misc]

    def call_test(self, *args: Any, **kwargs: Any) -> Any:
        tick()
        return super().call_test(*args, **kwargs)  # type: ignore[misc]

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's own wrapper, with a formatter that checks each field's spec once
        # nested fields are substituted: '{:>{w}}'.format(1, w=999999999).
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(f_self, Markup):
            formatter = _CheckedEscapeFormatter(self, escape=f_self.escape)  # type: ignore[arg-type]
        else:
            formatter = _CheckedFormatter(self)  # type: ignore[arg-type]
        vformat = formatter.vformat

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(vformat(f_self, args, kwargs))

        return functools.update_wrapper(wrapper, value)
