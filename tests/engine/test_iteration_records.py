"""A loop's iteration records carry each iteration's item, duration and rendered params
(secrets redacted), bounded so a long loop keeps a sane report and event stream."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from gxo.engine import runner
from gxo.engine.events import EventBus, EventKind
from gxo.template.secrets import REDACTED

SECRET = "s3cr3t-t0ken-value"


async def test_records_carry_item_duration_and_own_params(
    run_yaml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GXO_TEST_ITER_TOKEN", SECRET)
    bus = EventBus()
    events: list[dict[str, Any]] = []
    bus.add_listener(
        lambda e: events.append(dict(e.data)) if e.kind == EventKind.WORKLOAD_ITERATION else None
    )
    long_text = "y" * 500
    result = await run_yaml(
        f"""
        schemaVersion: "1.0.0"
        name: iterations
        workloads:
          - name: each
            loop:
              - plain
              - {{ k: 1 }}
              - "{long_text}"
              - "{{{{ secret('GXO_TEST_ITER_TOKEN') }}}}"
              - {{ long: "{"w" * 300}" }}
            loop_control: {{ parallel: 5 }}
            process:
              module: control:identity
              params: {{ value: "{{{{ item }}}}", index: "{{{{ loop_index }}}}" }}
          - name: failing
            loop: [1, 2]
            process:
              module: control:assert
              params: {{ condition: "item == 1", fail_message: "bad {{{{ item }}}}" }}
        """,
        bus=bus,
    )
    records = result.states["each"].iterations
    assert [r["item"] for r in records[:2]] == ["plain", {"k": 1}]
    assert records[2]["item"] == "y" * (runner.ITEM_MAX - 1) + "…"  # cut, said so
    assert records[3]["item"] == REDACTED  # a secret item is redacted
    assert records[4]["item"] == '{"long": "' + "w" * (runner.ITEM_MAX - 11) + "…"
    for i, r in enumerate(records):
        assert r["status"] == "Completed" and r["duration_ms"] >= 0
        assert r["params"]["index"] == i  # each iteration's own, not the latest
    assert records[0]["params"] == {"value": "plain", "index": 0}
    assert records[3]["params"]["value"] == REDACTED

    failing = result.states["failing"].iterations
    assert failing[0]["status"] == "Completed" and failing[1]["status"] == "Failed"
    # A failed iteration keeps its params (condition is evaluated by the module: raw).
    assert failing[1]["params"] == {"condition": "item == 1", "fail_message": "bad 2"}
    assert failing[1]["item"] == 2

    # The report and the events carry the same, and no secret anywhere.
    report = json.dumps(result.report(), default=str)
    assert SECRET not in report and SECRET not in json.dumps(events, default=str)
    entry = result.report()["workloads"]["each"]["iterations"][1]
    assert entry["item"] == {"k": 1} and entry["params"] == {"value": {"k": 1}, "index": 1}
    sent = [e for e in events if e.get("item") == "plain"]
    assert sent and sent[0]["params"] == {"value": "plain", "index": 0}
    assert "duration_ms" in sent[0]


async def test_params_are_bounded_per_iteration_and_per_loop(
    run_yaml: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "PARAMS_MAX", 60)
    monkeypatch.setattr(runner, "PARAMS_BUDGET", 70)
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: bounded
        workloads:
          - name: each
            loop: [1, 2, 3, 4, 5, 6]
            process:
              module: control:identity
              params: { v: "{{ item }}", pad: "{{ 'z' * 80 if item == 2 else 'a' }}" }
          - name: fails
            loop: [1, 2, 3, 4, 5, 6]
            process: { module: control:assert, params: { condition: "{{ item > 3 and false }}" } }
        """
    )
    records = result.states["each"].iterations
    assert "params" in records[0]  # 20 characters of the 70
    assert records[1]["params_omitted"].endswith("> 60")  # one iteration over its own cap
    kept = [r for r in records if "params" in r]
    assert sum(len(json.dumps(r["params"])) for r in kept) <= 70
    assert records[-1]["params_omitted"] == "loop budget spent"
    assert all("params" in r or "params_omitted" in r for r in records)
    # Failed iterations draw on a budget of their own: the first ones keep their params.
    failed = result.states["fails"].iterations
    assert all(r["status"] == "Failed" for r in failed)
    assert "params" in failed[0] and failed[-1]["params_omitted"] == "loop budget spent"


async def test_a_long_loop_keeps_a_bounded_report(run_yaml: Any) -> None:
    n = 10_000
    result = await run_yaml(
        textwrap.dedent(
            """
            schemaVersion: "1.0.0"
            name: long
            workloads:
              - name: many
                loop: "{{ range(N) | list }}"
                loop_control: { parallel: 100 }
                process:
                  module: control:identity
                  params: { n: "{{ item }}", text: "{{ 'x' * 300 }}" }
            """
        ).replace("N", str(n))
    )
    records = result.states["many"].iterations
    assert len(records) == n and records[-1]["item"] == n - 1
    params_chars = sum(len(json.dumps(r["params"])) for r in records if "params" in r)
    assert 0 < params_chars <= runner.PARAMS_BUDGET
    iterations = json.dumps(result.report()["workloads"]["many"]["iterations"])
    # ~110 characters a record (index, status, item, attempts, duration, the omission)
    # besides the params budget: not 10,000 copies of the params.
    assert len(iterations) < runner.PARAMS_BUDGET + n * 140
