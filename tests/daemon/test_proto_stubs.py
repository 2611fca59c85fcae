"""The committed gRPC stubs match the proto: regenerate into a temp dir and compare."""

from __future__ import annotations

from pathlib import Path

import pytest

from gxo.daemon.protogen import GENERATED, PROTO, ROOT, generate

pytest.importorskip("grpc_tools")


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    committed = ROOT / Path(PROTO).parent
    stale = [
        path.name for path in fresh if path.read_bytes() != (committed / path.name).read_bytes()
    ]
    assert not stale, f"stale gRPC stubs {stale}: run `make proto` and commit them"
    assert sorted(p.name for p in fresh) == sorted(GENERATED)


def test_service_wire_name() -> None:
    from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2

    service = daemon_pb2.DESCRIPTOR.services_by_name["GxoDaemon"]
    assert service.full_name == "gxo.daemon.v1.GxoDaemon"
    assert {m.name for m in service.methods} >= {
        "ApplyPlaybook",
        "RemovePlaybook",
        "ListWorkloads",
        "GetWorkloadStatus",
        "ListRuns",
        "StreamEvents",
        "GetLogs",
        "StopWorkload",
        "StartWorkload",
        "Health",
    }
