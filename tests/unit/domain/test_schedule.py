"""TimerSchedule and CronSchedule: no drift, skipped overruns, DST-correct crontab."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnel.domain.schedule import CronSchedule, TimerSchedule

UTC = timezone.utc
LONDON = ZoneInfo("Europe/London")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# --- TimerSchedule ----------------------------------------------------------------------


def test_the_first_fire_is_one_interval_after_the_origin() -> None:
    timer = TimerSchedule(5.0, origin=1000.0)

    assert timer.next_fire(None, now=1000.0) == 1005.0


def test_a_thousand_fires_stay_exactly_on_the_grid() -> None:
    origin, interval = 12345.678, 0.1
    timer = TimerSchedule(interval, origin=origin)
    work = random.Random(7)
    prev: float | None = None
    now = origin
    dues: list[float] = []
    for _ in range(1000):
        due = timer.next_fire(prev, now)
        dues.append(due)
        now = due + work.uniform(0.0, 0.09)  # each run takes less than an interval
        prev = due

    assert [timer.slot(d) for d in dues] == list(range(1, 1001))
    assert dues == [timer.due(k) for k in range(1, 1001)]
    assert dues[-1] == pytest.approx(origin + 1000 * interval, abs=1e-9)


def test_repeated_addition_would_have_drifted_but_the_grid_does_not() -> None:
    timer = TimerSchedule(0.1)
    added = 0.0
    for _ in range(1000):
        added += 0.1
    prev: float | None = None
    for _ in range(1000):
        prev = timer.next_fire(prev, now=prev if prev is not None else 0.0)

    assert added != 100.0  # plain accumulation picks up rounding error...
    assert prev == 100.0  # ...the grid computes slot 1000 directly


def test_an_overrun_skips_the_missed_slots_instead_of_bunching() -> None:
    timer = TimerSchedule(1.0)

    nxt = timer.next_fire(3.0, now=7.5)

    assert nxt == 8.0
    assert timer.missed(3.0, nxt) == 4


def test_a_slot_due_exactly_as_the_run_ends_counts_as_missed() -> None:
    timer = TimerSchedule(1.0)

    assert timer.next_fire(3.0, now=4.0) == 5.0


def test_a_run_that_ends_in_time_fires_at_the_next_slot() -> None:
    timer = TimerSchedule(2.0, origin=1.0)

    assert timer.next_fire(3.0, now=3.5) == 5.0
    assert timer.missed(3.0, 5.0) == 0


def test_next_fire_is_always_after_the_previous_due_even_if_asked_early() -> None:
    timer = TimerSchedule(1.0)

    assert timer.next_fire(3.0, now=1.0) == 4.0


@pytest.mark.parametrize("interval", [0.0, -1.0, float("nan"), float("inf")])
def test_interval_must_be_finite_and_positive(interval: float) -> None:
    with pytest.raises(ValueError, match="interval must be a finite number of seconds > 0"):
        TimerSchedule(interval)


@given(
    interval=st.floats(min_value=0.001, max_value=3600.0),
    origin=st.floats(min_value=-1e6, max_value=1e6),
    prev_slot=st.one_of(st.none(), st.integers(min_value=-10, max_value=10_000)),
    elapsed=st.floats(min_value=-100.0, max_value=1e5),
)
def test_next_fire_is_the_first_grid_slot_after_now_and_prev(
    interval: float, origin: float, prev_slot: int | None, elapsed: float
) -> None:
    timer = TimerSchedule(interval, origin=origin)
    prev_due = None if prev_slot is None else timer.due(prev_slot)
    now = origin + elapsed

    nxt = timer.next_fire(prev_due, now)
    slot = timer.slot(nxt)

    assert nxt == timer.due(slot)  # on the grid
    assert nxt > now
    floor = now if prev_due is None else max(now, prev_due)
    assert timer.due(slot - 1) <= floor  # no earlier slot would have done
    if prev_slot is not None:
        assert slot > prev_slot


# --- CronSchedule -----------------------------------------------------------------------


def fires(schedule: CronSchedule, start: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    moment = start
    for _ in range(count):
        moment = schedule.next_after(moment)
        out.append(moment)
    return out


def test_cron_in_utc_fires_daily_at_the_named_time() -> None:
    daily = CronSchedule("45 17 * * *", "UTC")

    assert fires(daily, utc(2025, 3, 29, 12, 0), 2) == [
        utc(2025, 3, 29, 17, 45),
        utc(2025, 3, 30, 17, 45),
    ]


def test_cron_next_after_is_strictly_after_the_moment() -> None:
    daily = CronSchedule("45 17 * * *", "UTC")

    assert daily.next_after(utc(2025, 3, 29, 17, 45)) == utc(2025, 3, 30, 17, 45)


def test_cron_in_london_keeps_local_time_when_the_clocks_go_forward() -> None:
    daily = CronSchedule("45 17 * * *", "Europe/London")

    got = fires(daily, utc(2025, 3, 28, 0, 0), 4)

    assert [f.astimezone(UTC) for f in got] == [
        utc(2025, 3, 28, 17, 45),
        utc(2025, 3, 29, 17, 45),
        utc(2025, 3, 30, 16, 45),  # British Summer Time from 30 March
        utc(2025, 3, 31, 16, 45),
    ]
    assert all((f.hour, f.minute) == (17, 45) for f in got)
    assert all(f.tzinfo is LONDON for f in got)


def in_london(spec: str, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires after ``start`` of ``spec`` in London time, in UTC."""
    return [f.astimezone(UTC) for f in fires(CronSchedule(spec, "Europe/London"), start, count)]


def test_cron_in_london_keeps_local_time_when_the_clocks_go_back() -> None:
    assert in_london("45 17 * * *", utc(2025, 10, 25, 0, 0), 2) == [
        utc(2025, 10, 25, 16, 45),
        utc(2025, 10, 26, 17, 45),
    ]


def test_cron_time_repeated_by_the_clocks_going_back_fires_once_at_its_first_occurrence() -> None:
    # 01:30 happens at 00:30Z (BST) and again at 01:30Z (GMT) on 26 October.
    assert in_london("30 1 * * *", utc(2025, 10, 25, 12, 0), 2) == [
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 27, 1, 30),
    ]


def test_cron_time_skipped_by_the_clocks_going_forward_fires_after_the_jump() -> None:
    nightly = CronSchedule("30 1 * * *", "Europe/London")

    (first,) = fires(nightly, utc(2025, 3, 29, 12, 0), 1)

    # There is no 01:30 on 30 March: it fires at 02:30 BST, i.e. 01:30Z.
    assert (first.hour, first.minute) == (2, 30)
    assert in_london("30 1 * * *", utc(2025, 3, 29, 12, 0), 2) == [
        utc(2025, 3, 30, 1, 30),
        utc(2025, 3, 31, 0, 30),
    ]


def test_hourly_cron_fires_every_real_hour_when_the_clocks_go_forward() -> None:
    assert in_london("30 * * * *", utc(2025, 3, 30, 0, 0), 3) == [
        utc(2025, 3, 30, 0, 30),
        utc(2025, 3, 30, 1, 30),
        utc(2025, 3, 30, 2, 30),
    ]


def test_hourly_cron_fires_once_per_wall_time_when_the_clocks_go_back() -> None:
    # 01:30 GMT (01:30Z) repeats the wall time 01:30 BST (00:30Z), so it does not fire.
    assert in_london("30 * * * *", utc(2025, 10, 25, 23, 0), 3) == [
        utc(2025, 10, 25, 23, 30),
        utc(2025, 10, 26, 0, 30),
        utc(2025, 10, 26, 2, 30),
    ]


def test_slot_id_is_the_utc_time_whatever_zone_the_fire_is_in() -> None:
    daily = CronSchedule("45 17 * * *", "Europe/London")
    fire = daily.next_after(utc(2025, 7, 1, 0, 0))

    assert daily.slot_id(fire) == "2025-07-01T16:45:00Z"
    assert daily.slot_id(fire.astimezone(UTC)) == daily.slot_id(fire)
    assert CronSchedule("45 17 * * *", "UTC").slot_id(utc(2025, 7, 1, 16, 45)) == daily.slot_id(
        fire
    )


@pytest.mark.parametrize(
    "spec", ["61 * * * *", "not a cron", "", "* * *", "0 0 * * 8", "* * * * * * * *"]
)
def test_a_bad_spec_is_refused_with_its_text_in_the_message(spec: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid cron spec {spec!r}")):
        CronSchedule(spec, "UTC")


def test_a_spec_that_can_never_fire_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cron spec '0 0 30 2 \*' never fires"):
        CronSchedule("0 0 30 2 *", "UTC")


def test_an_unknown_time_zone_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus_Mons'"):
        CronSchedule("45 17 * * *", "Mars/Olympus_Mons")


def test_naive_datetimes_are_refused() -> None:
    daily = CronSchedule("45 17 * * *", "UTC")

    with pytest.raises(ValueError, match="aware datetime"):
        daily.next_after(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="aware datetime"):
        daily.slot_id(datetime(2025, 1, 1))


def test_cron_schedules_compare_by_spec_and_zone() -> None:
    assert CronSchedule("0 * * * *", "UTC") == CronSchedule("0 * * * *", "UTC")
    assert CronSchedule("0 * * * *", "UTC") != CronSchedule("0 * * * *", "Europe/London")
    assert (
        repr(CronSchedule("0 * * * *", "UTC")) == "CronSchedule(spec='0 * * * *', timezone='UTC')"
    )


@given(
    spec=st.sampled_from(["45 17 * * *", "30 * * * *", "30 1 * * *", "*/20 2 * * 0", "0 0 1 * *"]),
    zone=st.sampled_from(["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe"]),
    offset=st.integers(min_value=0, max_value=2 * 365 * 24 * 3600),
    gap=st.integers(min_value=0, max_value=3 * 24 * 3600),
)
def test_cron_fires_are_after_the_moment_and_monotonic(
    spec: str, zone: str, offset: int, gap: int
) -> None:
    schedule = CronSchedule(spec, zone)
    early = utc(2024, 1, 1) + timedelta(seconds=offset)
    late = early + timedelta(seconds=gap)

    first, second = schedule.next_after(early), schedule.next_after(late)

    assert first > early
    assert second > late
    assert first <= second
    assert schedule.next_after(first) > first
