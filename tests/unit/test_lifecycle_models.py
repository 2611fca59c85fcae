"""Lifecycle fields of supervise, scheduled and event_driven workloads: defaults, validation, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gxo.config.cron import parse_cron
from gxo.config.loader import load_playbook
from gxo.config.models import (
    BackoffConfig,
    CatchupPolicy,
    ConcurrencyPolicy,
    LifecyclePolicy,
    OverflowStrategy,
    RestartPolicy,
)
from gxo.errors import PlaybookValidationError

HEAD = 'schemaVersion: "1.0.0"\nname: t\nworkloads:\n'
PROCESS = "    process: { module: exec, params: { command: ls } }\n"


def messages(text: str) -> list[str]:
    with pytest.raises(PlaybookValidationError) as info:
        load_playbook(text=text, name="pb.yaml")
    return [str(p) for p in info.value.problems] or [str(info.value)]


def test_supervise_defaults_are_the_issues() -> None:
    lc = LifecyclePolicy(policy="supervise")
    assert lc.restart_policy == RestartPolicy.on_failure
    assert lc.backoff == BackoffConfig(initial=1, max=300, factor=2.0, jitter=0.2, reset_after=60)
    assert (lc.max_restarts, lc.restart_window, lc.stop_timeout) == (5, 60.0, 10.0)
    # Nothing of another policy is filled in.
    assert (lc.cron, lc.timezone, lc.concurrency, lc.catchup) == (None, None, None, None)


def test_scheduled_defaults() -> None:
    lc = LifecyclePolicy(policy="scheduled", cron="@daily")
    assert (lc.concurrency, lc.catchup, lc.timezone) == (
        ConcurrencyPolicy.forbid,
        CatchupPolicy.none,
        None,
    )
    assert lc.restart_policy is None and lc.backoff is None and lc.max_restarts is None


def test_event_driven_defaults() -> None:
    lc = LifecyclePolicy(policy="event_driven", source="nats://127.0.0.1:4222/x")
    assert (lc.max_concurrency, lc.queue, lc.overflow, lc.filter) == (
        4,
        1000,
        OverflowStrategy.block,
        None,
    )
    assert lc.cron is None and lc.restart_policy is None
    lc = LifecyclePolicy(policy="event_driven", source="file:///x/*", overflow="drop_oldest")
    assert lc.overflow == OverflowStrategy.drop_oldest


@pytest.mark.parametrize("condition", ["event.data.size > 10", "{{ event.subject == 'a' }}", True])
def test_filter_braced_bare_or_literal_is_accepted(condition: object) -> None:
    lc = LifecyclePolicy(policy="event_driven", source="file:///x/*", filter=condition)
    assert lc.filter == condition


def test_run_once_has_no_policy_fields() -> None:
    lc = LifecyclePolicy()
    assert all(
        getattr(lc, f) is None for f in ("restart_policy", "backoff", "concurrency", "catchup")
    )


def test_given_values_and_durations_are_kept() -> None:
    lc = LifecyclePolicy.model_validate(
        {
            "policy": "supervise",
            "restart_policy": "always",
            "backoff": {
                "initial": "500ms",
                "max": "2m",
                "factor": 3,
                "jitter": 0,
                "reset_after": "5m",
            },
            "max_restarts": 2,
            "restart_window": "30s",
            "stop_timeout": "1m30s",
        }
    )
    assert lc.backoff is not None
    assert (lc.backoff.initial, lc.backoff.max, lc.backoff.factor, lc.backoff.reset_after) == (
        0.5,
        120,
        3,
        300,
    )
    assert (lc.restart_policy, lc.max_restarts, lc.restart_window, lc.stop_timeout) == (
        "always",
        2,
        30,
        90,
    )


def test_backoff_keeps_its_old_field_names_with_the_new_max() -> None:
    assert BackoffConfig(initial="2s", factor=1.5).max == 300.0
    with pytest.raises(ValidationError, match="'initial' must not exceed 'max'"):
        BackoffConfig(initial="10m")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"policy": "run_once", "stop_timeout": "1s"},
            "'stop_timeout' is only valid with policy 'supervise'",
        ),
        (
            {"policy": "scheduled", "cron": "@daily", "max_restarts": 1},
            "'max_restarts' is only valid",
        ),
        (
            {"policy": "supervise", "cron": "@daily", "catchup": "all"},
            "'cron' and 'catchup' are only valid with policy 'scheduled'",
        ),
        (
            {"policy": "run_once", "timezone": "UTC"},
            "'timezone' is only valid with policy 'scheduled'",
        ),
        ({"policy": "supervise", "concurrency": "allow"}, "'concurrency' is only valid"),
        ({"policy": "supervise", "restart_window": 0}, "restart_window must be longer than 0s"),
        ({"policy": "supervise", "max_restarts": -1}, "greater than or equal to 0"),
        ({"policy": "supervise", "backoff": {"jitter": 1.5}}, "less than or equal to 1"),
        ({"policy": "supervise", "restart_policy": "sometimes"}, "always"),
        ({"policy": "scheduled", "cron": "@daily", "concurrency": "queue"}, "forbid"),
        ({"policy": "scheduled", "cron": "@daily", "catchup": "some"}, "none"),
        ({"policy": "scheduled"}, "needs a 'cron' expression"),
        ({"policy": "supervise", "queue": 5}, "'queue' is only valid with policy 'event_driven'"),
        (
            {"policy": "run_once", "filter": "true", "max_concurrency": 2},
            "'max_concurrency' and 'filter' are only valid with policy 'event_driven'",
        ),
        ({"policy": "event_driven", "source": "file:///x/*", "max_concurrency": 0}, "equal to 1"),
        ({"policy": "event_driven", "source": "file:///x/*", "queue": 0}, "equal to 1"),
        ({"policy": "event_driven", "source": "file:///x/*", "overflow": "spill"}, "drop_new"),
        ({"policy": "event_driven", "source": "file:///x/*", "filter": "{{ event."}, "syntax"),
    ],
)
def test_wrong_fields_are_errors(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LifecyclePolicy.model_validate(data)


def test_dumped_lifecycle_validates_again() -> None:
    event = {"policy": "event_driven", "source": "file:///x/*", "filter": "event.id"}
    for data in ({"policy": "supervise"}, {"policy": "scheduled", "cron": "@every 5s"}, event, {}):
        lc = LifecyclePolicy.model_validate(data)
        assert LifecyclePolicy.model_validate(lc.model_dump(mode="json")) == lc


@pytest.mark.parametrize(
    "cron",
    [
        "*/5 * * * *",
        "0 9 * * MON-FRI",
        "0 0 L * *",
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "@midnight",
        "@DAILY",
        "@every 30s",
        "@every 1h30m",
        "@every 1.5s",
    ],
)
def test_accepted_cron_spellings(cron: str) -> None:
    assert LifecyclePolicy(policy="scheduled", cron=cron).cron == cron


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "expected 5 fields"),
        ("0 0 * * * 5", r"expected 5 fields \(.*\), got 6"),
        ("0 0 31 2 *", "never fires"),
        ("@reboot", "unknown macro"),
        ("@every", "needs a duration"),
        ("@everyday", "needs a duration"),
        ("@every soon", "'soon' is not a duration"),
        ("@every 500ms", "at least 1s"),
        ("@every 0s", "at least 1s"),
        ("H * * * *", "invalid cron expression"),
        ("", "invalid cron expression"),
    ],
)
def test_rejected_cron_spellings(cron: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cron(cron)
    with pytest.raises(ValidationError, match=reason):
        LifecyclePolicy(policy="scheduled", cron=cron)


def test_every_is_parsed_to_seconds_and_cron_is_normalised() -> None:
    assert parse_cron("@every 1m30s").every == 90.0
    assert parse_cron("  */5   *  * * * ").expression == "*/5 * * * *"


@pytest.mark.parametrize("tz", ["Mars/Olympus", "Europe", "../etc/passwd", "", "/etc/localtime"])
def test_invalid_timezone_is_an_error(tz: str) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        LifecyclePolicy(policy="scheduled", cron="@daily", timezone=tz)


def test_valid_timezones() -> None:
    for tz in ("UTC", "Europe/Berlin", "America/New_York"):
        assert LifecyclePolicy(policy="scheduled", cron="@daily", timezone=tz).timezone == tz


def test_invalid_cron_is_located_at_its_value() -> None:
    text = HEAD + (
        "  - name: a\n"
        "    lifecycle: { policy: scheduled, cron: '61 * * * *' }\n" + PROCESS + "  - name: b\n"
        "    lifecycle:\n      policy: scheduled\n      cron: '@daily'\n      timezone: Nowhere/Land\n"
        + PROCESS
    )
    found = messages(text)
    assert found[0].startswith(
        "pb.yaml:5:37: workload 'a': lifecycle.cron: invalid cron expression '61 * * * *'"
    )
    assert found[1].startswith(
        "pb.yaml:11:7: workload 'b': lifecycle.timezone: unknown timezone 'Nowhere/Land'"
    )


def test_field_of_the_wrong_policy_is_located_at_the_lifecycle() -> None:
    text = HEAD + "  - name: s\n    lifecycle: { policy: supervise, catchup: all }\n" + PROCESS
    assert messages(text) == [
        "pb.yaml:5:5: workload 's': lifecycle: 'catchup' is only valid with policy 'scheduled'"
    ]


def test_gxo_validate_reports_bad_cron_with_location(tmp_path: Path, gxo) -> None:
    playbook = tmp_path / "sched.gxo.yaml"
    playbook.write_text(
        HEAD
        + "  - name: tick\n    lifecycle: { policy: scheduled, cron: '@every soon' }\n"
        + PROCESS
    )
    proc = gxo("validate", str(playbook))
    assert proc.returncode == 2, proc.stderr
    assert (
        f"{playbook}:5:37: workload 'tick': lifecycle.cron: invalid cron expression '@every soon'"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr


def test_gxo_validate_accepts_a_daemon_playbook_that_gxo_run_refuses(tmp_path: Path, gxo) -> None:
    playbook = tmp_path / "svc.gxo.yaml"
    playbook.write_text(
        HEAD
        + "  - name: svc\n    lifecycle: { policy: supervise, backoff: { max: 1m }, stop_timeout: 2s }\n"
        + PROCESS
        + "  - name: tick\n    lifecycle: { policy: scheduled, cron: '0 3 * * *', timezone: Europe/Berlin,"
        + " concurrency: replace, catchup: one }\n"
        + PROCESS
    )
    ok = gxo("validate", str(playbook))
    assert ok.returncode == 0, ok.stderr
    run = gxo("run", str(playbook))
    assert run.returncode == 2
    assert "gxo daemon" in run.stderr and "workload 'tick'" in run.stderr


def test_concurrency_member_does_not_shadow_str_replace() -> None:
    value = LifecyclePolicy(policy="scheduled", cron="@daily", concurrency="replace").concurrency
    assert value == ConcurrencyPolicy.replace_ == "replace"
    assert value.replace("re", "dis") == "displace"


cron_ish = st.text(alphabet="0123456789*/-,LW#?HMONFRIJAN @every smhµ.", max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(cron_ish, st.text(max_size=20)), st.one_of(st.none(), st.text(max_size=20)))
def test_any_cron_or_timezone_text_is_accepted_or_a_validation_error(
    cron: str, tz: str | None
) -> None:
    try:
        LifecyclePolicy(policy="scheduled", cron=cron, timezone=tz)
    except ValidationError:
        pass


@pytest.mark.parametrize(
    "cron", ["*/0 * * * *", "0 0 0 * *", "9999999999999999999 * * * *", "* * * 13 *"]
)
def test_degenerate_cron_values_are_clean_errors(cron: str) -> None:
    with pytest.raises(ValidationError, match="invalid cron expression"):
        LifecyclePolicy(policy="scheduled", cron=cron)


def test_invalid_filter_is_located_at_its_value() -> None:
    text = HEAD + (
        "  - name: a\n"
        "    lifecycle:\n      policy: event_driven\n      source: 'file:///tmp/x/*'\n"
        "      filter: 'event.data.path is ('\n" + PROCESS
    )
    found = messages(text)
    assert found[0].startswith(
        "pb.yaml:8:7: workload 'a': lifecycle.filter: template syntax error"
    ), found
