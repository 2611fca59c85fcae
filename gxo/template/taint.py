"""Taint propagation: what a template computes from a secret is a secret too.

``secret('NAME')`` returns a :class:`~gxo.template.secrets.SecretStr`. Whenever a
sandboxed operation (a filter, a method or function call, ``%``/``*``, slicing,
indexing, iteration) receives a tainted argument and produces text, the result
is registered in the run's :class:`~gxo.template.secrets.SecretRegistry` as a
*derived* secret and returned as a ``SecretStr`` itself, so ``secret('T') | upper
| b64encode`` is redacted wherever it appears, for the rest of the run.

A value is tainted if it is a ``SecretStr`` or if a registered secret form occurs
in it: concatenation (``'Bearer ' ~ tok``) produces a plain ``str``, and the
registry still recognises it. Fragments shorter than ``MIN_DERIVED`` (one
character of ``tok | list``) are not registered, or every such letter would be
masked everywhere; they keep the ``SecretStr`` mark, so the objects themselves
are still redacted whole, and a template output made of consecutive tainted
pieces (``{% for c in tok %}{{ c | upper }}{% endfor %}``) is registered as one
value by :func:`concat`.

The active registry travels in a context variable set by the template engine
for the duration of one render: filters are process-wide, registries per run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any

from gxo.template.secrets import SecretRegistry, SecretStr

__all__ = ["ACTIVE", "concat", "derived", "is_tainted", "taint_filter", "taint_result"]

ACTIVE: ContextVar[SecretRegistry | None] = ContextVar("gxo_secret_registry", default=None)


def derived(value: Any) -> Any:
    """Mark ``value`` (text) as derived from a secret and register it with the active run."""
    if isinstance(value, SecretStr):
        return value
    if isinstance(value, str):
        registry = ACTIVE.get()
        if registry is not None:
            registry.add_derived(value)
        return SecretStr(value)
    if isinstance(value, bytes):
        registry = ACTIVE.get()
        if registry is not None:
            registry.add_derived(value.decode("utf-8", "replace"))
        return value
    return value


def is_tainted(value: Any, registry: SecretRegistry | None) -> bool:
    if isinstance(value, SecretStr):
        return True
    if isinstance(value, str):
        return bool(registry) and registry.contains(value)  # type: ignore[union-attr]
    if isinstance(value, list | tuple):  # one level: `chars | join`, `[tok, x] | join`
        return any(is_tainted(v, registry) for v in value if isinstance(v, str))
    return False


def any_tainted(values: Iterable[Any]) -> bool:
    registry = ACTIVE.get()
    if not registry:  # no secret seen in this run: nothing can be tainted (the fast path)
        return False
    return any(is_tainted(v, registry) for v in values)


def taint_result(result: Any) -> Any:
    """``result`` marked and registered: text, a list/tuple of texts, or an iterator of them."""
    if isinstance(result, str | bytes):
        return derived(result)
    if isinstance(result, list):
        return [derived(v) for v in result]
    if isinstance(result, tuple):
        return tuple(derived(v) for v in result)
    if isinstance(result, Iterator):
        return (derived(v) for v in result)
    return result


_TEXTUAL = (str, bytes, list, tuple)


def _tainted_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """any_tainted, inlined for the hot path (a filter call in a per-record template)."""
    registry = ACTIVE.get()
    if registry is None or not registry._values:
        return False
    for arg in (*args, *kwargs.values()) if kwargs else args:
        cls = arg.__class__
        if cls is SecretStr:
            return True
        if cls is str:
            if registry.contains(arg):
                return True
        elif isinstance(arg, list | tuple | str) and is_tainted(arg, registry):
            return True
    return False


def taint_filter(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` (a Jinja filter) whose text results are tainted when an argument was.

    ``functools.wraps`` copies ``jinja_pass_arg``, so pass_context/pass_environment
    filters still receive their first argument.
    """

    @functools.wraps(fn)
    def tainting(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if (isinstance(result, _TEXTUAL) or hasattr(result, "__next__")) and _tainted_args(
            args, kwargs
        ):
            return taint_result(result)
        return result

    return tainting


def taint_call(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Any:
    """The result of a sandboxed call (``tok.split(',')``, ``'{}'.format(tok)``), tainted if due."""
    if isinstance(result, str | bytes | list | tuple | Iterator) and any_tainted(
        (owner, *args, *kwargs.values())
    ):
        return taint_result(result)
    return result


def concat(pieces: Iterable[Any]) -> str:
    """``''.join`` for template output that registers runs of consecutive tainted pieces."""
    parts = pieces if isinstance(pieces, list) else list(pieces)
    registry = ACTIVE.get()
    if registry is not None and registry._values and len(parts) > 1:
        start = -1
        for i, part in enumerate(parts):
            if part.__class__ is SecretStr:
                if start < 0:
                    start = i
            elif start >= 0:
                if i - start > 1:
                    registry.add_derived("".join(parts[start:i]))
                start = -1
        if start >= 0 and len(parts) - start > 1:
            registry.add_derived("".join(parts[start:]))
    return "".join(parts)


class TaintingSandbox:
    """Mixin for the sandboxed environment: calls, ``%``/``*`` and output concatenation taint."""

    # Template output and {% set %} blocks are joined through environment.concat.
    concat = staticmethod(concat)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        result = super().call(__context, __obj, *args, **kwargs)  # type: ignore[misc]
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        return taint_call(owner, args, kwargs, result)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        result = super().call_binop(context, operator, left, right)  # type: ignore[misc]
        if isinstance(result, str) and any_tainted((left, right)):
            return derived(result)
        return result


def wrap_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """Make every filter of an environment taint-preserving (in place)."""
    for name, fn in list(filters.items()):
        if not getattr(fn, "_gxo_tainting", False):
            wrapped = taint_filter(fn)
            wrapped._gxo_tainting = True  # type: ignore[attr-defined]
            filters[name] = wrapped
