"""Regenerate the daemon's gRPC stubs (``make proto``): ``python -m gxo.daemon.protogen [OUT]``.

The stubs are committed so that a user never needs grpcio-tools (a dev
dependency). The proto is compiled with the project root as include path, so the
generated ``*_pb2_grpc.py`` imports ``gxo.daemon.proto.gxo.daemon.v1.daemon_pb2``,
a real package path; the service keeps its wire name ``gxo.daemon.v1.GxoDaemon``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = "gxo/daemon/proto/gxo/daemon/v1/daemon.proto"
GENERATED = ("daemon_pb2.py", "daemon_pb2.pyi", "daemon_pb2_grpc.py")


def generate(out: Path = ROOT) -> list[Path]:
    """Compile the proto into ``out`` (the project root by default); returns the files written."""
    from grpc_tools import protoc  # dev dependency: only `make proto` and the staleness test

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")
    folder = out / Path(PROTO).parent
    return [folder / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT):
        print(path)
