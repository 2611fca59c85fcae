"""Storage emulators on free loopback ports, for the ``gcp:gcs_sync`` and
``azure:blob_sync`` tests (``tests/`` is on ``sys.path`` under pytest)::

    # ruff: noqa: F811  (the fixtures are imported, then requested by name)
    from support.cloud_emulators import azurite, gcs_emulator  # noqa: F401

- ``gcs_emulator``: gcp-storage-emulator (PyPI, pure Python, a dev dependency) run as a
  subprocess, in memory; the fixture yields its endpoint URL.
- ``azurite``: Azurite's blob service (npm). Looked up as ``.cache/azurite`` in the
  repository (where ``.ci/run`` installs it: ``npm install --prefix .cache/azurite
  azurite``), else ``azurite-blob`` on ``PATH``. The fixture yields an :class:`Azurite`
  (endpoint, the well-known development account and key).

Both are session-scoped, stopped (process group terminated, reaped) at the session's end,
their data in a temporary directory removed then. A missing emulator skips the tests
locally and fails them under CI=true (a missing service is a failure there).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[2]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's documented development key (public, the same in every Azurite).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI=true: a missing emulator is a failure)")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(proc: subprocess.Popen[bytes], port: int, name: str, probe: str = "") -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode}")
        try:
            if probe:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{probe}", timeout=1) as a:
                    a.read()
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on 127.0.0.1:{port} within {STARTUP_TIMEOUT:.0f}s")


@contextlib.contextmanager
def _process(command: list[str], port: int, name: str, probe: str = "") -> Iterator[None]:
    proc = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: node's children go with it
    )
    try:
        _wait_port(proc, port, name, probe)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """Endpoint URL of gcp-storage-emulator (buckets created through its JSON API)."""
    script = Path(sys.executable).with_name("gcp-storage-emulator")
    found = str(script) if script.exists() else shutil.which("gcp-storage-emulator")
    if found is None:
        _missing("gcp-storage-emulator is not installed (pip install -e '.[dev]')")
    port = free_port()
    command = [str(found), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"]
    with _process(command, port, "gcp-storage-emulator", "/storage/v1/b"):
        yield f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Azurite:
    url: str  # the development account's blob endpoint, http://127.0.0.1:PORT/devstoreaccount1
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY


def azurite_command() -> str | None:
    local = ROOT / ".cache" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite's blob service on a free loopback port, its data in a temporary directory."""
    found = azurite_command()
    if found is None:
        _missing(
            "Azurite is not installed (npm install --prefix .cache/azurite azurite; "
            ".ci/run does it)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="gxo-azurite-") as location:
        command = [
            str(found),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            location,
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",  # else it reports to Application Insights (not loopback)
        ]
        with _process(command, port, "azurite-blob"):
            yield Azurite(f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}")
