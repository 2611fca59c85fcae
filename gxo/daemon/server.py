"""``gxo daemon``: the gRPC control plane (``gxo.daemon.v1.GxoDaemon``) on a unix socket,
and with ``--listen HOST:PORT`` on TCP with mutual TLS 1.3 (``gxo.daemon.security``).

The socket is created 0600 in a 0700 directory: its file permissions are the
authentication, and its clients are the local identity (``--local-identity``). TLS
clients are their certificate's CN. Every RPC passes the RBAC interceptor (``--rbac``)
and, with ``--audit-log``, leaves one JSON line.
SIGTERM/SIGINT: stop accepting RPCs, cancel instances (``--grace``), persist, remove
the socket, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket as socketlib
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from gxo.daemon import heap
from gxo.daemon.core import Daemon, DaemonError
from gxo.daemon.logsetup import redact_url
from gxo.daemon.options import DaemonOptions
from gxo.daemon.paths import default_socket
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2 as pb
from gxo.daemon.proto.gxo.daemon.v1 import daemon_pb2_grpc as pb_grpc

__all__ = ["DEFAULT_STATE", "GxoDaemonServicer", "default_socket", "run_daemon", "serve"]

log = logging.getLogger("gxo.daemon")

DEFAULT_STATE = "sqlite:///~/.gxo/state.db"
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, NUL included


class StartupError(Exception):
    """The daemon cannot start; ``exit_code`` 2 for usage, 1 otherwise."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def expand_state_url(url: str) -> str:
    """``sqlite:///~/x.db`` → an absolute path (SQLAlchemy does not expand ``~``)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url[len(prefix) :].startswith("~"):
        return prefix + str(Path(url[len(prefix) :]).expanduser())
    return url


def answers(path: Path) -> bool:
    """Whether something accepts connections on the unix socket ``path``."""
    probe = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def prepare_socket(path: Path) -> None:
    if len(str(path)) > MAX_SOCKET_PATH:
        raise StartupError(
            f"socket path is too long for a unix socket ({len(str(path))} > {MAX_SOCKET_PATH}): {path}",
            2,
        )
    folder = path.parent
    # Our own directory (created now, or the default ~/.gxo / $XDG_RUNTIME_DIR/gxo) is
    # made 0700; a directory the user named (--socket /tmp/x.sock) keeps its mode —
    # chmod-ing /tmp would break the system — and the 0600 socket still guards access.
    ours = not folder.exists() or folder in {
        Path.home() / ".gxo",
        Path(os.environ.get("XDG_RUNTIME_DIR") or "/nonexistent") / "gxo",
    }
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ours:
            os.chmod(folder, 0o700)
    except OSError as exc:
        raise StartupError(f"cannot create the socket directory {folder}: {exc.strerror}") from None
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):  # never delete a file given by mistake
            raise StartupError(f"{path} exists and is not a socket; choose another --socket", 2)
        if answers(path):
            raise StartupError(f"another gxo daemon is already answering on {path}")
        log.info("removing stale socket %s", path)
        path.unlink()


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


# -- the servicer ------------------------------------------------------------------------


def _status_pb(row: dict[str, Any]) -> pb.WorkloadStatus:
    msg = pb.WorkloadStatus(
        playbook=row.get("playbook") or "",
        workload=row.get("workload") or "",
        policy=row.get("policy") or "",
        status=row.get("status") or "",
        reason=row.get("reason") or "",
        restarts=int(row.get("restarts") or 0),
        next_run=row.get("next_run") or "",
        updated_at=row.get("updated_at") or "",
        last_run_id=row.get("last_run_id") or "",
    )
    if row.get("last_exit") is not None:
        msg.last_exit = int(row["last_exit"])
    details = {k: v for k, v in row.items() if k not in _STATUS_FIELDS}
    if details:  # a reconciler's own counters (event_driven: received, filtered, ...)
        msg.details_json = _json(details)
    return msg


# The fields of WorkloadStatus itself, and restart_times (a supervisor's internal record).
_STATUS_FIELDS = frozenset(
    {"playbook", "workload", "policy", "status", "reason", "restarts", "last_exit"}
    | {"next_run", "updated_at", "last_run_id", "restart_times"}
)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _paused_pb(row: dict[str, Any]) -> pb.Paused:
    schema = row.get("schema")
    return pb.Paused(
        token_id=row["id"],
        playbook=row["playbook"],
        workload=row["workload"],
        run_id=row["run_id"],
        prompt=row.get("prompt") or "",
        since=row.get("since") or "",
        expires_at=row.get("expires_at") or "",
        payload_schema_json="" if schema is None else _json(schema),
        approvers=list(row.get("approvers") or ()),
        member=row.get("member") or "",
    )


def _caller() -> Any:
    """The RPC's caller (set by the RBAC interceptor); None when served without it."""
    from gxo.daemon.security.interceptor import CALLER

    return CALLER.get()


def _may_answer(call: Any, playbook: str, data: dict[str, Any]) -> bool:
    """Whether a subscriber may resume the pause an event announces (RBAC + approvers)."""
    if call is None:
        return True  # no interceptor: an embedder's own in-process servicer
    from gxo.daemon.pauses import Caller

    if not call.may("ResumeWorkload", playbook):
        return False
    return Caller(call.identity.name, call.aliases()).approves(list(data.get("approvers") or []))


class GxoDaemonServicer(pb_grpc.GxoDaemonServicer):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def _call(self, context: grpc.aio.ServicerContext, coro: Any) -> Any:
        try:
            return await coro
        except DaemonError as exc:
            await context.abort(grpc.StatusCode[exc.code], exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")

    # The RPC methods keep the proto's names (gRPC looks them up by name).

    async def ApplyPlaybook(self, request, context):
        try:
            variables = json.loads(request.variables_json) if request.variables_json else {}
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"variables_json: {exc}")
        if not isinstance(variables, dict):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "variables_json must be an object"
            )
        diff = await self._call(context, self.daemon.apply(request.source, request.path, variables))
        return pb.ApplyPlaybookResponse(**diff)

    async def RemovePlaybook(self, request, context):
        removed = await self._call(context, self.daemon.remove(request.playbook))
        return pb.RemovePlaybookResponse(playbook=request.playbook, removed=removed)

    async def ListWorkloads(self, request, context):
        rows = await self._call(context, self.daemon.list_workloads(request.playbook))
        return pb.ListWorkloadsResponse(workloads=[_status_pb(r) for r in rows])

    async def GetWorkloadStatus(self, request, context):
        return _status_pb(await self._call(context, self.daemon.status(request.name)))

    async def ListRuns(self, request, context):
        rows = await self._call(context, self.daemon.runs(request.name, request.limit or 50))
        return pb.ListRunsResponse(
            runs=[
                pb.Run(
                    run_id=r.get("run_id") or "",
                    playbook=r.get("playbook") or "",
                    workload=r.get("workload") or "",
                    status=r.get("status") or "",
                    started_at=r.get("started_at") or "",
                    ended_at=r.get("ended_at") or "",
                    reason=r.get("reason") or "",
                    report_json=_json(r.get("report") or {}),
                    member=r.get("member") or "",
                )
                for r in rows
            ]
        )

    async def _stream(self, context, make: Any) -> AsyncIterator[Any]:
        try:
            feed = make()
        except DaemonError as exc:
            await context.abort(grpc.StatusCode[exc.code], exc.message)
        return feed

    async def StreamEvents(self, request, context):
        feed = self.daemon.stream_events(
            request.playbook, request.workload, request.follow, request.tail
        )
        call = _caller()
        async for e in feed:
            data = e["data"]
            if "token" in data and not _may_answer(call, e["playbook"], data):
                # A resume token goes only to subscribers allowed to resume that pause.
                data = {k: v for k, v in data.items() if k != "token"}
            yield pb.Event(
                seq=e["seq"],
                time=e["time"],
                kind=e["kind"],
                playbook=e["playbook"],
                workload=e["workload"],
                run_id=e["run_id"],
                data_json=_json(data),
            )

    async def GetLogs(self, request, context):
        feed = await self._stream(
            context, lambda: self.daemon.stream_logs(request.name, request.tail, request.follow)
        )
        async for e in feed:
            yield pb.LogLine(
                time=e["time"],
                playbook=e["playbook"],
                workload=e["workload"],
                run_id=e["run_id"],
                stream=e["stream"],
                level=e["level"],
                line=e["line"],
            )

    async def StopWorkload(self, request, context):
        row = await self._call(context, self.daemon.stop(request.name))
        return pb.WorkloadActionResponse(status=_status_pb(row), message="stopped")

    async def StartWorkload(self, request, context):
        row, run_id = await self._call(context, self.daemon.start(request.name))
        return pb.WorkloadActionResponse(status=_status_pb(row), run_id=run_id, message="started")

    async def Health(self, request, context):
        return pb.HealthResponse(pid=os.getpid(), **self.daemon.health())

    # -- paused workloads (gxo/daemon/pauses.py) ----------------------------------------

    async def ListPaused(self, request, context):
        call = _caller()
        rows = await self._call(context, self.daemon.pauses.list())
        return pb.ListPausedResponse(
            paused=[
                _paused_pb(r)
                for r in rows
                if (not request.playbook_filter or r["playbook"] == request.playbook_filter)
                and (call is None or call.may("ListPaused", r["playbook"]))
            ]
        )

    async def ResumeWorkload(self, request, context):
        try:
            payload = json.loads(request.payload_json) if request.payload_json else None
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"payload is not JSON: {exc}")
        return await self._decide(context, "ResumeWorkload", request, payload=payload)

    async def RejectWorkload(self, request, context):
        return await self._decide(context, "RejectWorkload", request, reason=request.reason)

    async def _decide(self, context, method: str, request: Any, **answer: Any) -> Any:
        from gxo.daemon.pauses import Caller, Refused

        book = self.daemon.pauses
        call = _caller()
        caller = Caller(call.identity.name, call.aliases()) if call else Caller("local")
        try:
            row = await book.find(
                token=request.token, run_id=request.run_id, workload=request.workload
            )
            target = f"{row['playbook']}/{row['workload']}"
            if call is not None:
                call.audit.update(target=target, run_id=row["run_id"], token_id=row["id"])
                if not call.may(method, row["playbook"]):  # a role limited to other playbooks
                    raise Refused(
                        "PERMISSION_DENIED",
                        f"permission denied: {caller.name} may not call {method} on {target}",
                    )
            if method == "ResumeWorkload":
                payload = answer["payload"]
                if call is not None:  # who resumed, with what (secret() values redacted)
                    call.audit["payload"] = book.redacted(row["run_id"], payload)
                decided = await book.resume(caller, row, payload)
                message = f"{target} resumed by {caller.name}"
            else:
                if call is not None:
                    call.audit["reason"] = answer["reason"]
                decided = await book.reject(caller, row, answer["reason"])
                message = f"{target} rejected by {caller.name}: {decided['reason']}"
        except Refused as exc:
            if call is not None:
                call.audit["refused"] = exc.message
            await context.abort(grpc.StatusCode[exc.code], exc.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
        return pb.PauseDecision(
            pause=_paused_pb(decided),
            state=decided["state"],
            decided_by=decided["decided_by"] or "",
            decided_at=decided["decided_at"] or "",
            message=message,
        )


# -- running ----------------------------------------------------------------------------


async def serve(socket_path: Path, options: DaemonOptions) -> int:
    from gxo.daemon.lifecycles import default_reconcilers
    from gxo.daemon.security.control import SecurityError, prepare
    from gxo.daemon.workspaces import Workspaces
    from gxo.errors import UsageError
    from gxo.modules.system._pdeathsig import set_parent_death_signal
    from gxo.state._sql_crypto import open_encrypted_state
    from gxo.state.sql import StateError

    try:  # --listen's TLS material, --rbac, --audit-log: checked before anything starts
        security = prepare(options)
    except SecurityError as exc:
        raise StartupError(str(exc), 2) from None
    prepare_socket(socket_path)
    # exec's commands die with the daemon even on SIGKILL: a restarted daemon must
    # never find a second copy of a service still running.
    set_parent_death_signal(True)
    url = expand_state_url(options.state)
    grace = options.grace
    try:  # encrypted at rest: --state-key-file, --state-key-cmd or ~/.gxo/state.key
        state = await asyncio.to_thread(
            open_encrypted_state,
            url,
            options.state_key_file,
            options.state_key_cmd,
            options.history,
        )
    except Exception as exc:
        code = 2 if isinstance(exc, StateError) else 1  # a bad store or key: usage
        raise StartupError(f"cannot open the state store {redact_url(url)}: {exc}", code) from None
    try:  # each playbook confined to <state dir>/workspaces/<name> plus --allow-path
        workspaces = await asyncio.to_thread(Workspaces.for_state, url, options.allow_paths)
    except UsageError as exc:
        await asyncio.to_thread(state.close)
        raise StartupError(str(exc), 2) from None
    daemon = Daemon(
        state, state_url=redact_url(url), socket=str(socket_path), workspaces=workspaces
    )
    daemon.require_sandbox = options.require_sandbox  # docs/sandbox.md
    daemon.reconcilers.update(default_reconcilers())  # supervise, scheduled, event_driven
    if options.http:  # the webhook: sources' HTTP listener; Daemon.shutdown closes it
        from gxo.daemon.http_listener import start_listener

        try:
            await start_listener(daemon.sources, options.http)
        except ValueError as exc:
            await asyncio.to_thread(state.close)
            raise StartupError(str(exc), 2) from None
    fleet_sync = None
    if options.fleet:
        from gxo.daemon.fleet import attach

        fleet_sync = attach(daemon, options.fleet, options.member, options.lease_ttl)
    # Every RPC, on the unix socket as over TLS, passes the RBAC interceptor (and audit).
    server = grpc.aio.server(interceptors=[security.interceptor(daemon)])
    pb_grpc.add_GxoDaemonServicer_to_server(GxoDaemonServicer(daemon), server)
    old_umask = os.umask(0o177)  # the socket file is born 0600: no window where others connect
    try:
        server.add_insecure_port(f"unix:{socket_path}")
        await server.start()
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, 0o600)
    try:
        listening = await security.start(socket_path)
    except SecurityError as exc:
        await server.stop(grace=None)
        await asyncio.to_thread(state.close)
        _remove(socket_path)
        raise StartupError(str(exc), 2) from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await daemon.restore()
        heap.enable()  # restored and applied playbooks are long-lived: freeze them
        heap.settle()
        log.info(
            "gxo daemon listening on %s (state %s, pid %d)",
            socket_path,
            daemon.state_url,
            os.getpid(),
        )
        if listening and security.tls is not None:
            log.info(
                "gxo daemon listening on %s (mutual TLS 1.3, trust %s, rbac %s)",
                listening,
                security.tls.trust,
                security.rbac_file or "built-in: local identity only",
            )
        await stop.wait()
        log.info("shutting down: no new requests, cancelling instances (grace %ss)", grace)
        daemon.events.close()  # followers' streams end, so server.stop need not wait for them
        daemon.logs.close()
        await security.stop_listening()
        await server.stop(grace=1.0)
        if fleet_sync is not None:
            fleet_sync.cancel()
        heap.cancel()
        await daemon.shutdown(grace)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await security.stop_listening()
        await server.stop(grace=None)
        await asyncio.to_thread(state.close)
        _remove(socket_path)
        security.close()
    log.info("gxo daemon stopped")
    return 0


def run_daemon(options: DaemonOptions) -> int:
    """The body of ``gxo daemon``; returns the exit code."""
    from gxo.console import err_console, print_error
    from gxo.daemon.logsetup import setup_logging

    log_format, state = options.log_format, options.state
    fleet, member = options.fleet, options.member
    if log_format not in ("text", "json"):
        print_error(err_console(), f"--log-format must be text or json, not {log_format!r}")
        return 2
    if fleet is not None and not state.startswith(("postgresql:", "postgres:", "postgresql+")):
        print_error(
            err_console(),
            f"--fleet {fleet}: a fleet shares its state, so --state must be postgresql://... "
            "(SQLite is one machine's file)",
        )
        return 2
    if member is not None and fleet is None:
        print_error(err_console(), "--member needs --fleet NAME")
        return 2
    try:
        setup_logging(options.log_level, log_format)
    except ValueError:
        print_error(err_console(), f"--log-level: unknown level {options.log_level!r}")
        return 2
    try:
        return asyncio.run(serve(default_socket(options.socket), options))
    except StartupError as exc:
        print_error(err_console(), str(exc))
        return exc.exit_code
