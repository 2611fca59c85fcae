"""ModuleContext.compile / TemplateEngine.renderer: the per-record fast path renders
exactly like TemplateEngine.render, errors included."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxo.config.models import Process, Workload
from gxo.engine.context import ModuleContext, RunContext, WorkloadState
from gxo.errors import TemplateError, UndefinedNameError
from gxo.template.engine import TemplateEngine


def make_ctx(variables: dict | None = None) -> ModuleContext:
    wl = Workload.model_validate({"name": "w", "process": Process(module="passthrough", params={})})
    state = WorkloadState(wl)
    run = RunContext(
        run_id="t", workspace=Path.cwd(), variables=variables or {}, states={"w": state}
    )
    return ModuleContext(run, state)


@pytest.mark.parametrize(
    ("template", "record"),
    [
        ("{{ record.n * 2 }}", {"n": 4}),
        ("{{ record.n * 2.5 }}", {"n": 2}),
        ("{{ record.s * 3 }}", {"s": "ab"}),
        ("n={{ record.n }}", {"n": 1}),
        ("{{ record.tags | join(',') }}", {"tags": ["a", "b"]}),
        ("{{ {'a': record.n} }}", {"n": 1}),
        ("{{ record['items'] }}", {"items": 3}),
        ("{{ record.get('n') }}", {"n": 5}),
        ("{{ record.nested.x is defined }}", {"nested": {}}),
        ("{{ record.n | default(7) }}", {}),
        ("{{ limit + record.n }}", {"n": 1}),
    ],
)
def test_renderer_matches_render(template: str, record: dict) -> None:
    ctx = make_ctx({"limit": 10})
    expected = ctx.run.templates.render(template, ctx.template_context(record=record))
    fast = ctx.compile(template)
    assert fast(record=record) == expected
    assert fast(record=record) == expected  # the reused context holds no state between calls


def test_bare_conditions() -> None:
    test = make_ctx({"limit": 2}).compile("record.n > limit", bare=True)
    assert [test(record={"n": n}) for n in (1, 2, 3)] == [False, False, True]


def test_template_variables_do_not_leak_between_calls() -> None:
    fn = make_ctx().compile(
        "{% if record.first %}{% set seen = 'yes' %}{% endif %}{{ seen | default('no') }}"
    )
    assert fn(record={"first": True}) == "yes"
    assert fn(record={"first": False}) == "no"


def test_errors_are_those_of_render() -> None:
    ctx = make_ctx()
    fn = ctx.compile("{{ record.missing + 1 }}")
    assert fn(record={"missing": 1}) == 2
    with pytest.raises(UndefinedNameError) as err:
        fn("fields.x", record={})
    assert err.value.param_path == "fields.x"
    assert err.value.workload == "w"
    assert err.value.message == "undefined name 'missing' in '{{ record.missing + 1 }}'"
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        ctx.compile("{{ 1 // record.n }}")(record={"n": 0})
    # A failed call leaves the renderer usable.
    assert fn(record={"missing": 2}) == 3


def test_sandbox_limits_still_apply_to_the_fast_paths() -> None:
    fn = make_ctx().compile("{{ record.s * record.n }}")
    assert fn(record={"s": "ab", "n": 2}) == "abab"
    assert fn(record={"s": 3, "n": 2}) == 6
    with pytest.raises(TemplateError, match="template size limit"):
        fn(record={"s": "ab", "n": 10**8})
    with pytest.raises(TemplateError, match="unsafe"):
        make_ctx().compile("{{ record.__class__ }}")(record={})


def test_dict_attribute_lookup_semantics() -> None:
    engine = TemplateEngine()
    data = {"d": {"a": 1, "keys": "k"}}
    assert engine.render("{{ d.a }}", data) == 1
    assert callable(engine.render("{{ d.keys }}", data))  # the method, as Jinja always did
    assert callable(make_ctx().compile("{{ record.items }}")(record={"items": 3}))
    assert engine.render("{{ d['keys'] }}", data) == "k"
    assert engine.render("{{ d.b is defined }}", data) is False
    with pytest.raises(UndefinedNameError, match="'b'"):
        engine.render("{{ d.b }}", data)
