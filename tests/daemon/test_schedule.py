"""Fire times of scheduled workloads: cron in a time zone across DST, @every, missed fires."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from gxo.config.models import LifecyclePolicy
from gxo.daemon.schedule import MAX_CATCHUP, CatchUp, Schedule, local_zone

BERLIN = ZoneInfo("Europe/Berlin")
SPRING = datetime(2024, 3, 31, tzinfo=BERLIN)  # 02:00 CET -> 03:00 CEST
AUTUMN = datetime(2024, 10, 27, tzinfo=BERLIN)  # 03:00 CEST -> 02:00 CET


def fires(schedule: Schedule, start: datetime, until: datetime) -> list[datetime]:
    out, t = [], start
    while (t := schedule.next_after(t)) <= until:
        out.append(t)
    return out


def spelled(times: list[datetime], zone: ZoneInfo = BERLIN) -> list[str]:
    return [t.astimezone(zone).strftime("%H:%M%z") for t in times]


def iso(times: list[datetime], zone: ZoneInfo = BERLIN) -> list[str]:
    return [t.astimezone(zone).isoformat() for t in times]


def reference(expr: str, tz: ZoneInfo, start: datetime, until: datetime) -> list[datetime]:
    """The documented DST rules, computed the other way round: minute by minute in UTC."""
    every_hour = croniter(expr).expanded[1] == ["*"]
    out: set[datetime] = set()
    m = start.astimezone(UTC).replace(second=0, microsecond=0)
    while m <= until:
        local = m.astimezone(tz)
        wall = local.replace(tzinfo=None)
        repeated = (
            local.fold == 1 and wall.replace(tzinfo=tz, fold=0).utcoffset() != local.utcoffset()
        )
        if croniter.match(expr, wall) and (every_hour or not repeated):
            out.add(m)
        m += timedelta(minutes=1)
    # Wall times inside a spring-forward gap never appear above: they fire shifted by the gap.
    wall = start.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    while wall <= until.astimezone(tz).replace(tzinfo=None):
        first = wall.replace(tzinfo=tz, fold=0)
        if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall and croniter.match(
            expr, wall
        ):
            out.add(first.astimezone(UTC))
        wall += timedelta(minutes=1)
    return sorted(t for t in out if start < t <= until)


# -- spring forward --------------------------------------------------------------------


def test_daily_job_in_the_skipped_hour_fires_once_shifted_by_the_gap() -> None:
    s = Schedule("30 2 * * *", "Europe/Berlin")
    got = fires(s, SPRING - timedelta(days=1), SPRING + timedelta(days=2))
    assert iso(got) == [
        "2024-03-30T02:30:00+01:00",
        "2024-03-31T03:30:00+02:00",
        "2024-04-01T02:30:00+02:00",
    ]


def test_job_at_the_start_of_the_gap_fires_when_the_gap_ends() -> None:
    s = Schedule("0 2 * * *", "Europe/Berlin")
    assert iso([s.next_after(SPRING)]) == ["2024-03-31T03:00:00+02:00"]


def test_frequent_job_runs_through_spring_forward_without_doubles() -> None:
    s = Schedule("*/30 * * * *", "Europe/Berlin")
    got = fires(s, SPRING + timedelta(hours=1), SPRING + timedelta(hours=4))
    assert spelled(got) == ["01:30+0100", "03:00+0200", "03:30+0200", "04:00+0200"]


# -- fall back ---------------------------------------------------------------------------


def test_daily_job_in_the_repeated_hour_fires_once() -> None:
    s = Schedule("30 2 * * *", "Europe/Berlin")
    got = fires(s, AUTUMN - timedelta(hours=1), AUTUMN + timedelta(days=1, hours=12))
    assert iso(got) == [
        "2024-10-27T02:30:00+02:00",
        "2024-10-28T02:30:00+01:00",
    ]


def test_hourly_jobs_fire_in_both_repeated_hours() -> None:
    s = Schedule("*/30 * * * *", "Europe/Berlin")
    got = fires(s, AUTUMN + timedelta(hours=1), AUTUMN + timedelta(hours=3, minutes=30))
    assert spelled(got) == [
        "01:30+0200",
        "02:00+0200",
        "02:30+0200",
        "02:00+0100",
        "02:30+0100",
        "03:00+0100",
        "03:30+0100",
    ]
    # Equally spaced in real time: no hole and no burst.
    assert {b - a for a, b in itertools.pairwise(got)} == {timedelta(minutes=30)}
    assert all(t.tzinfo == UTC for t in got)


def test_next_after_an_instant_inside_the_fold() -> None:
    s = Schedule("0 * * * *", "Europe/Berlin")
    first_0230 = datetime(2024, 10, 27, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second_0230 = datetime(2024, 10, 27, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert iso([s.next_after(first_0230)]) == ["2024-10-27T02:00:00+01:00"]
    assert iso([s.next_after(second_0230)]) == ["2024-10-27T03:00:00+01:00"]
    daily = Schedule("0 2 * * *", "Europe/Berlin")
    assert iso([daily.next_after(first_0230)]) == ["2024-10-28T02:00:00+01:00"]


@pytest.mark.parametrize(
    "expr",
    [
        "*/15 * * * *",
        "30 2 * * *",
        "0 2,3 * * *",
        "45 1-3 * * *",
        "@hourly",
        "@daily",
        "59 * * * *",
    ],
)
@pytest.mark.parametrize("day", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_transition_days_match_a_minute_by_minute_reference(expr: str, day: datetime) -> None:
    s = Schedule(expr, "Europe/Berlin")
    start, until = day - timedelta(hours=2), day + timedelta(hours=8)
    assert fires(s, start, until) == reference(expr, BERLIN, start, until)


def test_lord_howe_half_hour_shift_matches_the_reference() -> None:
    zone = ZoneInfo("Australia/Lord_Howe")  # DST moves the clock by 30 minutes
    for day in (datetime(2024, 4, 7, tzinfo=zone), datetime(2024, 10, 6, tzinfo=zone)):
        for expr in ("*/10 * * * *", "45 1 * * *"):
            start, until = day, day + timedelta(hours=5)
            assert fires(Schedule(expr, "Australia/Lord_Howe"), start, until) == reference(
                expr, zone, start, until
            )


# -- general -----------------------------------------------------------------------------

exprs = st.sampled_from(
    ["*/7 * * * *", "0 */3 * * *", "15 4 * * 1-5", "0 0 1 * *", "@hourly", "5 0 29 2 *"]
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)


@settings(max_examples=200, deadline=None)
@given(exprs, instants)
def test_in_utc_next_after_is_croniters_next(expr: str, t: datetime) -> None:
    expected = croniter(expr, t.replace(tzinfo=None)).get_next(datetime).replace(tzinfo=UTC)
    assert Schedule(expr, "UTC").next_after(t) == expected


@settings(max_examples=100, deadline=None)
@given(
    exprs, instants, st.sampled_from(["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
)
def test_fires_are_increasing_and_on_matching_wall_times(expr: str, t: datetime, zone: str) -> None:
    s = Schedule(expr, zone)
    prev = t
    for _ in range(5):
        nxt = s.next_after(prev)
        assert nxt > prev and nxt.tzinfo == UTC
        wall = s.local(nxt).replace(tzinfo=None)
        shifted = not s._stable(nxt.astimezone(UTC))  # a gap fire lies next to a transition
        assert croniter.match(expr, wall) or shifted
        prev = nxt


def test_result_is_in_the_schedules_zone_and_strictly_later() -> None:
    s = Schedule("0 12 * * *", "America/New_York")
    noon = datetime(2024, 7, 1, 12, tzinfo=ZoneInfo("America/New_York"))
    assert s.local(s.next_after(noon)).isoformat() == "2024-07-02T12:00:00-04:00"
    assert s.next_after(noon).isoformat() == "2024-07-02T16:00:00+00:00"
    assert s.next_after(noon.astimezone(UTC)) == s.next_after(noon)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        Schedule("@daily", "UTC").next_after(datetime(2024, 1, 1))


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        Schedule("* * *")
    with pytest.raises(ValueError, match="unknown timezone"):
        Schedule("@daily", "Nowhere/Land")


def test_default_zone_is_the_local_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert local_zone() == ZoneInfo("Asia/Tokyo")
    s = Schedule("0 9 * * *")
    assert s.local(s.next_after(datetime(2023, 12, 31, 12, tzinfo=UTC))).isoformat() == (
        "2024-01-01T09:00:00+09:00"
    )
    monkeypatch.setenv("TZ", "Not/AZone")
    assert local_zone() is not None  # falls back to /etc/localtime or UTC, never raises


def test_from_lifecycle() -> None:
    lc = LifecyclePolicy(policy="scheduled", cron="0 6 * * *", timezone="Europe/Berlin")
    s = Schedule.from_lifecycle(lc)
    assert s.next_after(datetime(2024, 1, 1, tzinfo=UTC)).isoformat() == "2024-01-01T05:00:00+00:00"
    with pytest.raises(ValueError):
        Schedule.from_lifecycle(LifecyclePolicy())


# -- @every ------------------------------------------------------------------------------

T0 = datetime(2024, 3, 31, 0, 0, tzinfo=UTC)


def test_every_is_anchored_and_does_not_drift() -> None:
    s = Schedule("@every 30s", "UTC", anchor=T0)
    # Asked late (an instance started 7s after its fire), the grid is kept.
    assert s.next_after(T0 + timedelta(seconds=37)) == T0 + timedelta(seconds=60)
    assert s.next_after(T0 + timedelta(seconds=60)) == T0 + timedelta(seconds=90)
    assert s.next_after(T0 - timedelta(hours=1)) == T0
    t = T0
    for _ in range(10_000):
        t = s.next_after(t)
    assert t == T0 + timedelta(seconds=300_000)


def test_every_without_anchor_counts_from_the_given_time() -> None:
    s = Schedule("@every 1m30s", "UTC")
    assert s.next_after(T0) == T0 + timedelta(seconds=90)


def test_every_is_absolute_time_across_dst() -> None:
    start = T0 - timedelta(hours=1)  # 00:00 CET; the clock jumps at 01:00 UTC
    s = Schedule("@every 1h", "Europe/Berlin", anchor=start)
    got = fires(s, start, start + timedelta(hours=3))
    assert spelled(got) == ["01:00+0100", "03:00+0200", "04:00+0200"]
    assert {b - a for a, b in itertools.pairwise(got)} == {timedelta(hours=1)}


def test_fractional_every() -> None:
    s = Schedule("@every 1.5s", "UTC", anchor=T0)
    assert s.next_after(T0 + timedelta(seconds=2)) == T0 + timedelta(seconds=3)


# -- missed fires (catchup) --------------------------------------------------------------


def test_catchup_none_runs_nothing() -> None:
    s = Schedule("@hourly", "UTC")
    assert s.missed(T0, T0 + timedelta(days=1), "none") == []


def test_catchup_one_runs_the_most_recent_missed_fire() -> None:
    s = Schedule("@hourly", "UTC")
    assert s.missed(T0, T0 + timedelta(hours=5, minutes=10), "one") == [T0 + timedelta(hours=5)]
    assert s.catch_up(T0, T0 + timedelta(hours=5, minutes=10), "one").dropped
    # Exactly one missed: nothing dropped.
    assert s.catch_up(T0, T0 + timedelta(hours=1), "one") == CatchUp(
        [T0 + timedelta(hours=1)], False
    )


def test_catchup_all_runs_each_missed_fire_oldest_first() -> None:
    s = Schedule("0 */6 * * *", "UTC")
    got = s.catch_up(T0, T0 + timedelta(days=1, hours=1), "all")
    assert got.fires == [T0 + timedelta(hours=h) for h in (6, 12, 18, 24)]
    assert not got.dropped


def test_nothing_missed() -> None:
    s = Schedule("@hourly", "UTC")
    assert s.missed(T0, T0 + timedelta(minutes=59), "all") == []
    assert s.missed(T0, T0, "all") == []
    assert s.missed(T0 + timedelta(hours=2), T0, "one") == []


def test_catchup_all_is_bounded_to_the_most_recent() -> None:
    s = Schedule("* * * * *", "Europe/Berlin")
    now = datetime(2024, 6, 1, tzinfo=BERLIN)
    got = s.catch_up(datetime(2024, 1, 1, tzinfo=BERLIN), now, "all")
    assert got.dropped and len(got.fires) == MAX_CATCHUP
    assert got.fires[-1] == now
    assert got.fires[0] == now - timedelta(minutes=MAX_CATCHUP - 1)


def test_catchup_all_across_a_transition_matches_the_reference() -> None:
    s = Schedule("*/20 * * * *", "Europe/Berlin")
    last, now = AUTUMN, AUTUMN + timedelta(hours=6)
    assert s.missed(last, now, "all") == reference("*/20 * * * *", BERLIN, last, now)


def test_every_catchup_is_bounded_and_on_the_grid() -> None:
    s = Schedule("@every 1s", "UTC", anchor=T0)
    got = s.catch_up(T0 + timedelta(milliseconds=500), T0 + timedelta(days=30), "all")
    assert got.dropped and len(got.fires) == MAX_CATCHUP
    assert got.fires[-1] == T0 + timedelta(days=30)
    assert got.fires[0] == T0 + timedelta(days=30, seconds=-(MAX_CATCHUP - 1))
    small = s.catch_up(T0, T0 + timedelta(seconds=3, milliseconds=10), "all")
    assert small == CatchUp([T0 + timedelta(seconds=n) for n in (1, 2, 3)], False)


def test_every_catchup_without_anchor_counts_from_the_last_fire() -> None:
    s = Schedule("@every 10s", "UTC")
    last = T0 + timedelta(seconds=3)
    assert s.missed(last, last + timedelta(seconds=25), "all") == [
        last + timedelta(seconds=10),
        last + timedelta(seconds=20),
    ]


def test_unknown_catchup_is_refused() -> None:
    with pytest.raises(ValueError):
        Schedule("@hourly", "UTC").missed(T0, T0 + timedelta(hours=3), "some")
