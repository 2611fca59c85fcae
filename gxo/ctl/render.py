"""How ``gxo ctl`` prints replies: rich tables on stdout, or JSON (``-o json``).

Streams (logs, events) print one line per item; with ``-o json`` one JSON object
per line, so ``gxo ctl events -f -o json | jq`` works.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = [
    "action",
    "apply",
    "decision",
    "event",
    "log_line",
    "paused",
    "removed",
    "runs",
    "statuses",
]

_COLOUR = {
    "Completed": "green",
    "Running": "cyan",
    "Failed": "red",
    "Skipped": "yellow",
    "Pending": "dim",
    "Stopped": "magenta",
    "Restarting": "yellow",
    "Paused": "blue",
}


def _out() -> Console:
    # Piped output is not cut to 80 columns: run ids and reasons stay whole for grep/awk.
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 250)


def _dump(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _line(value: Any) -> None:
    sys.stdout.write(json.dumps(value, sort_keys=True) + "\n")
    sys.stdout.flush()


def _dict(message: Any) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _status(value: str) -> str:
    colour = _COLOUR.get(value)
    return f"[{colour}]{escape(value)}[/]" if colour else escape(value)


def apply(reply: Any, as_json: bool) -> None:
    data = _dict(reply)
    if as_json:
        _dump(data)
        return
    out = _out()
    out.print(f"playbook [bold]{escape(reply.playbook)}[/] applied")
    for label, colour in (
        ("added", "green"),
        ("changed", "yellow"),
        ("removed", "red"),
        ("unchanged", "dim"),
    ):
        names = list(getattr(reply, label))
        if names:
            out.print(f"  [{colour}]{label:<9}[/] {escape(', '.join(names))}")
    if reply.started:
        out.print(f"  started   {escape(', '.join(reply.started))}")
    for warning in reply.warnings:
        Console(stderr=True, highlight=False).print(f"[yellow]warning:[/] {escape(warning)}")


def _status_rows(rows: list[Any]) -> list[dict[str, Any]]:
    data = []
    for row in rows:
        d = _dict(row)
        d["last_exit"] = row.last_exit if row.HasField("last_exit") else None
        d.update(json.loads(d.pop("details_json", "") or "{}"))  # policy-specific fields
        d.setdefault("member", "")  # fleet: the member running it ("" outside a fleet)
        data.append(d)
    return data


def statuses(rows: list[Any], as_json: bool) -> None:
    data = _status_rows(rows)
    if as_json:
        _dump(data)
        return
    if not data:
        _out().print("no workloads: apply a playbook with `gxo ctl apply -f FILE`")
        return
    table = Table(box=None, pad_edge=False)
    fleet = any(d["member"] for d in data)  # the MEMBER column only in a fleet
    for column in (
        "PLAYBOOK",
        "WORKLOAD",
        "POLICY",
        "STATUS",
        *(("MEMBER",) if fleet else ()),
        "RESTARTS",
        "LAST EXIT",
        "NEXT RUN",
        "REASON",
    ):
        table.add_column(column)
    for d in data:
        member = (escape(d["member"]),) if fleet else ()
        table.add_row(
            escape(d["playbook"]),
            escape(d["workload"]),
            d["policy"],
            _status(d["status"]),
            *member,
            str(d["restarts"]),
            "" if d["last_exit"] is None else str(d["last_exit"]),
            d["next_run"],
            escape(" ".join(filter(None, (d["reason"], _counters(d))))),
        )
    _out().print(table)


def _counters(d: dict[str, Any]) -> str:
    """An event_driven workload's counters, for the REASON column."""
    if "received" not in d:
        return ""
    names = ("received", "filtered", "dropped", "in_flight", "queued", "completed", "failed")
    return "(" + ", ".join(f"{n.replace('_', ' ')} {d.get(n, 0)}" for n in names) + ")"


def runs(rows: list[Any], as_json: bool) -> None:
    if as_json:
        data = []
        for row in rows:
            d = _dict(row)
            d["report"] = json.loads(d.pop("report_json") or "{}")
            data.append(d)
        _dump(data)
        return
    table = Table(box=None, pad_edge=False)
    fleet = any(getattr(r, "member", "") for r in rows)  # the MEMBER column only in a fleet
    for column in ("RUN", "WORKLOAD", "STATUS", *(("MEMBER",) if fleet else ()), "STARTED"):
        table.add_column(column)
    table.add_column("ENDED")
    table.add_column("REASON")
    for r in rows:
        member = (escape(r.member),) if fleet else ()
        table.add_row(
            r.run_id,
            escape(r.workload),
            _status(r.status),
            *member,
            r.started_at,
            r.ended_at,
            escape(r.reason),
        )
    _out().print(table)


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S.%f")[:-3]


def log_line(line: Any, as_json: bool) -> None:
    if as_json:
        _line(_dict(line))
        return
    marker = "!" if line.stream == "stderr" else " "
    sys.stdout.write(f"{_clock(line.time)} {marker} {line.line}\n")
    sys.stdout.flush()


def event(e: Any, as_json: bool) -> None:
    data = json.loads(e.data_json or "{}")
    if as_json:
        d = _dict(e)
        d["data"] = data
        del d["data_json"]
        _line(d)
        return
    where = f"{e.playbook}/{e.workload}" if e.workload else e.playbook
    detail = data.get("status") or data.get("line") or data.get("message") or ""
    if e.kind == "workload_paused":  # the token only in -o json (to those allowed)
        detail = f"{data.get('prompt') or ''} (token id {data.get('token_id')})"
    sys.stdout.write(f"{_clock(e.time)} {e.kind:<18} {where} {detail}\n".rstrip() + "\n")
    sys.stdout.flush()


def action(reply: Any, as_json: bool) -> None:
    if as_json:
        data = _dict(reply)
        data["status"] = _status_rows([reply.status])[0]
        _dump(data)
        return
    s = reply.status
    run = f" (run {reply.run_id})" if reply.run_id else ""
    _out().print(
        f"{escape(s.playbook)}/{escape(s.workload)}: {reply.message}{run}; status {_status(s.status)}"
    )


def removed(reply: Any, as_json: bool) -> None:
    if as_json:
        _dump(_dict(reply))
        return
    _out().print(
        f"playbook [bold]{escape(reply.playbook)}[/] removed ({len(reply.removed)} workloads)"
    )


def _pause_dict(p: Any) -> dict[str, Any]:
    d = {
        "token_id": p.token_id,
        "playbook": p.playbook,
        "workload": p.workload,
        "run_id": p.run_id,
        "prompt": p.prompt,
        "since": p.since,
        "expires_at": p.expires_at or None,
        "payload_schema": json.loads(p.payload_schema_json) if p.payload_schema_json else None,
        "approvers": list(p.approvers),
        "member": p.member or None,
    }
    return d


def paused(rows: list[Any], as_json: bool) -> None:
    if as_json:
        _dump([_pause_dict(p) for p in rows])
        return
    if not rows:
        _out().print("no paused workloads")
        return
    table = Table(box=None, header_style="bold")
    fleet = any(p.member for p in rows)  # the MEMBER column only in a fleet
    columns = ("WORKLOAD", "RUN", *(("MEMBER",) if fleet else ()), "SINCE", "EXPIRES")
    for column in (*columns, "TOKEN ID", "PROMPT"):
        table.add_column(column)
    for p in rows:
        table.add_row(
            escape(f"{p.playbook}/{p.workload}"),
            escape(p.run_id),
            *((escape(p.member),) if fleet else ()),
            escape(p.since),
            escape(p.expires_at or "-"),
            escape(p.token_id),
            escape(p.prompt),
        )
    _out().print(table)


def decision(reply: Any, as_json: bool) -> None:
    if as_json:
        _dump(
            {
                "state": reply.state,
                "decided_by": reply.decided_by,
                "decided_at": reply.decided_at,
                "message": reply.message,
                "pause": _pause_dict(reply.pause),
            }
        )
        return
    _out().print(escape(reply.message))
