"""The template engine: sandboxed Jinja2, StrictUndefined, native single expressions.

A string that is exactly one ``{{ expression }}`` renders to the expression's
native value (list, dict, int, bool, ...); any other string renders to a string.
Compiled templates are cached per engine, so per-record rendering in the data
plane compiles each distinct template once.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gxo.errors import GxoError, SecretError, TemplateError, UndefinedNameError
from gxo.template.filters import FILTERS, GLOBALS, TESTS, is_truthy
from gxo.template.limits import (
    BUDGET,
    MAX_EXPRESSION_DEPTH,
    BudgetMixin,
    TemplateLimitError,
    expression_too_deep,
)
from gxo.template.secrets import SecretRegistry
from gxo.template.sizes import (
    MAX_POWER_BITS,
    MAX_TEMPLATE_SIZE,
    PADDING_METHODS,
    capped_filter,
    capped_lipsum,
    check_format,
    check_percent_format,
    check_replace,
    check_sequence_growth,
    check_size_args,
    check_total,
    sized_output,
    too_large,
)
from gxo.template.taint import ACTIVE as _ACTIVE_SECRETS
from gxo.template.taint import TaintingSandbox, wrap_filters

__all__ = ["TemplateEngine", "holds_template", "is_template", "iter_template_strings"]

_MARKERS = ("{{", "{%", "{#")
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_MAX_CACHE = 4096


def is_template(value: Any) -> bool:
    # Spelled out, not any() over _MARKERS: the loader asks this of every string.
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


def _missing_name(message: str) -> str | None:
    m = _UNDEFINED_NAME.search(message) or _NO_ATTRIBUTE.search(message)
    return m.group(1) if m else None


class _Compiled:
    """One compiled template: a native expression or a string template."""

    __slots__ = ("_tainting", "code", "native", "source", "template", "uses_secret")

    def __init__(self, template: Template, native: bool, source: str, code: str = "") -> None:
        self.template = template
        self.native = native
        self.source = source
        self.code = code or source  # what was compiled (native: the `{% set result %}` form)
        self.uses_secret = "secret" in source
        self._tainting: Template | None = None

    def tainting(self) -> Template:
        """The same template compiled in the taint-propagating sandbox (on first use)."""
        if self._tainting is None:
            self._tainting = _TAINT_ENV.from_string(_parse(self.code))
        return self._tainting


def _no_secret_outside_a_run(name: str) -> str:
    raise SecretError("secret() is only available while a playbook runs")


_DICT_ATTRIBUTES = frozenset(dir(dict))
_NUMBERS = frozenset({int, float})


class _Sandbox(BudgetMixin, ImmutableSandboxedEnvironment):
    """The immutable sandbox plus limits on what one operation may allocate.

    BudgetMixin (gxo.template.limits) counts loop iterations and calls, so a
    CPU-bound template stops at its budget, its workload's deadline or Ctrl-C.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `record.name` on a plain dict: Jinja tries the attribute first and falls
        # back to the key after an AttributeError, which costs ~1 µs per access in
        # per-record templates. Same outcome, decided without the exception.
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and type(left) in _NUMBERS and type(right) in _NUMBERS:
            return (
                left * right
            )  # arithmetic allocates nothing big: skip the checks (hot in per-record templates)
        if operator == "+":
            if type(left) in _NUMBERS and type(right) in _NUMBERS:
                return left + right  # as for '*': the hot path stays cheap
            # `ns.s = ns.s + ns.s` in a loop doubles a string or list per iteration
            check_sequence_growth(left, right, "'+'")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS:
                raise too_large(f"{left} ** {right}")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > MAX_TEMPLATE_SIZE
                ):
                    raise too_large(f"repeating a {type(seq).__name__} {n} times")
                if isinstance(seq, list | tuple) and isinstance(n, int) and n > 1:
                    check_sequence_growth(seq, (), f"repeating {n} times", n)
        elif operator == "%":
            check_format(left)
            check_percent_format(left, right)  # '%0*d' % (999999999, 1)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        # 'x'.ljust(n) and friends, and str.format (which the sandbox hands out wrapped)
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in PADDING_METHODS:
                check_size_args(name, (*args, *kwargs.values()))
            elif name in ("format", "format_map"):
                check_format(owner)
            elif name == "join" and args:
                items = list(args[0])  # an iterator is consumed by the check: pass the list on
                check_total(items, "joining strings", len(owner) * max(0, len(items) - 1))
                args = (items, *args[1:])
            elif name == "replace" and len(args) >= 2:
                check_replace(owner, *args)
        return super().call(__context, __obj, *args, **kwargs)


# One sandboxed environment and one compile cache for the whole process: a
# template compiles once however many runs, loop iterations or records use it.
# Immutable sandbox: a template cannot mutate registered state (list.append, ...).
# optimized=False: Jinja's constant folder re-visits every subtree at every level,
# so a chain of 150 filters took seconds to compile (cubic); rendering is unaffected.
_ENV = _Sandbox(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, optimized=False
)
for _name in ("center", "indent", "format", "join", "replace", "slice", "batch", "tojson"):
    _ENV.filters[_name] = capped_filter(_name, _ENV.filters[_name])
_ENV.filters.update(FILTERS)
_ENV.concat = sized_output(_ENV.concat)  # type: ignore[method-assign]
_ENV.tests.update(TESTS)
_ENV.globals["lipsum"] = capped_lipsum(cast(Callable[..., Any], _ENV.globals["lipsum"]))
_ENV.globals["secret"] = _no_secret_outside_a_run
_ENV.globals.update(GLOBALS)  # now(), and the status functions of 'when'
_ANALYSIS_ENV = _ENV  # the legacy migration validates rewritten templates with it
_COMPILED: dict[str, _Compiled] = {}


class _TaintSandbox(TaintingSandbox, _Sandbox):
    """The sandbox whose operations propagate secret taint (gxo.template.taint).

    A second environment rather than hooks in the first, so that rendering in a
    run without secrets pays nothing for them: a template runs here only when its
    engine has seen a secret or its source calls ``secret``.
    """


_TAINT_ENV = _TaintSandbox(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True, optimized=False
)
_TAINT_ENV.concat = sized_output(_TAINT_ENV.concat)  # type: ignore[method-assign,assignment]
_TAINT_ENV.filters = dict(_ENV.filters)
wrap_filters(_TAINT_ENV.filters)  # what a filter computes from a secret stays secret
_TAINT_ENV.tests = _ENV.tests
_TAINT_ENV.globals = _ENV.globals
_COMPILE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=_MAX_CACHE)
def _parse(source: str) -> nodes.Template:
    tree = _ENV.parse(source)
    if expression_too_deep(tree):
        # Refused before compiling: deeper trees fail in Python's parser (or recurse
        # out in Jinja's visitors) after a long compile.
        raise TemplateError(
            f"template nests deeper than {MAX_EXPRESSION_DEPTH} levels (split the expression "
            f"into several 'set' steps or vars) in {_excerpt(source)}",
            template=source,
        )
    return tree


def _excerpt(source: str, limit: int = 120) -> str:
    return repr(source if len(source) <= limit else source[:limit] + "…")


class TemplateEngine:
    """Renders GXO templates with one run's secrets (``secret()`` reads and records them).

    Engines share the compiled templates; what differs per engine is the
    ``secret`` global, supplied through the render context, never the cache.
    """

    def __init__(self, secrets: SecretRegistry | None = None) -> None:
        self.secrets = secrets if secrets is not None else SecretRegistry()
        self.env = _ENV
        self._globals = {**_ENV.globals, "secret": self.secrets.lookup}

    # -- compilation ---------------------------------------------------------------

    def compile(self, source: str) -> _Compiled:
        compiled = _COMPILED.get(source)
        if compiled is None:
            compiled = self._compile(source)
            with _COMPILE_LOCK:
                if len(_COMPILED) >= _MAX_CACHE:
                    _COMPILED.clear()
                _COMPILED[source] = compiled
        return compiled

    def _compile(self, source: str) -> _Compiled:
        try:
            tree = _parse(source)
            inner = _single_expression(source, tree)
            if inner is not None:
                # The same construction as Environment.compile_expression.
                code = "{% set result = " + inner + " %}"
                return _Compiled(self.env.from_string(_parse(code)), True, source, code)
            return _Compiled(self.env.from_string(tree), False, source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template syntax error: {exc.message} in {source!r}", template=source
            ) from None
        except (RecursionError, SyntaxError, MemoryError):
            # Python refuses the generated code: too many nested blocks or parentheses.
            raise TemplateError(
                f"template nesting too deep in {_excerpt(source)}", template=source
            ) from None

    def compile_bare(self, expression: str) -> _Compiled:
        """Compile a condition that may be braced (``{{ x > 1 }}``) or bare (``x > 1``)."""
        text = expression.strip()
        if is_template(text):
            return self.compile(text)
        return self.compile("{{ " + text + " }}")

    # -- rendering -----------------------------------------------------------------

    def render(
        self,
        value: Any,
        context: Mapping[str, Any],
        *,
        path: str = "",
        workload: str | None = None,
        skip: Callable[[str], bool] | None = None,
    ) -> Any:
        """Render every template string inside ``value`` (dicts and lists recursively).

        ``skip(path)`` returns True for paths that must stay raw (per-record templates).
        """
        if isinstance(value, str):
            if not is_template(value):
                return value
            return self._run(self.compile(value), context, path, workload)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                sub = f"{path}.{k}" if path else str(k)
                out[k] = (
                    v
                    if skip is not None and skip(sub)
                    else self.render(v, context, path=sub, workload=workload, skip=skip)
                )
            return out
        if isinstance(value, list):
            return [
                self.render(v, context, path=f"{path}[{i}]", workload=workload, skip=skip)
                for i, v in enumerate(value)
            ]
        return value

    def evaluate(
        self,
        expression: Any,
        context: Mapping[str, Any],
        *,
        path: str = "",
        workload: str | None = None,
    ) -> Any:
        """Evaluate a braced or bare expression to its native value (``when``, conditions)."""
        if not isinstance(expression, str) or not expression.strip():
            return expression  # an empty condition is the empty string: falsy
        return self._run(self.compile_bare(expression), context, path, workload)

    def truthy(self, expression: Any, context: Mapping[str, Any], **kwargs: Any) -> bool:
        return is_truthy(self.evaluate(expression, context, **kwargs))

    def renderer(
        self, compiled: _Compiled, context: Mapping[str, Any], *, workload: str | None = None
    ) -> Callable[..., Any]:
        """``fn(path="", **extra)``: render ``compiled`` many times (per-record templates).

        Building a Jinja context costs more than evaluating a small expression, so
        one context is built here and reused: each call only replaces the
        template's own variables with ``extra``. A failing call is re-run through
        :meth:`_run`, so errors read exactly as from :meth:`render`. Synchronous
        and not thread-safe: use one renderer per thread.
        """
        native = compiled.native
        secrets = self.secrets
        names = ChainMap(context, self._globals)  # type: ignore[arg-type]

        def prepare(template: Template) -> tuple[Any, Any, dict[str, Any], Any]:
            jinja_ctx = template.new_context(names, shared=True)  # type: ignore[arg-type]
            concat = template.environment.concat  # type: ignore[attr-defined]
            return template.root_render_func, jinja_ctx, jinja_ctx.vars, concat

        plain = prepare(compiled.template)
        budget = BUDGET
        tainting: list[tuple[Any, Any, dict[str, Any], Any]] = []

        def render(path: str = "", **extra: Any) -> Any:
            if secrets or compiled.uses_secret:  # taint propagation, reporting to this run
                if not tainting:
                    tainting.append(prepare(compiled.tainting()))
                root, jinja_ctx, local, concat = tainting[0]
                token = _ACTIVE_SECRETS.set(secrets)
            else:
                root, jinja_ctx, local, concat = plain
                token = None
            local.clear()
            local.update(extra)
            budget.remaining = budget.limit  # the budget is per render
            try:
                if native:
                    for _ in root(jinja_ctx):
                        pass
                    result = local["result"]
                    if not isinstance(result, Undefined):
                        return result
                else:
                    return concat(root(jinja_ctx))
            except TemplateLimitError as exc:  # re-running would spend the budget again
                raise self._located(exc, compiled, path, workload) from None
            except Exception:
                pass  # the checked path below raises the proper, located error
            finally:
                if token is not None:
                    _ACTIVE_SECRETS.reset(token)
            return self._run(compiled, ChainMap(extra, context), path, workload)  # type: ignore[arg-type]

        return render

    def _run(
        self, compiled: _Compiled, context: Mapping[str, Any], path: str, workload: str | None
    ) -> Any:
        if not (self.secrets or compiled.uses_secret):
            return self._run_checked(compiled, compiled.template, context, path, workload)
        token = _ACTIVE_SECRETS.set(self.secrets)  # taint propagation reports to this run
        try:
            return self._run_checked(compiled, compiled.tainting(), context, path, workload)
        finally:
            _ACTIVE_SECRETS.reset(token)

    def _run_checked(
        self,
        compiled: _Compiled,
        template: Template,
        context: Mapping[str, Any],
        path: str,
        workload: str | None,
    ) -> Any:
        BUDGET.remaining = BUDGET.limit  # the budget is per render
        try:
            # shared=True makes the mapping the context's parent without copying it,
            # so rendering costs O(1) in the number of registered results.
            ctx = template.new_context(ChainMap(context, self._globals), shared=True)  # type: ignore[arg-type]
            if compiled.native:
                for _ in template.root_render_func(ctx):
                    pass
                result = ctx.vars["result"]
            else:
                result = template.environment.concat(template.root_render_func(ctx))  # type: ignore[attr-defined]
            if compiled.native and isinstance(result, Undefined):
                # Raises UndefinedError with jinja's message naming what is missing.
                result._fail_with_undefined_error()
            return result
        except UndefinedError as exc:
            name = _missing_name(exc.message or "")
            raise UndefinedNameError(
                f"undefined name {name!r} in {compiled.source!r}"
                if name
                else f"{exc.message} in {compiled.source!r}",
                name=name,
                param_path=path or None,
                workload=workload,
                template=compiled.source,
            ) from None
        except TemplateLimitError as exc:
            raise self._located(exc, compiled, path, workload) from None
        except GxoError as exc:
            if isinstance(exc, TemplateError):
                exc.param_path = exc.param_path or path or None
                exc.workload = exc.workload or workload
            raise
        except SecurityError as exc:
            raise TemplateError(
                f"unsafe operation blocked by the sandbox: {exc} in {compiled.source!r}",
                param_path=path or None,
                workload=workload,
                template=compiled.source,
            ) from None
        except RecursionError:
            raise TemplateError(
                f"template recursion too deep in {compiled.source!r}",
                param_path=path or None,
                workload=workload,
            ) from None
        except Exception as exc:  # a filter or operator raised: it is the template's fault
            raise TemplateError(
                f"{type(exc).__name__}: {exc} in {compiled.source!r}",
                param_path=path or None,
                workload=workload,
                template=compiled.source,
            ) from None

    @staticmethod
    def _located(
        exc: TemplateLimitError, compiled: _Compiled, path: str, workload: str | None
    ) -> TemplateLimitError:
        return type(exc)(  # keeps RenderStopped (deadline, signal) recognisable
            f"{exc.message} in {_excerpt(compiled.source)}",
            param_path=path or None,
            workload=workload,
            template=compiled.source,
        )


def _single_expression(source: str, tree: nodes.Template) -> str | None:
    """The inner source if ``source`` is exactly one ``{{ expr }}`` (whitespace aside)."""
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    exprs = [
        n for n in body[0].nodes if not (isinstance(n, nodes.TemplateData) and not n.data.strip())
    ]
    if len(exprs) != 1 or isinstance(exprs[0], nodes.TemplateData):
        return None
    text = source.strip()
    if not (text.startswith("{{") and text.endswith("}}")):
        return None
    inner = text[2:-2]
    if inner.startswith("-") or inner.startswith("+"):
        inner = inner[1:]
    if inner.endswith("-") or inner.endswith("+"):
        inner = inner[:-1]
    return inner


def holds_template(value: Any) -> bool:
    """Whether ``value`` (a string, or dicts and lists nesting them) holds a template.

    The engine asks this before rendering a workload's params: params without one
    need no template context and no walk that rebuilds them path by path.
    """
    cls = value.__class__
    if cls is str:
        return "{{" in value or "{%" in value or "{#" in value
    if cls is dict:
        return any(holds_template(v) for v in value.values()) if value else False
    if cls is list:
        return any(holds_template(v) for v in value) if value else False
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(holds_template(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_template(v) for v in value)
    return False


def iter_template_strings(value: Any, path: str = "") -> Iterable[tuple[str, str]]:
    """``(path, string)`` for every template string nested in ``value``."""
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_template_strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_template_strings(v, f"{path}[{i}]")
