"""Third-party module packages for the module-signing tests (docs/module-signing.md).

Each package registers ``<name>:greet`` and, when imported, writes a marker file: a
test that expects a package refused before import asserts the marker is absent.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

PLAYBOOK = """\
schemaVersion: "1.0.0"
name: third_party
workloads:
  - name: g
    process: {{ module: "{name}:greet", params: {{ who: gxo }} }}
"""


def write_package(root: Path, name: str, marker: Path, *, helper: bool = True) -> Path:
    """``root/name/`` with ``__init__.py`` (and ``helper.py``, imported relatively)."""
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            f'''\
            """Third-party test modules."""
            from pathlib import Path
            from typing import Any

            from pydantic import Field

            from gxo.modules.base import Module, ModuleParams, register

            Path({str(marker)!r}).write_text("imported")
            {"from .helper import greeting" if helper else "greeting = 'hello'"}


            @register("{name}:greet", layer="application")
            class Greet(Module):
                """Greet someone.

                Example:
                    g:
                      module: {name}:greet
                      params: {{ who: world }}
                """

                class Params(ModuleParams):
                    who: str = Field(..., description="Who to greet")

                summary = {{"greeting": "the greeting"}}

                async def perform(self, ctx: Any, params: Params) -> dict[str, Any]:
                    return {{"greeting": f"{{greeting}} {{params.who}}"}}
            '''
        ),
        encoding="utf-8",
    )
    if helper:
        (pkg / "helper.py").write_text('greeting = "hello"\n', encoding="utf-8")
    return pkg


def playbook(path: Path, name: str) -> Path:
    path.write_text(PLAYBOOK.format(name=name), encoding="utf-8")
    return path
