"""Small kernel parts used mostly through the CLI: variables, durations, reports, module index."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gxo.config.durations import format_duration, parse_duration
from gxo.config.variables import load_vars_file, parse_extra_vars
from gxo.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("1m30s", 90),
        ("2h", 7200),
        ("1.5s", 1.5),
        ("250us", 0.00025),
        ("3ns", 3e-9),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5 minutes", "10", "1x", "-1s", -1, True, None, [1]])
def test_parse_duration_rejects(bad) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.2, "200ms"), (1, "1s"), (90, "1m30s"), (3600, "1h"), (3725.5, "1h2m5.5s")],
)
def test_format_duration(seconds, text) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_extra_vars_forms_and_precedence(tmp_path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("a: 1\nb: [x]\n")
    got = parse_extra_vars(
        ["n=3", "t=true", "s=hello", "e=", "l=[1, 2]", f"@{f}", '{"j": {"k": 1}}', "n=4", "odd=: x"]
    )
    assert got == {
        "n": 4,
        "t": True,
        "s": "hello",
        "e": "",
        "l": [1, 2],
        "a": 1,
        "b": ["x"],
        "j": {"k": 1},
        "odd": ": x",
    }
    assert parse_extra_vars(None) == {}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("novalue", "expected key=value"),
        ("1bad=x", "expected key=value"),
        ("{not json", "invalid JSON"),
        ("[1, 2]=x", "expected key=value"),
        ('{"1x": 1}', "variable name '1x' must match"),
        ("@/no/such/file.yaml", "cannot read vars file"),
    ],
)
def test_extra_vars_errors(item, message) -> None:
    with pytest.raises(UsageError, match=message):
        parse_extra_vars([item])


def test_vars_file_errors(tmp_path) -> None:
    (tmp_path / "list.yaml").write_text("- 1\n")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(UsageError, match="must contain a mapping"):
        load_vars_file(tmp_path / "list.yaml")
    with pytest.raises(UsageError, match="not valid YAML/JSON"):
        load_vars_file(tmp_path / "bad.yaml")
    assert load_vars_file(tmp_path / "empty.yaml") == {}


async def test_report_written_atomically_with_optional_fields(run_yaml, tmp_path) -> None:
    from gxo.engine.report import build_report, write_report

    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: rep
        workloads:
          - name: l
            loop: [1, 2]
            process: { module: control:identity, params: { v: "{{ item }}" } }
          - name: s
            when: "false"
            process: { module: control:identity, params: {} }
        """
    )
    target = tmp_path / "deep" / "r.json"
    write_report(result, target)
    data = json.loads(target.read_text())
    assert data == build_report(result) | {"started_at": data["started_at"]}
    assert [i["status"] for i in data["workloads"]["l"]["iterations"]] == ["Completed", "Completed"]
    assert data["workloads"]["s"]["reason"] == "when condition is false"
    assert list(tmp_path.joinpath("deep").iterdir()) == [target]  # no temp file left behind


def test_module_index_cli_reports_current_and_stale(tmp_path, monkeypatch) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gxo.modules", "--check"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "is current" in out.stdout
    from gxo.modules.__main__ import main

    assert main([]) == 0


def test_module_context_is_importable_lazily_from_gxo_modules() -> None:
    import gxo.modules as modules
    from gxo.engine.context import ModuleContext

    assert modules.ModuleContext is ModuleContext
    with pytest.raises(AttributeError):
        _ = modules.NoSuchThing  # type: ignore[attr-defined]


def test_schema_module_main_prints_the_generated_schema() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "gxo.config.schema"], capture_output=True, text=True, check=True
    )
    from gxo.config.schema import generated_text

    assert out.stdout == generated_text()


def test_render_playbook_vars_in_order_strict_and_lenient() -> None:
    from gxo.config.variables import render_playbook_vars
    from gxo.errors import TemplateError
    from gxo.template import TemplateEngine

    pvars = {"env": "dev", "base": "https://{{ env }}.x", "bad": "{{ 1 / 0 }}", "port": "{{ p }}"}
    with pytest.raises(TemplateError, match=r"vars\.bad"):
        render_playbook_vars(pvars, {"p": 80}, TemplateEngine())
    rendered, problems = render_playbook_vars(
        pvars, {"env": "prod", "p": 80}, TemplateEngine(), lenient=True
    )
    assert rendered == {"base": "https://prod.x", "bad": "{{ 1 / 0 }}", "port": 80}
    assert len(problems) == 1 and problems[0].startswith(
        "var 'bad' could not be rendered (kept as text)"
    )
