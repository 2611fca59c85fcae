"""``find_references`` against Jinja's own introspection, on many templates.

``find_references`` finds the names a template reads with a light walk of the
tree (and caches the answer) instead of running Jinja's code generator
(``jinja2.meta.find_undeclared_variables``). The oracle below is the analysis as
it was before: every template here must get the same roots, ``_gxo`` workload
references, optional names and error message from both. The templates are the
repository's playbooks, the string literals of the test suite, and random
templates built from expressions and every scoping statement Jinja has.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jinja2 import TemplateSyntaxError, nodes
from jinja2.meta import find_undeclared_variables

from gxo.errors import GxoError, TemplateError
from gxo.template.engine import _ENV, is_template, iter_template_strings
from gxo.template.references import (
    _gxo_workload_ref,
    find_references,
    unknown_filters_and_tests,
)

ROOT = Path(__file__).resolve().parents[2]


def oracle(source: str, bare: bool = False) -> tuple[set[str], set[str], set[str]] | str:
    """The analysis before the light walk (jinja2.meta), or the error message."""
    text = source.strip()
    if bare and not is_template(text):
        text = "{{ " + text + " }}"
    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message} in {source!r}"
    unknown = unknown_filters_and_tests(tree)
    if unknown:
        return f"{'; '.join(unknown)} in {source!r}"
    roots = find_undeclared_variables(tree)
    workloads = {
        n for n in map(_gxo_workload_ref, tree.find_all((nodes.Getattr, nodes.Getitem))) if n
    }
    guarded: dict[str, int] = {}
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        is_guard = (isinstance(node, nodes.Filter) and node.name in ("default", "d")) or (
            isinstance(node, nodes.Test) and node.name in ("defined", "undefined")
        )
        if is_guard and isinstance(node.node, nodes.Name) and node.node.name in roots:
            guarded[node.node.name] = guarded.get(node.node.name, 0) + 1
    uses: dict[str, int] = {}
    for n in tree.find_all(nodes.Name):
        if n.ctx == "load" and n.name in guarded:
            uses[n.name] = uses.get(n.name, 0) + 1
    optional = {n for n, count in guarded.items() if uses.get(n, 0) <= count}
    return roots, (workloads if "_gxo" in roots else set()), optional


def analysed(source: str, bare: bool = False) -> tuple[set[str], set[str], set[str]] | str:
    try:
        roots, workloads, optional = find_references(source, bare=bare)
    except TemplateError as exc:
        return exc.message
    return set(roots), set(workloads), set(optional)


def same_as_jinja(source: str, bare: bool = False) -> None:
    try:
        expected = oracle(source, bare)
    except GxoError:
        return  # refused before analysis by both (size or depth caps)
    except Exception:
        return  # jinja's own introspection crashes (the reason for the pre-checks)
    assert analysed(source, bare) == expected, source


# -- the repository's own templates ------------------------------------------------


def _playbook_templates() -> Iterator[tuple[str, bool]]:
    from gxo.config.yamlsafe import parse_yaml

    for path in sorted(ROOT.glob("**/*.gxo.yaml")):
        if ".venv" in path.parts:
            continue
        try:
            data, _ = parse_yaml(path.read_text(), str(path))
        except GxoError:
            continue
        for _, value in iter_template_strings(data):
            yield value, False

        def conditions(node: Any) -> Iterator[str]:
            if isinstance(node, dict):
                for k, v in node.items():
                    if k in ("when", "condition") and isinstance(v, str):
                        yield v
                    yield from conditions(v)
            elif isinstance(node, list):
                for v in node:
                    yield from conditions(v)

        for value in conditions(data):
            yield value, True


def _test_suite_templates() -> Iterator[str]:
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and is_template(node.value) and len(node.value) < 2000:
                yield node.value


def test_repository_templates_match_jinja() -> None:
    playbook = list(_playbook_templates())
    suite = list(_test_suite_templates())
    assert len(playbook) > 100 and len(suite) > 100  # the corpus is really there
    for source, bare in playbook:
        same_as_jinja(source, bare)
    for source in suite:
        same_as_jinja(source)
        same_as_jinja(source, bare=True)


# -- random templates: expressions and every statement that scopes a name ------------

NAMES = ["a", "b", "x", "item", "loop", "self", "super", "caller", "kwargs", "varargs",
         "range", "namespace", "ns", "_gxo", "secret", "m", "true", "none"]  # fmt: skip
name = st.sampled_from(NAMES)


def _expressions(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds("{}.{}".format, inner, st.sampled_from(["workloads", "tasks", "status", "y"])),
        st.builds("{}[{}]".format, inner, st.sampled_from(["'workloads'", "'w1'", "0", "a"])),
        st.builds("{} | {}".format, inner, st.sampled_from(["upper", "default(1)", "d", "length"])),
        st.builds("{} is {}".format, inner, st.sampled_from(["defined", "undefined", "number"])),
        st.builds("({} + {})".format, inner, inner),
        st.builds("({} if {} else {})".format, inner, inner, inner),
        st.builds("{}({})".format, inner, inner),
        st.builds("{}(k={})".format, inner, inner),
        st.builds("[{}, {}]".format, inner, inner),
        st.builds("{{'k': {}}}".format, inner),
        st.builds("not {}".format, inner),
    )


expression = st.recursive(name | st.sampled_from(["1", "'s'"]), _expressions, max_leaves=6)
target = name | st.builds("{}, {}".format, name, name)


def _statements(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    body = st.lists(inner, max_size=3).map("".join)
    return st.one_of(
        st.builds("{{% set {} = {} %}}".format, target, expression),
        st.builds("{{% set {} %}}{}{{% endset %}}".format, name, body),
        st.builds("{{% set {}.{} = {} %}}".format, name, name, expression),
        st.builds("{{% if {} %}}{}{{% endif %}}".format, expression, body),
        st.builds(
            "{{% if {} %}}{}{{% elif {} %}}{}{{% else %}}{}{{% endif %}}".format,
            expression,
            body,
            expression,
            body,
            body,
        ),
        st.builds("{{% for {} in {} %}}{}{{% endfor %}}".format, target, expression, body),
        st.builds(
            "{{% for {} in {} if {} %}}{}{{% else %}}{}{{% endfor %}}".format,
            name,
            expression,
            expression,
            body,
            body,
        ),
        st.builds(
            "{{% for {} in {} recursive %}}{}{{{{ loop({}) }}}}{{% endfor %}}".format,
            name,
            expression,
            body,
            expression,
        ),
        st.builds("{{% macro m({}, {}=1) %}}{}{{% endmacro %}}".format, name, name, body),
        st.builds("{{% call {}({}) %}}{}{{% endcall %}}".format, name, expression, body),
        st.builds("{{% with {} = {} %}}{}{{% endwith %}}".format, name, expression, body),
        st.builds("{{% filter upper %}}{}{{% endfilter %}}".format, body),
        st.builds("{{% block blk %}}{}{{% endblock %}}".format, body),
    )


output = st.builds("{{{{ {} }}}}".format, expression)
statement = st.recursive(output | st.just("text "), _statements, max_leaves=8)
template = st.lists(statement, min_size=1, max_size=4).map("".join)

FUZZ = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@FUZZ
@given(expression)
@example("_gxo.workloads.w1.status | default(x) ~ self")
@example("x | default(1) + x")
def test_random_expressions_match_jinja(source: str) -> None:
    same_as_jinja("{{ " + source + " }}")
    same_as_jinja(source, bare=True)


@FUZZ
@given(template)
@example("{% set x = 1 %}{{ x }}")
@example("{{ x }}{% set x = 1 %}")
@example("{% for x in x %}{{ x }}{{ loop.index }}{% endfor %}{{ loop }}")
@example("{% for i in a %}{{ y }}{% endfor %}{% set y = 1 %}")
@example("{% if a %}{% set y = 1 %}{% endif %}{{ y }}")
@example("{% macro m(a, b=c) %}{{ a }}{{ b }}{{ caller() }}{{ varargs }}{% endmacro %}{{ m }}")
@example("{% set ns = namespace(n=0) %}{% for i in a %}{% set ns.n = i %}{% endfor %}{{ ns.n }}")
@example("{% block b %}{{ super() }}{{ self }}{% endblock %}{{ self.b() }}")
def test_random_templates_match_jinja(source: str) -> None:
    same_as_jinja(source)


# Templates near the shapes read without Jinja (``_simple_references``): names
# Jinja treats specially, unknown filters, default, literals, text with braces.
COMMON = ["a", "b", "_gxo", "workloads", "tasks", "w1", "x_1", "loop", "item"]
SPECIAL = ["self", "range", "secret", "not", "in", "is", "if", "else", "and", "true", "None"]
WORDS = COMMON * 4 + SPECIAL  # mostly shapes the fast path takes, some it must refuse
word = st.sampled_from(WORDS)
chain = st.lists(word, min_size=1, max_size=10).map(".".join) | word
literal = st.sampled_from(["0", "1", "42", "-1", "007", "1.5", "'s'", '"t t"', "'a{b'", "''"])
filters = st.lists(
    st.sampled_from(["trim", "upper", "length", "default", "d", "int", "nosuch", "from_json"]),
    max_size=9,
).map(lambda names: "".join(f" | {n}" for n in names))
operator = st.sampled_from(["==", "!=", "<", ">", "<=", ">=", "=", "in", "is"])
comparison = st.none() | st.tuples(operator, chain | literal)
space = st.sampled_from(["", " ", "  ", "\t", "\n"])


@st.composite
def simple_shapes(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        parts.append(draw(st.sampled_from(["", "text ", "a}b ", "{ ", " } ", "-", ":"])))
        inner = draw(chain) + draw(filters)
        compared = draw(comparison)
        if compared:
            inner += f"{draw(space)}{compared[0]}{draw(space)}{compared[1]}"
        parts.append("{{" + draw(space) + inner + draw(space) + "}}")
    parts.append(draw(st.sampled_from(["", " end", "}", "{"])))
    return "".join(parts)


@FUZZ
@given(simple_shapes())
@example("{{ _gxo.workloads.w1.status == 'Completed' }} {{ _gxo.tasks.a }}")
@example("{{ a.b | trim | upper }} and {{ b >= 0 }}")
@example("{{ a.if }}")
@example("{{ self }}")
@example("{{ range }}")
@example("{{ not a }}")
@example("{{ not }}")
@example("{{ a == in }}")
@example("{{ a.not }}")
@example("{{ a in b }}")
@example("{{ true }}")
@example("{{ a | default }}")
@example("{{ a | nosuch }}")
@example("{{ a.b.c.d.e.f.g.h.i.j.k }}")
def test_simple_shapes_match_jinja(source: str) -> None:
    same_as_jinja(source)
    same_as_jinja(source.replace("{{", "").replace("}}", ""), bare=True)


@pytest.mark.parametrize(
    "source",
    [
        "{{ r12.stdout | trim }}",
        "{{ greeting }} 7",
        "{{ r1.exit_code == 0 }}",
        "{{ _gxo.workloads.build.status != 'Failed' }}",
        "{{ a.b }}-{{ c }}",
    ],
)
def test_common_shapes_skip_jinja(source: str) -> None:
    # The benchmark's point: these are answered without Jinja's parser, and right.
    from gxo.template.references import _simple_references

    answer = _simple_references(source)
    assert answer is not None
    assert (set(answer[0]), set(answer[1]), set(answer[2])) == oracle(source)


@pytest.mark.parametrize(
    ("source", "roots"),
    [
        ("{{ self }} {{ a | upper }}", {"a"}),  # the code generator binds self
        ("{{ range(3) | map(attribute=x) | list }}", {"x"}),  # globals are not roots
        ("{% if a %}{{ b }}{% else %}{{ c.d }}{% endif %}", {"a", "b", "c"}),
        ("{% for i in items %}{{ i }}{{ loop.index }}{% endfor %}", {"items"}),
        ("{% set n = 1 %}{{ n + m }}", {"m"}),
    ],
)
def test_known_answers(source: str, roots: set[str]) -> None:
    assert find_references(source)[0] == roots


def test_answers_are_cached_and_frozen() -> None:
    first = find_references("{{ cached_name.x | default(1) }}")
    assert find_references("{{ cached_name.x | default(1) }}") is first
    assert all(isinstance(part, frozenset) for part in first)


def test_unknown_filters_named_in_jinja_order() -> None:
    source = "{{ a | nosuch_one | nosuch_two }}{% if b is nosuch_test %}{% endif %}"
    with pytest.raises(TemplateError) as info:
        find_references(source)
    # The outer filter first, as jinja's find_all walks the tree.
    assert info.value.message == oracle(source)
    assert info.value.message.startswith("unknown filter 'nosuch_two'; unknown filter 'nosuch_one'")
