"""Size caps: one template operation may produce at most MAX_TEMPLATE_SIZE items/characters.

Jinja's sandbox caps range() (MAX_RANGE) but no other allocation: `[0] * 10**9`,
`'%0*d' % (10**9, 1)`, `'x'.ljust(10**9)`, a string doubled by `~` in a loop or
`lipsum(10**6)` would exhaust memory or block the event loop for seconds. Each
check runs before the allocation it guards (engine._Sandbox and its filters).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext

__all__ = ["MAX_TEMPLATE_SIZE", "capped_filter", "capped_lipsum", "sized_output", "too_large"]

MAX_TEMPLATE_SIZE = 10_000_000
MAX_POWER_BITS = 1 << 20
PADDING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs"})
_HUGE_FORMAT_WIDTH = re.compile(r"%[#0\- +]*(?:\d{8,}|\d*\.\d{8,})|\{[^{}]*:[^{}]*\d{8,}[^{}]*\}")
_WEIGHED_ITEMS = 1_000
_FEW_PIECES = 16


def too_large(what: str) -> SecurityError:
    return SecurityError(f"{what} would exceed the template size limit ({MAX_TEMPLATE_SIZE:,})")


# %-conversions: '*' takes the width or precision from the arguments.
_PERCENT_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>.)",
    re.DOTALL,
)


def check_percent_format(fmt: Any, values: Any) -> None:
    """Refuse ``fmt % values`` when a width or precision (literal or ``*``) is huge."""
    if not isinstance(fmt, str) or "%" not in fmt:
        return
    args = values if isinstance(values, tuple) else (values,)
    index = 0
    for spec in _PERCENT_SPEC.finditer(fmt):
        if spec["conv"] == "%":
            continue
        for part in (spec["width"], spec["prec"]):
            if part is None:
                continue
            if part == "*":
                size = args[index] if index < len(args) else None
                index += 1
            else:
                size = int(part)
            if isinstance(size, int) and abs(size) > MAX_TEMPLATE_SIZE:
                raise too_large(f"formatting with width {size}")
        if spec["key"] is None:
            index += 1


_SPEC_NUMBER = re.compile(r"\d+")


def check_format_spec(spec: str) -> None:
    """``str.format`` field spec, after nested fields (``{:>{w}}``) were substituted."""
    for number in _SPEC_NUMBER.findall(spec):
        if len(number) > 7 and int(number) > MAX_TEMPLATE_SIZE:
            raise too_large(f"formatting with {spec!r}")


def check_total(parts: Iterable[Any], what: str, extra: int = 0) -> None:
    """Refuse joining ``parts`` when the result would be too large (before allocating it)."""
    total = extra
    for part in parts:
        total += len(part) if isinstance(part, str) else len(str(part))
        if total > MAX_TEMPLATE_SIZE:
            raise too_large(what)


def checked_concat(join: Callable[[Any], str], parts: tuple[Any, ...]) -> str:
    """``a ~ b ~ ...`` refused over the size cap (repeated ``~`` doubles a string each time).

    Checked after joining, which is cheap (per-record templates use ``~``): the
    operands exist already, so one join allocates at most their sum.
    """
    text = join(parts)
    if len(text) > MAX_TEMPLATE_SIZE:
        raise too_large("concatenating with '~'")
    return text


def sized_output(join: Callable[[Any], str]) -> Callable[[Iterable[Any]], str]:
    """An environment's ``concat`` (template output, ``{% set %}`` blocks) that checks the size.

    A loop printing a large value on each iteration holds only references until
    the final join, which would then allocate all of it at once.
    """

    def concat(pieces: Iterable[Any]) -> str:
        parts = list(pieces)
        if len(parts) > _FEW_PIECES:  # a loop's output: sized before joining
            try:
                total = sum(map(len, parts))  # output pieces are strings: C speed
            except TypeError:
                total = 0
                check_total(parts, "the template's output")
            if total > MAX_TEMPLATE_SIZE:
                raise too_large("the template's output")
            return join(parts)
        # A few pieces of values that exist already: joining them first is cheaper
        # (the common per-record case) and allocates at most a few times the largest.
        text = join(parts)
        if len(text) > MAX_TEMPLATE_SIZE:
            raise too_large("the template's output")
        return text

    return concat


def check_json_indent(value: Any, indent: Any) -> None:
    """``tojson(indent=N)``: every line repeats the indent once per nesting level."""
    width = len(indent) if isinstance(indent, str) else indent
    if not isinstance(width, int) or isinstance(width, bool) or width <= 0:
        return
    size = 0
    stack = [(value, 1)]
    while stack:  # iterative: the data may nest deeply
        item, depth = stack.pop()
        size += width * depth + 1
        if size > MAX_TEMPLATE_SIZE:
            raise too_large(f"JSON with indent {width}")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)


def _item_weight(item: Any) -> int:
    return len(item) if isinstance(item, str | bytes | list | tuple | dict) else 1


def _weight(seq: list[Any] | tuple[Any, ...], n: int) -> int:
    # The elements' own sizes count only for short sequences repeated (`[s] * 1000`):
    # summing them over millions of items would cost more than the operation.
    if n > 1 and len(seq) <= _WEIGHED_ITEMS:
        return sum(map(_item_weight, seq))
    return len(seq)


def check_sequence_growth(left: Any, right: Any, op: str, n: int = 1) -> None:
    """``left + right`` or ``seq * n`` on strings/lists: refuse a result over the cap.

    For a short list repeated, the elements' own sizes count too: ``[s] * 1000``
    of a 10 MB string is small as a list but 10 GB once joined or printed.
    """
    if isinstance(left, str) and isinstance(right, str):
        size = len(left) + len(right)
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        size = _weight(left, n) + _weight(right, n)
    else:
        return
    if size * n > MAX_TEMPLATE_SIZE:
        raise too_large(f"{op} of a {type(left).__name__}")


def check_size_args(name: str, args: Iterable[Any]) -> None:
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and arg > MAX_TEMPLATE_SIZE:
            raise too_large(f"{name}({arg})")


def check_format(fmt: Any) -> None:
    if isinstance(fmt, str) and _HUGE_FORMAT_WIDTH.search(fmt):
        raise too_large(f"formatting with {fmt!r}")


def check_replace(text: Any, old: Any, new: Any, count: Any = -1, *_: Any) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        if len(text) + hits * (len(new) - len(old)) > MAX_TEMPLATE_SIZE:
            raise too_large("replace()")


def capped_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A size-producing builtin filter (center, indent, format) that checks its arguments."""

    @functools.wraps(fn)
    def capped(*args: Any, **kwargs: Any) -> Any:
        if name == "format":  # the arguments are values to format, not sizes
            check_format(args[0] if args else None)
            check_percent_format(args[0] if args else None, kwargs or tuple(args[1:]))
        elif name == "join":  # join(eval_ctx, value, d='', attribute=None)
            if (
                len(args) >= 2
                and kwargs.get("attribute", args[3] if len(args) > 3 else None) is None
            ):
                items = list(args[1])
                sep = kwargs.get("d", args[2] if len(args) > 2 else "")
                check_total(items, "joining strings", len(str(sep)) * max(0, len(items) - 1))
                args = (args[0], items, *args[2:])
        elif name == "replace":  # replace(eval_ctx, s, old, new, count=None)
            if len(args) >= 4:
                check_replace(str(args[1]), str(args[2]), str(args[3]), *args[4:], *kwargs.values())
        elif name in _SHAPED_FILTERS:
            _check_shaped_filter(name, _user_args(args), kwargs)
        else:
            check_size_args(name, (*args[1:], *kwargs.values()))
        return fn(*args, **kwargs)

    return capped


_SHAPED_FILTERS = frozenset({"indent", "slice", "batch", "tojson"})
_MAX_SLICES = 100_000  # as many as range() may produce (the sandbox's MAX_RANGE)


def _user_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # Some builtin filters receive jinja's eval context first (pass_eval_context).
    return args[1:] if args and isinstance(args[0], EvalContext) else args


def _check_shaped_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Filters whose output size is a product of their arguments (a width per line...)."""

    def arg(index: int, key: str, default: Any = None) -> Any:
        return kwargs.get(key, args[index] if len(args) > index else default)

    if name == "indent":  # indent(s, width=4, first=False, blank=False): a width per line
        text, width = str(arg(0, "s", "")), arg(1, "width", 4)
        size = len(width) if isinstance(width, str) else width
        if isinstance(size, int) and len(text) + size * (text.count("\n") + 1) > MAX_TEMPLATE_SIZE:
            raise too_large(f"indent({size})")
    elif name == "slice":  # slice(value, slices, fill_with=None): one list per slice
        slices = arg(1, "slices")
        if isinstance(slices, int) and slices > _MAX_SLICES:
            raise too_large(f"slice({slices})")
    elif name == "batch":  # batch(value, linecount, fill_with=None): fills the last batch
        count = arg(1, "linecount")
        if arg(2, "fill_with") is not None and isinstance(count, int):
            check_size_args("batch", (count,))
    elif name == "tojson":  # tojson(value, indent=None): the indent repeats on every line
        check_json_indent(arg(0, "value"), arg(1, "indent"))


def capped_lipsum(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:
        if n * max > MAX_TEMPLATE_SIZE // 8:  # about 8 characters per word
            raise too_large(f"lipsum({n})")
        return fn(n, html, min, max)

    return lipsum
