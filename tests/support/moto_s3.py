"""moto's standalone server on a free loopback port, for S3 (and other AWS) module tests.

Use it from a test file (``tests/`` is on ``sys.path`` under pytest's default import mode)::

    # ruff: noqa: F811  (at the top: the fixture is imported, then requested by name)
    from support.moto_s3 import ACCESS_KEY, REGION, SECRET_KEY, moto_server  # noqa: F401

    def test_something(moto_server: str) -> None:
        ...  # moto_server is the endpoint URL, e.g. "http://127.0.0.1:40123"

The server is ``moto_server`` (``moto[server]``, a dev dependency) run as a subprocess,
started once per test session and stopped (terminated and reaped) at its end. The
fixture also sets fake AWS credentials and region in the process environment while
the server runs (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION), so clients
using the usual AWS chain reach moto without a real account. ``reset_moto(endpoint)``
drops every resource moto holds (its ``/moto-api/reset`` endpoint) when a test needs a
clean account.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-0123456789"
REGION = "us-east-1"

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_command(port: int) -> list[str]:
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script), "-H", "127.0.0.1", "-p", str(port)]
    found = shutil.which("moto_server")
    if found:
        return [found, "-H", "127.0.0.1", "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]


def _wait_ready(proc: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as answer:
                answer.read()
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"moto_server did not answer on {url} within {STARTUP_TIMEOUT:.0f}s")


@contextlib.contextmanager
def run_moto_server() -> Iterator[str]:
    """Start moto's standalone server; yield its endpoint URL; stop it on exit."""
    try:
        import moto.server  # noqa: F401
    except ImportError:  # pragma: no cover - dev dependency
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("moto[server] is not installed (CI=true: a missing service is a failure)")
        pytest.skip("moto[server] is not installed")
    port = free_port()
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }
    proc = subprocess.Popen(
        _moto_command(port),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(proc, url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


def reset_moto(endpoint: str) -> None:
    """Forget every bucket/object/resource moto holds."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Endpoint URL of the session's moto server; fake AWS credentials in the environment.

    Session-scoped: one server for the whole test session. While it runs, the process
    environment has fake credentials (restored at the end of the session).
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    patch.setenv("AWS_DEFAULT_REGION", REGION)
    patch.delenv("AWS_PROFILE", raising=False)
    patch.delenv("AWS_SESSION_TOKEN", raising=False)
    try:
        with run_moto_server() as url:
            yield url
    finally:
        patch.undo()
