"""A thin synchronous client of ``gxo.daemon.v1.GxoDaemon``.

Errors become :class:`CtlError` with the exit code ``gxo ctl`` uses: 1 the daemon
answered with an error, 2 an invalid playbook or request, 3 no daemon answers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from gxo.daemon.paths import default_socket
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc

__all__ = ["Client", "CtlError", "pb"]

CALL_TIMEOUT = 60.0  # seconds; apply returns once instances are started, not finished


class CtlError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def unreachable(path: Path, detail: str = "") -> CtlError:
    why = f" ({detail})" if detail else ""
    return CtlError(
        f"cannot reach the gxo daemon at {path}{why}; start one with `gxo daemon` "
        "(or point to another with --socket / GXO_SOCKET)",
        3,
    )


class Client:
    def __init__(self, socket: str | Path | None = None) -> None:
        self.path = default_socket(socket)
        if not self.path.exists():
            raise unreachable(self.path, "no such socket")
        # A unix socket path: grpc's "unix:" target takes it as is (absolute or relative).
        self.channel = grpc.insecure_channel(f"unix:{os.fspath(self.path)}")
        self.stub = pb_grpc.GxoDaemonStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def _error(self, exc: grpc.RpcError) -> CtlError:
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return unreachable(self.path, details or code.name)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return CtlError(details, 2)
        return CtlError(details or code.name, 1)

    def call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=CALL_TIMEOUT)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def stream(self, method: str, request: Any) -> Iterator[Any]:
        call = getattr(self.stub, method)(request)
        try:
            yield from call
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return
            raise self._error(exc) from None
        finally:
            call.cancel()

    # -- the RPCs ---------------------------------------------------------------------------

    def apply(self, source: str, path: str, variables: dict[str, Any]) -> Any:
        request = pb.ApplyPlaybookRequest(
            source=source, path=path, variables_json=json.dumps(variables) if variables else ""
        )
        return self.call("ApplyPlaybook", request)

    def health(self) -> Any:
        return self.call("Health", pb.HealthRequest())
