"""SimulatedClock (manual and autojump) and SystemClock."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from runnel.adapters.memory.clock import EPOCH, SimulatedClock
from runnel.adapters.system_clock import SystemClock


async def _sleep_then_record(clock: SimulatedClock, seconds: float, seen: list[float]) -> None:
    await clock.sleep(seconds)
    seen.append(clock.now())


def test_now_and_wall_start_where_told() -> None:
    clock = SimulatedClock(start=10.0)
    assert clock.now() == 10.0
    assert clock.wall() == EPOCH + timedelta(seconds=10)
    assert clock.wall().tzinfo is not None
    assert datetime(2026, 1, 1, tzinfo=timezone.utc) == EPOCH


async def test_advance_wakes_sleepers_in_deadline_order_at_their_deadlines() -> None:
    clock, seen = SimulatedClock(), list[float]()
    tasks = [
        asyncio.ensure_future(_sleep_then_record(clock, s, seen)) for s in (3.0, 1.0, 2.0, 9.0)
    ]
    await clock.advance(5.0)
    assert seen == [1.0, 2.0, 3.0]
    assert clock.now() == 5.0
    assert not tasks[3].done()
    await clock.advance(4.0)
    assert seen == [1.0, 2.0, 3.0, 9.0]
    await asyncio.gather(*tasks)


async def test_sleepers_that_sleep_again_within_the_advance_are_woken_too() -> None:
    clock, ticks = SimulatedClock(), list[float]()

    async def ticker() -> None:
        while True:
            await clock.sleep(1.0)
            ticks.append(clock.now())

    task = asyncio.ensure_future(ticker())
    await clock.advance(3.5)
    assert ticks == [1.0, 2.0, 3.0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.next_deadline() is None


async def test_sleep_zero_or_negative_only_yields() -> None:
    clock = SimulatedClock()
    await clock.sleep(0)
    await clock.sleep(-1)
    assert clock.now() == 0.0
    assert clock.next_deadline() is None


async def test_advance_to_next_jumps_to_the_earliest_sleeper() -> None:
    clock, seen = SimulatedClock(), list[float]()
    task = asyncio.ensure_future(_sleep_then_record(clock, 7.0, seen))
    assert await clock.advance_to_next() == 7.0
    assert seen == [7.0]
    assert await clock.advance_to_next() is None
    await task


async def test_next_deadline_ignores_cancelled_sleepers() -> None:
    clock = SimulatedClock()
    early = asyncio.ensure_future(clock.sleep(1.0))
    late = asyncio.ensure_future(clock.sleep(4.0))
    await asyncio.sleep(0)
    assert clock.next_deadline() == 1.0
    early.cancel()
    await asyncio.gather(early, return_exceptions=True)
    assert clock.next_deadline() == 4.0
    await clock.advance(4.0)
    await late


async def test_advance_rejects_negative_durations() -> None:
    with pytest.raises(ValueError, match="negative"):
        await SimulatedClock().advance(-1.0)


async def test_wait_for_returns_true_when_the_future_finishes_first() -> None:
    clock = SimulatedClock()
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiter = asyncio.ensure_future(clock.wait_for(future, 10.0))
    await clock.advance(3.0)
    future.set_result(None)
    assert await waiter is True
    assert clock.now() == 3.0
    assert not future.cancelled()


async def test_wait_for_returns_false_when_the_clock_passes_the_timeout() -> None:
    clock = SimulatedClock()
    event = asyncio.Event()
    waiter = asyncio.ensure_future(clock.wait_for(event, 2.0))
    await clock.advance(1.5)
    assert not waiter.done()
    await clock.advance(0.5)
    assert await waiter is False
    event.set()
    assert await clock.wait_for(event, 0.0) is True


async def test_many_early_wakeups_do_not_pile_up_on_the_heap() -> None:
    clock = SimulatedClock()
    loop = asyncio.get_running_loop()
    for _ in range(1000):
        future: asyncio.Future[None] = loop.create_future()
        loop.call_soon(future.set_result, None)
        assert await clock.wait_for(future, 60.0) is True
    assert len(clock._sleepers) < 200
    assert clock.next_deadline() is None


async def test_autojump_finishes_a_long_sleep_at_once() -> None:
    clock = SimulatedClock(autojump=True)
    await clock.sleep(3600.0)
    assert clock.now() == 3600.0
    await clock.aclose()


async def test_autojump_waits_while_other_tasks_are_busy() -> None:
    clock = SimulatedClock(autojump=True)
    steps: list[float] = []

    async def busy() -> None:
        for _ in range(50):
            steps.append(clock.now())
            await asyncio.sleep(0)

    worker = asyncio.ensure_future(busy())
    await clock.sleep(10.0)
    await worker
    assert steps == [0.0] * 50
    assert clock.now() == 10.0


async def test_autojump_lets_wait_for_time_out_and_real_timeouts_never_fire() -> None:
    clock = SimulatedClock(autojump=True)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    assert await asyncio.wait_for(clock.wait_for(never, 30.0), timeout=5.0) is False
    seen: list[float] = []
    await asyncio.wait_for(
        asyncio.gather(*(_sleep_then_record(clock, s, seen) for s in (5.0, 1.0, 3.0))), 5.0
    )
    assert seen == [31.0, 33.0, 35.0]


async def test_autojump_and_manual_advance_do_not_fight() -> None:
    clock, seen = SimulatedClock(autojump=True), list[float]()
    task = asyncio.ensure_future(_sleep_then_record(clock, 2.0, seen))
    await clock.advance(1.0)
    assert clock.now() == 1.0
    await task
    assert seen == [2.0]


def test_a_clock_can_be_reused_across_event_loops() -> None:
    clock = SimulatedClock(autojump=True)
    asyncio.run(clock.sleep(1.0))
    asyncio.run(clock.sleep(1.0))
    assert clock.now() == 2.0


async def test_system_clock_reads_real_time_and_waits() -> None:
    clock = SystemClock()
    before = clock.now()
    await clock.sleep(0)
    assert clock.now() >= before
    assert abs(clock.wall() - datetime.now(timezone.utc)) < timedelta(seconds=5)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    assert await clock.wait_for(done, 10.0) is True
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    assert await clock.wait_for(pending, 0.0) is False
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await clock.wait_for(event, 10.0) is True
