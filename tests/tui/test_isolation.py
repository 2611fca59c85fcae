"""The kernel never imports the front end, and the front end loads Textual only when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRONT_END = ("textual", "gxo.tui")


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "code",
    [
        "import gxo.api",
        "import gxo.runtime",
        "import gxo.cli",
        "from gxo.modules.base import REGISTRY; REGISTRY.all()",
        "import gxo.engine.scheduler, gxo.engine.runner, gxo.config.loader",
    ],
)
def test_kernel_and_cli_do_not_import_the_tui(code: str) -> None:
    loaded = _loaded_after(code)
    assert not [m for m in loaded if m.split(".")[0] == "textual" or m.startswith("gxo.tui")]


def test_importing_gxo_tui_does_not_load_textual() -> None:
    loaded = _loaded_after("import gxo.tui")
    assert "gxo.tui" in loaded
    assert not [m for m in loaded if m.split(".")[0] == "textual"]


def test_stylesheet_ships_with_the_package() -> None:
    from importlib.resources import files

    assert files("gxo.tui").joinpath("gxo.tcss").is_file()
