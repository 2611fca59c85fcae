"""Run examples/artifact_upload.gxo.yaml against a throw-away moto S3 server.

Used by artifact_upload.test.gxo.yaml (``gxo test examples``); needs moto[server]
(a dev dependency). Usage: python artifact_moto.py WORKSPACE REPORT [more gxo run args]

Starts moto's standalone server on a free 127.0.0.1 port, runs the example with
fake credentials and ``-e s3_endpoint=...``, stops the server, and exits with the
run's exit status.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: list[str]) -> int:
    workspace, report, *extra = argv
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "S3_ACCESS_KEY": "example-access-key",
        "S3_SECRET_KEY": "example-secret-key-0123",
        "AWS_ACCESS_KEY_ID": "example-access-key",
        "AWS_SECRET_ACCESS_KEY": "example-secret-key-0123",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as answer:
                    answer.read()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print("moto server did not start", file=sys.stderr)
                    return 2
                time.sleep(0.05)
        command = [
            sys.executable,
            "-m",
            "gxo.cli",
            "run",
            str(HERE / "artifact_upload.gxo.yaml"),
            "--workspace",
            workspace,
            "--report",
            report,
            "-e",
            f"s3_endpoint={url}",
            *extra,
        ]
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
