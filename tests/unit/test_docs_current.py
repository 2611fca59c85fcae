"""docs/modules/ is generated from the registry and must be current; module examples must be valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxo.modules import REGISTRY, Module, ModuleParams
from gxo.modules.base import ModuleSpec
from gxo.modules.docs import DOCS_DIR, check, generate, main, write
from gxo.modules.reference import example_problems, example_workloads


def test_committed_module_docs_are_current() -> None:
    problems = check(DOCS_DIR)
    assert problems == [], (
        "docs/modules/ is stale: run 'make docs' (python -m gxo.modules.docs --write)\n"
        + "\n".join(problems)
    )


def test_every_module_is_documented_in_its_layer_page() -> None:
    pages = generate()
    for spec in REGISTRY.all():
        page = pages[f"{spec.layer}.md"]
        assert f"## `{spec.name}`" in page
        assert f"({spec.layer}.md#" in pages["README.md"]
        for row in spec.params_model.model_json_schema().get("properties", {}):
            assert f"| `{row}` |" in page, f"{spec.name}: param {row} missing from {spec.layer}.md"


@pytest.mark.parametrize("spec", REGISTRY.all(), ids=lambda s: s.name)
def test_module_example_parses_and_its_params_validate(spec: ModuleSpec) -> None:
    assert example_problems(spec) == []
    assert example_workloads(spec), f"{spec.name}: the example has no workloads"


def test_example_problems_are_reported() -> None:
    class Fake(Module):
        """A module with a wrong example.

        Example:
            - name: one
              process:
                module: exec
                params: { command: [not, a, string], nope: 1, args: "{{ templated }}" }
        """

        class Params(ModuleParams):
            pass

        async def perform(self, ctx, params):  # pragma: no cover - never run
            return {}

    problems = example_problems(ModuleSpec("fake:thing", "system", Fake, ()))
    assert problems == [
        "example workload #1 (exec) params command: Input should be a valid string",
        "example workload #1 (exec) params nope: Extra inputs are not permitted",
        "the example does not use fake:thing",
    ]

    class NoExample(Fake):
        """No example here."""

    assert example_problems(ModuleSpec("fake:none", "system", NoExample, ())) == [
        "the docstring has no 'Example:' section"
    ]

    class BadYaml(Fake):
        """Broken.

        Example:
            - name: [unclosed
        """

    assert example_problems(ModuleSpec("fake:yaml", "system", BadYaml, ()))[0].startswith(
        "the example is not valid YAML"
    )


def test_write_then_check_detects_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    written = write(tmp_path)
    assert {p.name for p in written} == set(generate())
    assert check(tmp_path) == []
    assert write(tmp_path) == []  # nothing to do the second time
    assert main(["--check", "--dir", str(tmp_path)]) == 0

    (tmp_path / "system.md").write_text("edited by hand\n", encoding="utf-8")
    (tmp_path / "retired.md").write_text("old layer\n", encoding="utf-8")
    (tmp_path / "README.md").unlink()
    assert check(tmp_path) == [
        "system.md is out of date",
        "README.md is missing",
        "retired.md documents no registered module",
    ]
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path}/system.md is out of date" in err
    assert "run 'make docs'" in err

    assert main(["--write", "--dir", str(tmp_path)]) == 0
    assert check(tmp_path) == []
    assert not (tmp_path / "retired.md").exists()


def test_module_index_is_current() -> None:
    """The lazy-loading index lists every built-in (regenerate: make docs)."""
    import json
    from importlib import resources

    from gxo.modules.base import INDEX_FILE, build_index

    shipped = json.loads(resources.files("gxo.modules").joinpath(INDEX_FILE).read_text())
    assert shipped == build_index(), "gxo/modules/index.json is stale: run 'make docs'"


def test_resolving_one_module_imports_only_its_file() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom gxo.modules.base import REGISTRY\n"
        "spec, _ = REGISTRY.resolve('exec')\n"
        "spec2, warn = REGISTRY.resolve('generate:from_list')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('gxo.modules.') and m.count('.') == 3)\n"
        "print(spec.name, spec2.name, bool(warn), loaded)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == (
        "exec data:generate_from_list True ['gxo.modules.data.generate_from_list', 'gxo.modules.system.exec']"
    )
