"""Static analysis of templates: the names a template reads, without rendering it.

The loader asks this of every template string of a playbook (dependencies are
inferred from it, unknown names reported with their line), so it is built for
speed and checked for exactness: answers are cached; the common shapes
(``{{ a.b | f }}``, ``{{ a == 'x' }}``) are read without Jinja's parser; trees
without scoping statements are walked once instead of running Jinja's code
generator, which still decides whenever ``set``, ``for``, macros or blocks
scope a name. tests/unit/test_template_references.py compares every path with
``jinja2.meta.find_undeclared_variables`` on many templates.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any, cast

from jinja2 import TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator
from jinja2.meta import TrackingCodeGenerator

from gxo.errors import TemplateError
from gxo.template.engine import _ENV, _MAX_CACHE, _excerpt, _parse, is_template

__all__ = [
    "find_references",
    "is_mixed_condition",
    "iter_template_paths",
    "status_calls",
    "uncalled_status_names",
    "unknown_filters_and_tests",
]


References = tuple[frozenset[str], frozenset[str], frozenset[str]]


def find_references(source: str, *, bare: bool = False) -> References:
    """Names a template reads from its context, and workloads it reads via ``_gxo``.

    Returns ``(root_names, workload_names, optional_names)``: ``workload_names``
    are the ``X`` of ``_gxo.workloads.X`` / ``_gxo.tasks.X``; ``optional_names``
    are roots used only behind ``| default(...)`` or ``is defined`` (not an error
    when missing). Raises TemplateError on bad syntax.

    Cached: a large playbook repeats a few templates thousands of times (the
    loader's benchmark: 2,200 strings, 604 distinct), so the answers are frozen.
    """
    return _references(source, bare)


@functools.lru_cache(maxsize=4 * _MAX_CACHE)
def _references(source: str, bare: bool) -> References:
    text = source.strip()
    if bare and not is_template(text):
        text = "{{ " + text + " }}"
    simple = _simple_references(text)
    if simple is not None:
        return simple
    try:
        tree = _parse(text)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            f"template syntax error: {exc.message} in {source!r}", template=source
        ) from None
    except RecursionError:
        raise TemplateError(
            f"template nesting too deep in {_excerpt(source)}", template=source
        ) from None
    walk = _Walk(tree)
    unknown = _unknown_filters_and_tests(walk.filters_and_tests)
    if unknown:  # jinja's introspection would raise TemplateAssertionError (a traceback)
        raise TemplateError(f"{'; '.join(unknown)} in {source!r}", template=source)
    roots = walk.undeclared() if walk.expressions_only else _undeclared_names(tree)
    workloads: set[str] = set()
    if "_gxo" in roots:
        for lookup in walk.lookups:
            name = _gxo_workload_ref(lookup)
            if name:
                workloads.add(name)
    optional: frozenset[str] = frozenset()
    if roots:
        guarded: dict[str, int] = {}
        for node in walk.filters_and_tests:
            is_guard = (isinstance(node, nodes.Filter) and node.name in ("default", "d")) or (
                isinstance(node, nodes.Test) and node.name in ("defined", "undefined")
            )
            if is_guard and isinstance(node.node, nodes.Name) and node.node.name in roots:
                guarded[node.node.name] = guarded.get(node.node.name, 0) + 1
        if guarded:
            uses: dict[str, int] = {}
            for name_node in walk.names:
                if name_node.ctx == "load" and name_node.name in guarded:
                    uses[name_node.name] = uses.get(name_node.name, 0) + 1
            optional = frozenset(n for n, count in guarded.items() if uses.get(n, 0) <= count)
    return frozenset(roots), frozenset(workloads), optional


@functools.lru_cache(maxsize=_MAX_CACHE)
def status_calls(source: str, *, bare: bool = True) -> frozenset[str]:
    """The status functions (``success()``, ``failure()``, ``always()``, ``cancelled()``,
    ``paused()``) a template calls; empty for a template that does not parse (its syntax
    error is reported by :func:`find_references`)."""
    from gxo.template.filters import STATUS_FUNCTIONS

    if not any(name in source for name in STATUS_FUNCTIONS):
        return frozenset()
    text = source.strip()
    if bare and not is_template(text):
        text = "{{ " + text + " }}"
    try:
        tree = _parse(text)
    except (TemplateSyntaxError, TemplateError, RecursionError):
        return frozenset()
    return frozenset(
        call.node.name
        for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name) and call.node.name in STATUS_FUNCTIONS
    )


def uncalled_status_names(source: str, *, bare: bool = True) -> frozenset[str]:
    """The status function names a template reads without calling them (``when: failure``
    for ``failure()``): a function object is truthy, so such a condition is always true."""
    from gxo.template.filters import STATUS_FUNCTIONS

    if not any(name in source for name in STATUS_FUNCTIONS):
        return frozenset()
    text = source.strip()
    if bare and not is_template(text):
        text = "{{ " + text + " }}"
    try:
        tree = _parse(text)
    except (TemplateSyntaxError, TemplateError, RecursionError):
        return frozenset()
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    return frozenset(
        name.name
        for name in tree.find_all(nodes.Name)
        if name.name in STATUS_FUNCTIONS and name.ctx == "load" and id(name) not in called
    )


def is_mixed_condition(source: str) -> bool:
    """Whether a condition is text around ``{{ }}`` (``"{{ env }} == 'prod'"``): it
    renders to a non-empty string, which is always true."""
    if not isinstance(source, str) or "{{" not in source:
        return False
    try:
        tree = _parse(source.strip())
    except (TemplateSyntaxError, TemplateError, RecursionError):
        return False
    text = expressions = 0
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return False  # {% if %}...: the author decides what it renders
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                text += bool(child.data.strip())
            else:
                expressions += 1
    return bool(text and expressions)


# The shapes most playbook templates have, read without Jinja's lexer and parser
# (~80 µs a template): ``{{ a.b.c | f | g }}`` and ``{{ a.b == c.d }}`` /
# ``{{ a > 1 }}``, any number of them, between text without braces. Only what is
# sure to parse, with known filters and no name Jinja treats specially; anything
# else goes to Jinja (tests/unit/test_template_references.py checks both agree).
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_CHAIN = rf"{_IDENT}(?:\.{_IDENT}){{0,8}}"
_LITERAL = r"(?:0|[1-9][0-9]{0,17}|'[^'\"\\{}%#\n]*'|\"[^'\"\\{}%#\n]*\")"
_SIMPLE_EXPRESSION = re.compile(
    rf" *({_CHAIN})((?: *\| *{_IDENT}){{0,8}})(?: *(?:==|!=|<=|>=|<|>) *({_CHAIN}|{_LITERAL}))? *"
)
_EXPRESSION_BLOCK = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_IDENT_RE = re.compile(_IDENT)
# Operators and constants to Jinja's parser, and ``self`` (bound by its code generator).
_SPECIAL_NAMES = frozenset(
    {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none"}
    | {"True", "False", "None", "self"}
)


def _simple_references(text: str) -> References | None:
    """``find_references``' answer for a template of the simple shapes, else None."""
    if "{%" in text or "{#" in text:
        return None
    roots: set[str] = set()
    workloads: set[str] = set()
    end = 0
    for block in _EXPRESSION_BLOCK.finditer(text):
        between = text[end : block.start()]
        if "{" in between or "}" in between:
            return None
        match = _SIMPLE_EXPRESSION.fullmatch(block.group(1))
        if match is None:
            return None
        left, filters, right = match.groups()
        for name in _IDENT_RE.findall(filters):
            if name not in _ENV.filters or name in ("default", "d"):
                return None  # Jinja words the error; a default makes a name optional
        for chain in (left, right):
            if chain is None or not (chain[0].isalpha() or chain[0] == "_"):
                continue  # no right operand, or a literal
            parts = chain.split(".")
            if parts[0] in _ENV.globals or not _SPECIAL_NAMES.isdisjoint(parts):
                return None
            roots.add(parts[0])
            if parts[0] == "_gxo" and len(parts) > 2 and parts[1] in ("workloads", "tasks"):
                workloads.add(parts[2])
        end = block.end()
    if end == 0 or "{" in text[end:] or "}" in text[end:]:
        return None
    return frozenset(roots), frozenset(workloads), frozenset()


class _Walk:
    """One pass over a template's tree collecting what the analysis reads.

    ``expressions_only`` is true when the tree has no statement but output and
    ``{% if %}``: nothing in it binds a name, so the names it reads from the
    context are exactly its ``Name`` loads (see :meth:`undeclared`). Any other
    statement (``set``, ``for``, ``macro``, ``with``, blocks, ...) scopes names,
    and Jinja's own code generator decides (:func:`_undeclared_names`).
    """

    __slots__ = ("expressions_only", "filters_and_tests", "lookups", "names")

    def __init__(self, tree: nodes.Template) -> None:
        self.names: list[nodes.Name] = []
        self.filters_and_tests: list[nodes.Filter | nodes.Test] = []
        self.lookups: list[nodes.Getattr | nodes.Getitem] = []
        self.expressions_only = True
        # Pre-order, left to right, as jinja's find_all (unknown filters are named in
        # source order): children are pushed right to left.
        stack: list[nodes.Node] = tree.body[::-1]
        while stack:
            node = stack.pop()
            kind = type(node)
            if kind is nodes.Name:
                self.names.append(cast(nodes.Name, node))
                continue  # a Name has no child nodes
            if kind is nodes.TemplateData or kind is nodes.Const:
                continue
            if isinstance(node, (nodes.Filter, nodes.Test)):
                self.filters_and_tests.append(node)
            elif isinstance(node, (nodes.Getattr, nodes.Getitem)):
                self.lookups.append(node)
            elif isinstance(node, nodes.Stmt) and kind is not nodes.Output and kind is not nodes.If:
                self.expressions_only = False
            for field in reversed(node.fields):
                child = getattr(node, field, None)
                if isinstance(child, nodes.Node):
                    stack.append(child)
                elif isinstance(child, list):
                    stack.extend(c for c in reversed(child) if isinstance(c, nodes.Node))

    def undeclared(self) -> set[str]:
        # What jinja2.meta.find_undeclared_variables answers for such a tree: every
        # name loaded, but the environment's globals and ``self`` (the code generator
        # binds ``self`` to the template itself).
        globals_ = _ENV.globals
        return {
            n.name
            for n in self.names
            if n.ctx == "load" and n.name not in globals_ and n.name != "self"
        }


class _NameTracker(TrackingCodeGenerator):
    """``jinja2.meta.find_undeclared_variables``'s generator without the constant folder.

    Jinja's introspection runs its optimizer, which is cubic in nesting depth:
    a chain of 90 filters took most of a second (150: many seconds).
    """

    def __init__(self, environment: Any) -> None:
        CodeGenerator.__init__(
            self, environment, "<introspection>", "<introspection>", optimized=False
        )
        self.undeclared_identifiers: set[str] = set()


def _undeclared_names(tree: nodes.Template) -> set[str]:
    codegen = _NameTracker(tree.environment)  # type: ignore[attr-defined]
    codegen.visit(tree)
    return codegen.undeclared_identifiers


def unknown_filters_and_tests(tree: nodes.Template) -> list[str]:
    """``unknown filter 'uppr' (did you mean 'upper'?)`` for each filter or test the
    engine lacks, including those in ``{% if %}`` branches jinja only checks when run."""
    return _unknown_filters_and_tests(tree.find_all((nodes.Filter, nodes.Test)))


def _unknown_filters_and_tests(found_nodes: Iterable[nodes.Filter | nodes.Test]) -> list[str]:
    found: list[str] = []
    for node in found_nodes:
        is_filter = isinstance(node, nodes.Filter)
        kind, known = ("filter", _ENV.filters) if is_filter else ("test", _ENV.tests)
        if node.name in known:
            continue
        import difflib

        close = difflib.get_close_matches(node.name, list(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        message = f"unknown {kind} '{node.name}'{hint}"
        if message not in found:
            found.append(message)
    return found


def _key(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Getattr):
        return node.attr
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


def _gxo_workload_ref(node: nodes.Node) -> str | None:
    # Matches _gxo.workloads.X (attribute or item access at each step).
    outer_key = _key(node)
    inner = getattr(node, "node", None)
    if outer_key is None or inner is None:
        return None
    if _key(inner) not in ("workloads", "tasks"):
        return None
    root = getattr(inner, "node", None)
    if isinstance(root, nodes.Name) and root.name == "_gxo":
        return outer_key
    return None


def iter_template_paths(
    value: Any, path: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], str]]:
    """``(path, string)`` for every template string nested in ``value``, the path as
    a tuple of keys and indexes: exact even for a key holding ``.`` or ``[``, which
    the dotted form of :func:`iter_template_strings` cannot be read back from."""
    out: list[tuple[tuple[Any, ...], str]] = []
    _collect_templates(value, path, out)
    return out


def _collect_templates(value: Any, path: tuple[Any, ...], out: list[Any]) -> None:
    # A list filled by plain recursion, and a path built only for a template: the
    # loader runs this over every workload's params (a generator was 2x slower).
    if isinstance(value, str):
        if "{{" in value or "{%" in value or "{#" in value:
            out.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str):
                if "{{" in v or "{%" in v or "{#" in v:
                    out.append(((*path, k), v))
            elif isinstance(v, dict | list):
                _collect_templates(v, (*path, k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str):
                if "{{" in v or "{%" in v or "{#" in v:
                    out.append(((*path, i), v))
            elif isinstance(v, dict | list):
                _collect_templates(v, (*path, i), out)
