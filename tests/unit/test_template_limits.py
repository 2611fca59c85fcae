"""Limits on template work: operation budget, deadline, interruption, regex time, sizes, depth."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from gxo.errors import TemplateError
from gxo.template import TemplateEngine, limits, sizes
from gxo.template.limits import MAX_EXPRESSION_DEPTH, TemplateLimitError
from gxo.template.references import find_references
from gxo.template.sizes import MAX_TEMPLATE_SIZE

NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
BUSY_LOOP = (
    "{% for i in range(3000) %}{% for j in range(3000) %}{% set y = (i * j) % 7 %}"
    "{% endfor %}{% endfor %}done"
)
REDOS = "{{ ('a' * 40 ~ '!') | regex_search('(a|aa)+$') }}"


def render(source: str, **context: object) -> object:
    return TemplateEngine().render(source, context, path="params.x", workload="w")


# -- the operation budget -----------------------------------------------------------


def test_nested_loops_stop_at_the_budget_with_the_template_named() -> None:
    with pytest.raises(TemplateLimitError) as info:
        render(NESTED_LOOPS)
    err = info.value
    assert "budget of 5,000,000 operations" in err.message
    assert "range(100000)" in err.message  # the template is named
    assert err.workload == "w" and err.param_path == "params.x"
    assert err.template == NESTED_LOOPS


def test_recursive_macro_calls_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits.BUDGET, "limit", 200_000)
    # 2**40 calls and no loop: only the call counter stops it.
    source = (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    )
    with pytest.raises(TemplateError, match="budget of"):
        render(source)


def test_filters_dispatched_per_item_are_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits.BUDGET, "limit", 5_000)
    # map()/select() call a filter or test by name for every item, without a loop.
    with pytest.raises(TemplateLimitError, match="budget"):
        TemplateEngine().render("{{ range(20000) | map('string') | select('ne', 'x') | list }}", {})


def test_the_budget_is_per_render_so_many_small_renders_pass() -> None:
    engine = TemplateEngine()
    fn = engine.renderer(engine.compile("{% for i in range(1000) %}{{ i }}{% endfor %}"), {})
    for _ in range(6000):  # 6 million iterations in all: more than one budget
        fn("params.x")
    assert engine.render("{% for i in range(50000) %}{% endfor %}ok", {}) == "ok"


def test_legitimate_loops_are_unaffected() -> None:
    source = (
        "{% for x in [1, 2, 3] %}{{ loop.index }}/{{ loop.length }}{% else %}none{% endfor %}"
        "{% for x in [] %}{% else %}E{% endfor %}"
        "{% for a in [1, 2, 3, 4] if a is even %}{{ a }}{% endfor %}"
        "{% for k, v in {'a': 1} | dictsort %}{{ k }}{{ v }}{% endfor %}"
        "{% for c in 'ab' %}{{ c }}{% endfor %}"
        "{% for x in range(3) | map('string') %}{{ x }}{% endfor %}"
    )
    assert render(source) == "1/32/33/3E24a1ab012"


def test_a_per_record_renderer_fails_once_at_the_budget_without_re_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = TemplateEngine()
    fn = engine.renderer(engine.compile(NESTED_LOOPS), {}, workload="m")
    started = time.monotonic()
    with pytest.raises(TemplateLimitError) as info:
        fn("fields.x", record={})
    assert info.value.param_path == "fields.x" and info.value.workload == "m"
    one = time.monotonic() - started
    started = time.monotonic()
    with pytest.raises(TemplateLimitError):
        render(NESTED_LOOPS)
    # The fast path does not fall back to re-rendering (which would double the cost).
    assert one < 1.6 * (time.monotonic() - started) + 0.5


# -- deadline and interruption ------------------------------------------------------


def test_a_render_stops_at_the_deadline() -> None:
    started = time.monotonic()
    with limits.deadline(0.3), pytest.raises(TemplateLimitError) as info:
        render(BUSY_LOOP)
    assert time.monotonic() - started < 1.5
    assert "timed out after 0.3s (the workload's timeout)" in info.value.message


def test_the_deadline_is_scoped() -> None:
    with limits.deadline(0.01):
        pass
    time.sleep(0.02)
    assert render("{% for i in range(5000) %}{% endfor %}ok") == "ok"


def test_an_interrupt_stops_a_running_render_and_is_cleared() -> None:
    timer = threading.Timer(0.3, limits.interrupt_renders)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateLimitError, match="interrupted by a signal"):
            render(BUSY_LOOP)
    finally:
        limits.clear_interrupt()
        timer.cancel()
    assert time.monotonic() - started < 2.0
    assert render("{% for i in range(5000) %}{% endfor %}ok") == "ok"


# -- regular expressions ------------------------------------------------------------


def test_a_backtracking_regex_is_stopped_with_a_clear_error() -> None:
    started = time.monotonic()
    with pytest.raises(TemplateLimitError) as info:
        render(REDOS)
    assert time.monotonic() - started < 5.0  # unbounded without the limit (minutes)
    assert "regular expression '(a|aa)+$' ran longer than 1s" in info.value.message
    assert info.value.param_path == "params.x"


def test_regex_time_is_bounded_by_the_deadline() -> None:
    started = time.monotonic()
    with limits.deadline(0.2), pytest.raises(TemplateLimitError, match=r"timed out after 0\.2s"):
        render(REDOS)
    assert time.monotonic() - started < 1.0


def test_regex_filters_keep_their_meaning() -> None:
    assert render(r"{{ 'ab12' | regex_replace('(\\d)', '<\\1>') }}") == "ab<1><2>"
    assert render(r"{{ 'ab12' | regex_replace('(?P<d>\\d)', '[\\g<d>]') }}") == "ab[1][2]"
    assert render("{{ 'Hello' | regex_search('h', ignorecase=true) }}") == "H"
    assert render("{{ 'abc' | regex_search('z') }}") is None


def test_regex_replace_is_sized_as_it_substitutes() -> None:
    with pytest.raises(TemplateError, match="regex_replace would exceed the template size"):
        # Few substitutions with a big replacement (20,000 × 1,000 chars): the size
        # check, not the per-regex time limit, must stop it, even on a loaded machine.
        render("{{ ('a' * 20000) | regex_replace('a', 'x' * 1000) }}")


# -- size caps ----------------------------------------------------------------------

TOO_LARGE = [
    "{{ '%0*d' % (999999999, 1) }}",
    "{{ '%.*f' % (999999999, 1) }}",
    "{{ '%s%*d' % ('a', 999999999, 1) }}",
    "{{ '{:>{w}}'.format(1, w=999999999) }}",
    "{{ '{:{w}}'.format(1, w=999999999) }}",
    "{{ '{0:.{p}f}'.format(1.5, p=999999999) }}",
    "{{ '{v:>{w}}'.format_map({'v': 1, 'w': 999999999}) }}",
    "{{ '%*s' | format(999999999, 'x') }}",
    "{{ 'x' | indent(999999999) }}",
    "{{ 'a\nb' | indent(99999999) }}",
    "{{ 'a' | center(999999999) }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "{% set ns = namespace(s=[1]) %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
    "{% endfor %}{{ ns.s | length }}",
    "{{ ['x' * 10000000] * 1000 }}",
    "{{ (['x' * 1000000] * 11) | join | length }}",
    "{{ ('x' * 1000000).join(['a'] * 20) | length }}",
    "{{ ('a' * 10000000) | replace('a', 'xxxxxxxxxx') | length }}",
    "{{ ('a' * 10000000).replace('a', 'xxxxxxxxxx') | length }}",
    "{% for i in range(20) %}{{ 'x' * 1000000 }}{% endfor %}",
    "{{ [[1], [2], [3]] | tojson(indent=99999999) | length }}",
    "{{ [[1], [2], [3]] | to_json(indent=99999999) | length }}",
    "{{ range(10) | slice(999999999) | list | length }}",
    "{{ range(10) | batch(999999999, 0) | list | length }}",
    "{{ 'a\nb\nc' | indent('y' * 9000000) }}",
    "{% set big %}{% for i in range(20) %}{{ 'x' * 1000000 }}{% endfor %}{% endset %}{{ big | length }}",
]


@pytest.mark.parametrize("source", TOO_LARGE)
def test_size_caps_refuse_before_allocating(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateError, match="template size limit") as info:
        render(source)
    assert time.monotonic() - started < 3.0
    assert info.value.workload == "w" and info.value.param_path == "params.x"


def test_sizes_within_the_cap_still_work() -> None:
    assert render("{{ '%05d|%-3s|' % (42, 'a') }}") == "00042|a  |"
    assert render("{{ '%*d' % (4, 7) }}") == "   7"
    assert render("{{ '{:>{w}}|{}'.format(1, 2, w=3) }}") == "  1|2"
    assert render("{{ '100%% of %d' % 3 }}") == "100% of 3"
    assert render("{{ '%(n)05d' % {'n': 7} }}") == "00007"
    assert render("{{ [1, 2] + [3] }}") == [1, 2, 3]
    assert render("{{ 'a' ~ 1 ~ none }}") == "a1None"
    assert render("{{ 1 + 2.5 }}") == 3.5
    assert render("{{ range(3) | join(',') }}") == "0,1,2"
    assert render("{{ ','.join(['a', 'b']) }}") == "a,b"
    assert render("{{ 'abc'.replace('b', 'x') }}") == "axc"
    assert render("{{ 'x%sy' | format(1) }}") == "x1y"
    assert render("{{ {'a': [1]} | to_json(indent=2) }}") == '{\n  "a": [\n    1\n  ]\n}'
    assert render("{{ [1] | tojson(indent=1) }}") == "[\n 1\n]"
    assert render("{{ range(5) | slice(2) | list }}") == [[0, 1, 2], [3, 4]]
    assert render("{{ range(3) | batch(2, 0) | list }}") == [[0, 1], [2, 0]]
    assert render("{{ 'a\nb' | indent('> ') }}") == "a\n> b"
    assert render("{{ 99999999999 | tojson }}") == "99999999999"
    assert len(render("{{ ('ab' * 1000000) ~ 'c' }}")) == 2_000_001  # type: ignore[arg-type]
    assert len(render("{{ ['x' * 1000] * 9000 }}")) == 9000  # type: ignore[arg-type]
    n = MAX_TEMPLATE_SIZE // 2
    assert len(render("{{ ('a' * n) ~ ('b' * n) }}", n=n)) == MAX_TEMPLATE_SIZE  # type: ignore[arg-type]


# -- expression depth ---------------------------------------------------------------

DEEP_FORMS = {
    "plus": lambda n: " + ".join(["1"] * n),
    "times": lambda n: " * ".join(["1"] * n),
    "filters": lambda n: "x" + "|string" * n,
    "attributes": lambda n: "x" + ".a" * n,
    "not": lambda n: "not " * n + "x",
    "and": lambda n: " and ".join(["x"] * n),
    "conditional": lambda n: " if x else ".join(["1"] * n),
}


@pytest.mark.parametrize("form", sorted(DEEP_FORMS))
@pytest.mark.parametrize("n", [150, 300, 500, 2000])
def test_deep_expressions_are_a_clear_error_at_once(form: str, n: int) -> None:
    source = "{{ " + DEEP_FORMS[form](n) + " }}"
    started = time.monotonic()
    with pytest.raises(TemplateError, match="nest") as info:
        TemplateEngine().compile(source)
    with pytest.raises(TemplateError, match="nest"):
        find_references(source)
    assert time.monotonic() - started < 1.0  # was up to 40 s (filters, 300 terms)
    assert not isinstance(info.value.__cause__, RecursionError)


@pytest.mark.parametrize("form", sorted(DEEP_FORMS))
def test_expressions_within_the_depth_limit_compile_quickly(form: str) -> None:
    source = "{{ " + DEEP_FORMS[form](MAX_EXPRESSION_DEPTH - 10) + " }}"
    started = time.monotonic()
    TemplateEngine().compile(source)
    find_references(source)
    assert time.monotonic() - started < 1.0  # the constant folder made this seconds


def test_deeply_nested_statements_are_a_clear_error() -> None:
    source = "{% for x in y %}" * 30 + "z" + "{% endfor %}" * 30  # Python allows 20 nested loops
    with pytest.raises(TemplateError, match="nesting too deep"):
        TemplateEngine().compile(source)


def test_limits_module_documents_its_limits() -> None:
    text = Path(limits.__file__).read_text() + Path(sizes.__file__).read_text()
    for name in ("MAX_OPERATIONS", "MAX_EXPRESSION_DEPTH", "REGEX_TIMEOUT", "MAX_TEMPLATE_SIZE"):
        assert f"{name} = " in text
