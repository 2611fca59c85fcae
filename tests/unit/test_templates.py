"""Template engine: native rendering, strict undefined, sandbox, filters, analysis."""

from __future__ import annotations

from collections import ChainMap

import pytest

from gxo.errors import SecretError, TemplateError, UndefinedNameError
from gxo.template import SecretRegistry, TemplateEngine, find_references, is_truthy
from gxo.template.secrets import SecretStr


@pytest.fixture
def engine() -> TemplateEngine:
    return TemplateEngine()


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ items }}", [1, 2]),
        ("{{ n * 2 }}", 6),
        ("{{ flag }}", True),
        ("{{ {'a': n} }}", {"a": 3}),
        ("  {{ n }}  ", 3),  # surrounding whitespace: still one expression
        ("{{- n -}}", 3),
        ("{{ none }}", None),
        ("n={{ n }}", "n=3"),
        ("{{ n }}{{ n }}", "33"),
        ("{% if flag %}yes{% endif %}", "yes"),
        ("plain", "plain"),
        ("{{ items | to_json }}", "[1, 2]"),
        ("{{ '{\"a\": 1}' | from_json }}", {"a": 1}),
        ("{{ 'abc' | b64encode | b64decode }}", "abc"),
        ("{{ 'a-b' | regex_replace('-', '_') }}", "a_b"),
        ("{{ {'a': 1} | combine({'b': 2}) }}", {"a": 1, "b": 2}),
        ("{{ {'k': 1} | dict2items }}", [{"key": "k", "value": 1}]),
        ("{{ '/x/y.txt' | basename }}", "y.txt"),
        ("{{ 'no' | bool }}", False),
    ],
)
def test_native_and_string_rendering(
    engine: TemplateEngine, template: str, expected: object
) -> None:
    assert engine.render(template, {"items": [1, 2], "n": 3, "flag": True}) == expected


def test_render_walks_nested_structures_and_skips_raw_paths(engine: TemplateEngine) -> None:
    value = {"a": ["{{ n }}", {"b": "{{ n + 1 }}"}], "raw": "{{ record.x }}"}
    out = engine.render(value, {"n": 1}, skip=lambda p: p == "raw")
    assert out == {"a": [1, {"b": 2}], "raw": "{{ record.x }}"}


def test_undefined_errors_name_the_missing_name_path_and_workload(engine: TemplateEngine) -> None:
    with pytest.raises(UndefinedNameError) as info:
        engine.render({"x": {"url": "{{ api.base }}/v1"}}, {"api": {}}, workload="fetch")
    exc = info.value
    assert exc.name == "base"
    assert exc.param_path == "x.url"
    assert (
        str(exc) == "workload 'fetch': param 'x.url': undefined name 'base' in '{{ api.base }}/v1'"
    )


def test_sandbox_blocks_unsafe_access_and_mutation(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError, match="sandbox"):
        engine.render("{{ ''.__class__.__mro__ }}", {})
    with pytest.raises(TemplateError, match="sandbox"):
        engine.render("{{ items.append(3) }}", {"items": [1]})


def test_filter_errors_are_template_errors(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        engine.render("{{ 1 / 0 }}", {})
    with pytest.raises(TemplateError, match="template syntax error"):
        engine.render("{{ x ", {})


def test_huge_range_is_refused(engine: TemplateEngine) -> None:
    with pytest.raises(TemplateError):
        engine.render("{{ range(10**9) | list | length }}", {})


@pytest.mark.parametrize(
    ("expression", "truthy"),
    [
        ("x > 1", True),
        ("{{ x > 5 }}", False),
        ("x", True),
        ("''", False),
        ("'false'", False),
        ("[]", False),
    ],
)
def test_evaluate_braced_or_bare(engine: TemplateEngine, expression: str, truthy: bool) -> None:
    assert engine.truthy(expression, {"x": 2}) is truthy


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        (0, False),
        (0.0, False),
        ("", False),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("none", False),
        ([], False),
        ({}, False),
        (False, False),
        (1, True),
        ("x", True),
        ([0], True),
        (True, True),
    ],
)
def test_truthiness(value: object, expected: bool) -> None:
    assert is_truthy(value) is expected


def test_chainmap_contexts_render_without_copying(engine: TemplateEngine) -> None:
    context = ChainMap({"a": 1}, {"b": 2})
    assert engine.render("{{ a + b }}", context) == 3
    assert engine.render("{{ range(2) | list }}", context) == [0, 1]  # globals still visible


def test_compile_cache_is_shared_and_bounded(engine: TemplateEngine) -> None:
    from gxo.template import engine as module

    engine.render("{{ 40 + 2 }}", {})
    assert TemplateEngine().compile("{{ 40 + 2 }}") is engine.compile("{{ 40 + 2 }}")
    for i in range(5000):
        engine.render(f"{{{{ {i} }}}}", {})
    assert len(module._COMPILED) <= 4096


def test_secret_is_bound_per_engine_not_per_cache(monkeypatch) -> None:
    monkeypatch.setenv("S1", "one")
    first, second = TemplateEngine(), TemplateEngine()
    first.render("{{ secret('S1') }}", {})
    second.render("{{ secret('S1') }}", {})  # same compiled template, other registry
    assert first.secrets.redact_str("one") == second.secrets.redact_str("one") == "[REDACTED]"
    assert not TemplateEngine().secrets


def test_secret_outside_a_run_is_an_error() -> None:
    from gxo.template.engine import _ENV

    with pytest.raises(SecretError, match="only available while a playbook runs"):
        _ENV.from_string("{{ secret('X') }}").render()


def test_find_references() -> None:
    roots, workloads, optional = find_references(
        "{{ users | length }} {{ _gxo.workloads.fetch.status }} {{ _gxo['tasks']['old'].status }} {{ x | default(1) }}"
    )
    assert roots == {"users", "_gxo", "x"}
    assert workloads == {"fetch", "old"}
    assert optional == {"x"}
    assert find_references("a > b", bare=True)[0] == {"a", "b"}
    assert find_references("{% for i in items %}{{ i }}{% endfor %}")[0] == {"items"}


def test_secrets_are_tainted_and_redacted_everywhere(monkeypatch) -> None:
    monkeypatch.setenv("API_TOKEN", "s3cr3t-value")
    secrets = SecretRegistry()
    engine = TemplateEngine(secrets)
    header = engine.render("Bearer {{ secret('API_TOKEN') }}", {})
    assert header == "Bearer s3cr3t-value"
    native = engine.render("{{ secret('API_TOKEN') }}", {})
    assert isinstance(native, SecretStr)
    assert "s3cr3t" not in repr(native)
    redacted = secrets.redact(
        {"headers": {"Authorization": header}, "list": [native, b"s3cr3t-value"]}
    )
    assert redacted == {
        "headers": {"Authorization": "Bearer [REDACTED]"},
        "list": ["[REDACTED]", b"[REDACTED]"],
    }


def test_missing_secret_and_bad_name(monkeypatch) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    engine = TemplateEngine()
    with pytest.raises(SecretError, match="secret 'NOPE' is not set"):
        engine.render("{{ secret('NOPE') }}", {}, workload="w", path="p")
    with pytest.raises(SecretError, match="non-empty name"):
        engine.render("{{ secret('') }}", {})


def test_longer_secrets_are_replaced_first() -> None:
    secrets = SecretRegistry(provider=lambda name: {"A": "abc", "B": "abcdef"}[name])
    secrets.lookup("A")
    secrets.lookup("B")
    assert secrets.redact_str("x abcdef y abc") == "x [REDACTED] y [REDACTED]"


def test_per_record_renderer_sees_secret_and_extra_names(monkeypatch) -> None:
    monkeypatch.setenv("REC_TOKEN", "rt-123")
    engine = TemplateEngine()
    render = engine.renderer(
        engine.compile("{{ record.n }}-{{ secret('REC_TOKEN') }}"), {"base": 1}
    )
    assert render(record={"n": 1}) == "1-rt-123"
    assert render(record={"n": 2}) == "2-rt-123"
    assert engine.secrets.redact_str("rt-123") == "[REDACTED]"
