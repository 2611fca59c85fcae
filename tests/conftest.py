"""Shared fixtures. Every test runs with an isolated HOME and working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOKS = ROOT / "tests" / "playbooks"
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME and cwd; no GXO_* settings leak in from the developer's shell."""
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("work")
    monkeypatch.setenv("HOME", str(home))
    for key in list(os.environ):
        if key.startswith("GXO_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(work)
    return work


@pytest.fixture(autouse=True)
def _restore_registry():
    """Modules a test registers (``tests:*``) do not outlive the test."""
    from gxo.modules.base import REGISTRY

    specs, aliases = dict(REGISTRY._specs), dict(REGISTRY._aliases)
    yield
    for name in set(REGISTRY._specs) - set(specs):
        if not REGISTRY._specs[name].cls.__module__.startswith("gxo."):
            del REGISTRY._specs[name]
    for name in set(REGISTRY._aliases) - set(aliases):
        if REGISTRY._aliases[name] not in REGISTRY._specs:
            del REGISTRY._aliases[name]


@pytest.fixture
def write_playbook(tmp_path: Path) -> Callable[..., Path]:
    """Write dedented YAML to a file and return its path."""

    def write(text: str, name: str = "playbook.gxo.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        return path

    return write


@pytest.fixture
def run_yaml() -> Callable[..., Any]:
    """``await run_yaml(text, **engine_options)`` → RunResult."""
    from gxo.modules.testkit import run_playbook_text

    async def run(text: str, **options: Any) -> Any:
        return await run_playbook_text(textwrap.dedent(text).lstrip(), **options)

    return run


@pytest.fixture
def gxo() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``gxo`` command in a subprocess: ``gxo("run", "x.yaml")``."""

    def call(
        *args: str,
        timeout: float = 60,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "gxo.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=full_env,
            cwd=cwd,
        )

    return call


def service_available(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def require_service() -> Callable[[str, int, str], None]:
    """Skip when a loopback service is down — except in CI, where that is a failure."""

    def require(host: str, port: int, what: str) -> None:
        if service_available(host, port):
            return
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(
                f"{what} is not reachable at {host}:{port} (CI=true: a missing service is a failure)"
            )
        pytest.skip(f"{what} is not reachable at {host}:{port}")

    return require
