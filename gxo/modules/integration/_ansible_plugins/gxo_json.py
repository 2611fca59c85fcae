"""An Ansible stdout callback printing one JSON object per event, as it happens.

``ansible:playbook`` runs ansible-playbook with ``ANSIBLE_STDOUT_CALLBACK=gxo_json``
and this directory in ``ANSIBLE_CALLBACK_PLUGINS``, then reads stdout line by line.
Each line is ``{"event": ..., ...}``:

    {"event": "play", "name": ...}
    {"event": "task", "name": ..., "play": ...}
    {"event": "result", "status": "ok|changed|failed|skipped|unreachable",
     "host": ..., "task": ..., "play": ..., "ignored": bool, "result": {...}}
    {"event": "stats", "hosts": {host: {ok, changed, failures, unreachable, skipped, rescued, ignored}}}
    {"event": "warning", "message": ...}

Results are Ansible's own (``no_log`` results arrive censored), minus internal keys.
Lines from Ansible not written by this plugin (warnings to stderr) are not JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: gxo_json
    type: stdout
    short_description: one JSON object per event (GXO's ansible:playbook)
    description: Prints plays, tasks, per-host results and stats as JSON lines.
"""

MAX_TEXT = 4000
DROP = ("invocation", "_ansible_no_log", "_ansible_verbose_always", "_ansible_verbose_override")


def _clean(value: Any, depth: int = 0) -> Any:
    if depth > 6:
        return "..."
    if isinstance(value, dict):
        return {
            str(k): _clean(v, depth + 1)
            for k, v in value.items()
            if k not in DROP and not str(k).startswith("_ansible")
        }
    if isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in value[:200]]
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "..."
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "gxo_json"

    def __init__(self) -> None:
        super().__init__()
        self._play = ""
        self._task = ""

    def _emit(self, record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        sys.stdout.flush()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play.get_name().strip()
        self._emit({"event": "play", "name": self._play})

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task = task.get_name().strip()
        self._emit({"event": "task", "name": self._task, "play": self._play})

    def v2_playbook_on_handler_task_start(self, task: Any) -> None:
        self._task = task.get_name().strip()
        self._emit({"event": "task", "name": self._task, "play": self._play, "handler": True})

    def _result(self, result: Any, status: str, **extra: Any) -> None:
        raw = dict(getattr(result, "_result", {}) or {})
        if status == "ok" and raw.get("changed"):
            status = "changed"
        self._emit(
            {
                "event": "result",
                "status": status,
                "host": result._host.get_name(),
                "task": result._task.get_name().strip(),
                "play": self._play,
                "result": _clean(raw),
                **extra,
            }
        )

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result, "ok")

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result, "failed", ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, "skipped")

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result, "unreachable")

    def v2_playbook_on_stats(self, stats: Any) -> None:
        hosts = {}
        for host in sorted(stats.processed.keys()):
            s = stats.summarize(host)
            hosts[host] = {
                "ok": s.get("ok", 0),
                "changed": s.get("changed", 0),
                "failures": s.get("failures", 0),
                "unreachable": s.get("unreachable", 0),
                "skipped": s.get("skipped", 0),
                "rescued": s.get("rescued", 0),
                "ignored": s.get("ignored", 0),
            }
        self._emit({"event": "stats", "hosts": hosts})

    def v2_playbook_on_no_hosts_matched(self) -> None:
        self._emit({"event": "warning", "message": "no hosts matched"})
