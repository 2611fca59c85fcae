"""Fuzzing the template engine: only GxoErrors escape, nothing hangs or eats the memory.

Random mixes of expressions, statements, filters, attribute and dunder access,
huge ranges and recursion are rendered against random contexts. A few known
attacks are pinned down as examples below.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gxo.errors import GxoError, TemplateError
from gxo.template import TemplateEngine
from gxo.template.engine import MAX_TEMPLATE_SIZE

FUZZ = settings(
    max_examples=150,
    deadline=None,  # time is bounded per call below
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TIME_LIMIT = 2.0

NAMES = [
    "x",
    "y",
    "items",
    "record",
    "_gxo",
    "missing",
    "loop",
    "self",
    "cycler",
    "namespace",
    "lipsum",
]
PIECES = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{{ x }}", "{{ x.y }}", "{{ items[0] }}", "{{ record['a'] }}",
    "{{ x | upper }}", "{{ items | length }}", "{{ items | sort | first }}", "{{ x | default('d') }}",
    "{{ x | tojson }}", "{{ x | int }}", "{{ items | join(',') }}", "{{ x | nosuch }}", "|", ".", "(",
    "{{ x.__class__ }}", "{{ x.__class__.__mro__ }}", "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}", "{{ self.__init__.__globals__ }}", "{{ x.__dict__ }}",
    "{{ namespace.__init__.__globals__ }}", "{{ lipsum.__globals__ }}", "{{ x.mro() }}",
    "{{ range(10**9) | list }}", "{{ range(10**12) | list }}", "{{ range(100000) | list | length }}",
    "{{ 'a' * 10**9 }}", "{{ [0] * 10**9 }}", "{{ 9 ** (9 ** 9) }}", "{{ '%0999999999d' % 1 }}",
    "{{ 'x' | center(10**9) }}", "{{ 'x'.ljust(10**9) }}", "{{ '{:>999999999}'.format(1) }}",
    "{{ lipsum(10**6) }}", "{{ 1 / 0 }}", "{{ 10 ** 5000 }}", "{{ x + 1 }}", "{{ items + x }}",
    "{% for i in range(20) %}", "{% endfor %}", "{% if x %}", "{% else %}", "{% endif %}",
    "{% set z = x %}{{ z }}", "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}",
    "{% include 'other' %}", "{% extends 'base' %}", "{% import 'lib' as lib %}", "{{ secret('NOPE') }}",
    "{{ _gxo.workloads.a.status }}", "{{ x is defined }}", "{{ (x, y) }}", "{{ {'a': x} }}",
    "{{ x if y else items }}", "{{ loop.index }}", "{% raw %}", "{% endraw %}", "{{ '\\u0000' }}",
]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from([*NAMES, "a", "b"]), inner, max_size=4)
    ),
    max_leaves=12,
)
contexts = st.dictionaries(st.sampled_from(NAMES), values, max_size=6)
templates = st.lists(st.sampled_from(PIECES) | st.text(max_size=6), min_size=1, max_size=8).map(
    "".join
)


def bounded(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; let only GxoErrors out and insist on the time bound."""
    started = time.perf_counter()
    try:
        return fn(*args, **kwargs)
    except GxoError as exc:
        assert str(exc)
        return exc
    finally:
        elapsed = time.perf_counter() - started
        assert elapsed < TIME_LIMIT, f"{fn.__name__} took {elapsed:.2f}s"


@FUZZ
@given(template=templates, context=contexts)
@example(template="{{ range(10**12)|list }}", context={})
@example(template="{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}", context={})
@example(template="{{ x.__class__.__base__.__subclasses__() }}", context={"x": 1})
def test_render_lets_only_gxo_errors_escape(template: str, context: dict[str, Any]) -> None:
    engine = TemplateEngine()
    bounded(engine.render, template, context, path="p", workload="w")
    bounded(engine.render, {"nested": [template, {"k": template}]}, context)
    bounded(engine.evaluate, template, context)
    result = bounded(engine.truthy, template, context)
    assert isinstance(result, bool | GxoError)


@FUZZ
@given(
    template=templates,
    context=contexts,
    records=st.lists(st.dictionaries(st.sampled_from(["a", "b"]), scalars), max_size=3),
)
def test_per_record_renderer_lets_only_gxo_errors_escape(
    template: str, context: dict[str, Any], records: list[dict[str, Any]]
) -> None:
    engine = TemplateEngine()
    compiled = bounded(engine.compile, template)
    if isinstance(compiled, GxoError):
        return
    render = engine.renderer(compiled, context, workload="w")
    for record in records:
        bounded(render, "fields.x", record=record)


@FUZZ
@given(expression=st.text(max_size=40))
def test_bare_conditions_let_only_gxo_errors_escape(expression: str) -> None:
    bounded(TemplateEngine().truthy, expression, {"x": 1})


# -- the limits added to Jinja's sandbox, pinned down ---------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ 'a' * 10**9 }}",
        "{{ 10**9 * 'a' }}",
        "{{ [0] * 10**9 }}",
        "{{ (1, 2) * 10**9 }}",
        "{{ 9 ** (9 ** 9) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '%.999999999f' % 1 }}",
        "{{ '%0999999999d' | format(1) }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ '{x:>999999999}'.format_map({'x': 1}) }}",
        "{{ 'x' | center(10**9) }}",
        "{{ 'x' | indent(10**9) }}",
        "{{ 'x'.ljust(10**9) }}",
        "{{ 'x'.zfill(10**9) }}",
        "{{ 'a\tb'.expandtabs(10**9) }}",
        "{{ lipsum(10**6) }}",
    ],
)
def test_huge_allocations_are_refused(template: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateError, match=r"template size limit \(10,000,000\)") as info:
        TemplateEngine().render(template, {}, path="params.x", workload="w")
    assert time.perf_counter() - started < 0.5
    assert str(info.value).startswith(
        "workload 'w': param 'params.x': unsafe operation blocked by the sandbox"
    )


def test_huge_ranges_are_refused_by_jinjas_own_limit() -> None:
    with pytest.raises(TemplateError, match="MAX_RANGE"):
        TemplateEngine().render("{{ range(10**12) | list }}", {})


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '-' * 80 }}", "-" * 80),
        ("{{ [1, 2] * 2 }}", [1, 2, 1, 2]),
        ("{{ 2 ** 64 }}", 2**64),
        ("{{ (-2) ** 3 }}", -8),
        ("{{ 2 ** 0.5 > 1.41 }}", True),
        ("{{ '%05.1f|%s' % (3.14159, 'x') }}", "003.1|x"),
        ("{{ '%d' | format(10**12) }}", "1000000000000"),
        ("{{ '{} bytes'.format(10**12) }}", "1000000000000 bytes"),
        ("{{ 'x' | center(5) }}", "  x  "),
        ("{{ 'ab'.rjust(4, '.') }}", "..ab"),
        ("{{ 'x'.find('y', 0, 10**12) }}", -1),
        ("{{ 7 % 3 }}", 1),
        ("{{ lipsum(2, html=false) | length > 0 }}", True),
    ],
)
def test_ordinary_uses_of_the_limited_operations_still_work(template: str, expected: Any) -> None:
    assert TemplateEngine().render(template, {}) == expected


def test_the_limit_leaves_room_for_real_data() -> None:
    n = MAX_TEMPLATE_SIZE // 10
    assert len(TemplateEngine().render("{{ 'abcdefghij' * n }}", {"n": n})) == MAX_TEMPLATE_SIZE
