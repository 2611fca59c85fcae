"""The kernel never imports a front end, and the CLI starts without heavy libraries.

Checked in fresh interpreters: ``sys.modules`` after importing every kernel
package and every registered module, and ``python -X importtime`` of real
``gxo`` commands (which lists every module the command imported).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONT_ENDS = ("textual", "prompt_toolkit", "typer", "click", "gxo.tui", "gxo.repl")
HEAVY = (
    "textual",
    "prompt_toolkit",
    "httpx",
    "networkx",
    "sqlalchemy",
    "grpc",
    "psycopg",
    "pymysql",
    "watchfiles",
    "regex",  # only regex_search / regex_replace need it
    "croniter",
    "nats",
    "redis",
    "aio_pika",
    "aiomqtt",
    # gcp:* and azure:* client libraries (imported when such a workload runs)
    "google.cloud",
    "google.auth",
    "google.api_core",
    "azure",
    "aiohttp",
)

_IMPORT_KERNEL = """
import importlib, json, pkgutil, sys

import gxo.api, gxo.config, gxo.engine, gxo.errors, gxo.modules, gxo.state, gxo.template
for package in (gxo.config, gxo.engine, gxo.state, gxo.template):
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
from gxo.modules.base import REGISTRY
from gxo.modules import testkit  # the module authors' test double is kernel too

specs = REGISTRY.all()
print(json.dumps({"modules": len(specs), "loaded": sorted(sys.modules)}))
"""


def _loaded_by(name: str, loaded: list[str] | set[str]) -> list[str]:
    return sorted(m for m in loaded if m == name or m.startswith(name + "."))


def _importtime(*args: str, cwd: Path) -> set[str]:
    """Every module a ``gxo`` command imports, from ``-X importtime`` (stderr)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gxo.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    modules = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                modules.add(name)
    assert "gxo.errors" in modules  # the parse worked (gxo.cli itself runs as __main__)
    return modules


def test_kernel_and_modules_import_no_front_end() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_KERNEL], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["modules"] > 0
    for name in FRONT_ENDS:
        assert _loaded_by(name, result["loaded"]) == [], f"the kernel imports {name}"


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    modules = _importtime("--help", cwd=tmp_path)
    for name in HEAVY:
        assert _loaded_by(name, modules) == [], f"'gxo --help' imports {name}"


@pytest.mark.parametrize("command", [("repl", "--help"), ("validate",)])
def test_commands_import_heavy_libraries_only_when_used(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    args = list(command)
    if command == ("validate",):
        # validating loads every module file: none may import a heavy library at top level
        playbook = tmp_path / "p.gxo.yaml"
        playbook.write_text(
            'schemaVersion: "1.0.0"\nname: p\nworkloads:\n  - { name: w, process: { module: exec, params: { command: "true" } } }\n',
            encoding="utf-8",
        )
        args.append(str(playbook))
    modules = _importtime(*args, cwd=tmp_path)
    for name in HEAVY:
        assert _loaded_by(name, modules) == [], f"'gxo {' '.join(command)}' imports {name}"
