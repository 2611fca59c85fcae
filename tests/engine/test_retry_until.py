"""``retry.until``: retry while a condition over the attempt's summary (``result``) is false."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from gxo.config.loader import load_playbook
from gxo.engine.events import EventBus, EventKind
from gxo.errors import PlaybookValidationError

COUNTER = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo $n"


def _playbook(until: str, attempts: int = 5, extra: str = "") -> str:
    return f"""
        schemaVersion: "1.0.0"
        name: polling
        vars: {{ wanted: 3 }}
        workloads:
          - name: poll
            process: {{ module: exec, params: {{ command: "{COUNTER}", shell: true }} }}
            retry: {{ attempts: {attempts}, delay: 0s, until: "{until}" }}
            register: polled
            {extra}
          - name: after
            process: {{ module: control:identity, params: {{ got: "{{{{ polled.stdout }}}}" }} }}
    """


async def test_until_retries_until_the_condition_holds(run_yaml: Any, tmp_path) -> None:
    bus = EventBus()
    retries: list[dict[str, Any]] = []
    bus.add_listener(
        lambda e: retries.append(e.data) if e.kind is EventKind.WORKLOAD_RETRYING else None
    )
    result = await run_yaml(
        _playbook("result.stdout | int >= wanted"), workspace=str(tmp_path), bus=bus
    )
    assert result.status == "Completed"
    assert result.states["poll"].attempts == 3
    assert result.states["after"].summary == {"got": "3"}
    assert len(retries) == 2
    assert "until condition 'result.stdout | int >= wanted' is still false" in retries[0]["error"]


async def test_until_exhausted_fails_and_registers_the_last_summary(
    run_yaml: Any, tmp_path
) -> None:
    result = await run_yaml(
        _playbook("{{ result.stdout == '99' }}", attempts=2, extra="ignore_errors: true"),
        workspace=str(tmp_path),
    )
    poll = result.states["poll"]
    assert poll.status.value == "Failed" and poll.attempts == 2
    assert poll.error == (
        "until condition \"{{ result.stdout == '99' }}\" is still false after 2 attempt(s)"
    )
    assert poll.summary["stdout"] == "2"  # the last attempt's summary is registered
    assert result.states["after"].summary == {"got": "2"}


async def test_until_with_a_loop_and_a_render_error(run_yaml: Any, tmp_path) -> None:
    result = await run_yaml(
        """
        schemaVersion: "1.0.0"
        name: looped
        workloads:
          - name: each
            loop: [1, 2]
            process: { module: control:identity, params: { n: "{{ item }}" } }
            retry: { attempts: 3, delay: 0s, until: "result.n == item" }
          - name: broken
            process: { module: control:identity, params: { n: 1 } }
            retry: { attempts: 3, delay: 0s, until: "result.n + 'x'" }
        """,
        workspace=str(tmp_path),
    )
    assert result.states["each"].status.value == "Completed"
    assert result.states["each"].attempts == 1
    broken = result.states["broken"]
    assert broken.status.value == "Failed" and broken.attempts == 1  # not retried
    assert broken.error.startswith("param 'retry.until': TypeError: unsupported operand")


@pytest.mark.parametrize(
    ("until", "message", "line"),
    [
        ("result.x ==", "retry.until: template syntax error", 6),
        ("nope.x == 1", "retry.until: 'nope' is not defined", 6),
        ("res.x == 1", "reads the workload's own register key 'res'", 6),
        ("  ", "retry.until is empty", 6),
    ],
)
def test_until_is_validated_at_load_time(until: str, message: str, line: int) -> None:
    text = textwrap.dedent(
        f"""\
        schemaVersion: "1.0.0"
        name: bad
        workloads:
          - name: w
            process: {{ module: control:identity, params: {{}} }}
            retry: {{ attempts: 2, until: "{until}" }}
            register: res
        """
    )
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(text=text, name="bad.gxo.yaml")
    assert message in str(info.value)
    assert f"bad.gxo.yaml:{line}" in str(info.value)


def test_until_without_attempts_is_a_warning() -> None:
    text = textwrap.dedent(
        """\
        schemaVersion: "1.0.0"
        name: once
        workloads:
          - name: w
            process: { module: control:identity, params: {} }
            retry: { until: "result == {}" }
        """
    )
    loaded = load_playbook(text=text, name="once.gxo.yaml")
    assert loaded.warnings == [
        "once.gxo.yaml:6:14: workload 'w': retry.until with attempts: 1 checks the condition "
        "once and never retries (set attempts)"
    ]
