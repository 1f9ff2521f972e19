"""Simulated time: batching windows, timers, crontab schedules, the wall clock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from runnel import Events
from runnel.testing import Harness

from .apps import Tick, new_app, ticks


def batching_app(size: int, within: float) -> tuple[Harness, list[tuple[float, list[int]]]]:
    app = new_app(default_partition_count=1)
    stream = app.stream("ticks", record=Tick, partition_by="key")
    loaded: list[tuple[float, list[int]]] = []
    harness = Harness(app)

    @app.processor(stream)
    async def loader(events: Events) -> None:
        async for batch in events.take(size, within=within).records():
            loaded.append((harness.now, [t.seq for t in batch]))

    return harness, loaded


async def test_a_take_window_closes_when_the_clock_reaches_it() -> None:
    harness, loaded = batching_app(size=10, within=5)
    async with harness as h:
        await h.start("w1")
        stream = h.app.streams["ticks"]
        await stream.send(*ticks(3, keys=1))
        opened = h.now
        await h.advance(4.9)
        assert loaded == []
        assert not h.is_idle()
        await h.advance(0.1)
        assert loaded == [(opened + 5, [0, 1, 2])]
        assert [len(b) for b in h.batches("loader")] == [3]
        await h.run_until_idle()


async def test_a_full_batch_is_handed_out_at_once_and_the_rest_waits_for_its_window() -> None:
    harness, loaded = batching_app(size=10, within=5)
    async with harness as h:
        await h.start("w1")
        sent_at = h.now
        await h.app.streams["ticks"].send(*ticks(25, keys=1))
        await h.run_until_idle()
        assert [(at - sent_at, len(seqs)) for at, seqs in loaded] == [(0, 10), (0, 10), (5, 5)]


async def test_advance_to_next_fire_runs_a_timer_one_interval_after_the_worker_starts() -> None:
    app = new_app()
    fired: list[float] = []
    harness = Harness(app)

    @app.timer(interval=30)
    async def heartbeat() -> None:
        fired.append(harness.now)

    async with harness as h:
        await h.start("w1", balanced=False)
        started = h.now
        first = await h.advance_to_next_fire(heartbeat)
        second = await h.advance_to_next_fire("heartbeat")
        assert first.started_at == started + 30
        assert second.started_at == started + 60
        assert fired == [started + 30, started + 60]
        assert h.now == started + 60
        assert first.finished_at == first.started_at
        assert [r.worker for r in h.task_runs(heartbeat)] == ["w1", "w1"]


async def test_a_crontab_fires_at_its_scheduled_wall_time() -> None:
    app = new_app(timezone="Europe/London")
    harness = Harness(app, start_time=datetime(2026, 7, 1, 16, 59, 30, tzinfo=timezone.utc))

    @app.crontab("0 18 * * *")
    async def evening_report() -> None:
        pass

    async with harness as h:
        await h.start("w1", balanced=False)
        run = await h.advance_to_next_fire(evening_report)
        assert run.started_at == h.now
        # 18:00 in London is 17:00 UTC in July (summer time).
        assert h.wall == datetime(2026, 7, 1, 17, 0, tzinfo=timezone.utc)


async def test_a_failing_task_run_records_its_error_and_the_timer_keeps_its_schedule() -> None:
    app = new_app()

    @app.timer(interval=10)
    async def flaky() -> None:
        raise RuntimeError("flaky failed")

    async with Harness(app) as h:
        await h.start("w1", balanced=False)
        first = await h.advance_to_next_fire(flaky)
        second = await h.advance_to_next_fire(flaky)
    assert isinstance(first.error, RuntimeError)
    assert second.started_at - first.started_at == 10


async def test_advance_to_next_jumps_to_the_earliest_waiting_deadline() -> None:
    app = new_app()
    async with Harness(app) as h:
        waiter = asyncio.ensure_future(h.clock.sleep(7.5))
        assert await h.advance_to_next() == 7.5
        assert h.now == 7.5
        assert waiter.done()
        assert await h.advance_to_next() is None  # nothing waits for the clock any more


async def test_without_autojump_time_moves_only_when_the_harness_drives_it() -> None:
    app = new_app()
    async with Harness(app, autojump=False) as h:
        await h.start("w1")
        now = h.now
        for _ in range(200):
            await asyncio.sleep(0)
        assert h.now == now
        await h.advance(3)
        assert h.now == now + 3


async def test_with_autojump_awaiting_in_the_test_lets_simulated_time_pass() -> None:
    app = new_app()
    async with Harness(app) as h:
        await h.start("w1")
        before = h.now
        await asyncio.sleep(3600)  # an hour, simulated
        assert h.now - before == 3600


async def test_the_wall_clock_starts_at_start_time_and_follows_simulated_time() -> None:
    start = datetime(2030, 5, 17, 9, 0, tzinfo=timezone.utc)
    async with Harness(new_app(), start_time=start) as h:
        assert h.wall == start
        await h.advance(90)
        assert h.wall == start + timedelta(seconds=90)


def test_start_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        Harness(new_app(), start_time=datetime(2026, 1, 1))
