"""Adaptive read-ahead: a partition reads more at a time while it has a backlog its consumer
goes through faster than the reads come, and less once it has caught up; never more than
``prefetch_max`` nor than the byte budget could hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runnel import App, Events
from runnel.adapters.memory.clock import SimulatedClock
from runnel.domain.model import Event, Partition
from runnel.ports import Fence, Lease
from runnel.runtime.budget import ByteBudget
from runnel.runtime.feed import GROWTH_BYTES, PartitionFeed

from .conftest import Tick, ticks_app, until

PARTITION = Partition("ticks", 0)


def a_feed(prefetch: int, prefetch_max: int, budget: ByteBudget | None = None) -> PartitionFeed:
    return PartitionFeed(
        PARTITION,
        "stream",
        Lease("lock", b"w1:1", 1),
        Fence("lock", b"w1:1", "fenced"),
        float("inf"),
        prefetch=prefetch,
        clock=SimulatedClock(),
        room=asyncio.Event(),
        budget=budget,
        prefetch_max=prefetch_max,
    )


def full_starved_read(feed: PartitionFeed) -> None:
    """A read that came back full into an empty buffer."""
    feed.adapt(feed.wants, feed.wants, starved=True)


def test_full_reads_into_an_empty_buffer_double_the_read_ahead_up_to_the_ceiling() -> None:
    feed = a_feed(prefetch=8, prefetch_max=100)
    seen = [feed.refill_at]
    for _ in range(6):
        full_starved_read(feed)
        seen.append(feed.refill_at)
    assert seen == [8, 16, 32, 64, 100, 100, 100]
    assert feed.capacity == 200  # double buffering at the grown size


def test_short_reads_halve_the_read_ahead_down_to_prefetch_count() -> None:
    feed = a_feed(prefetch=8, prefetch_max=128)
    for _ in range(4):
        full_starved_read(feed)
    assert feed.refill_at == 128
    seen = []
    for _ in range(6):
        feed.adapt(feed.wants, 3, starved=True)  # fewer than asked: caught up
        seen.append(feed.refill_at)
    assert seen == [64, 32, 16, 8, 8, 8]
    assert feed.capacity == 16


def test_a_consumer_still_busy_with_its_buffer_does_not_grow_it() -> None:
    feed = a_feed(prefetch=8, prefetch_max=128)
    feed.adapt(16, 16, starved=False)
    feed.adapt(8, 8, starved=False)
    assert feed.refill_at == 8


def test_a_read_the_budget_cut_short_does_not_grow_it() -> None:
    feed = a_feed(prefetch=8, prefetch_max=128)
    feed.adapt(5, 5, starved=True)  # asked for less than the read-ahead: cut by the budget
    assert feed.refill_at == 8


def test_without_a_ceiling_above_prefetch_count_the_read_ahead_is_fixed() -> None:
    feed = a_feed(prefetch=8, prefetch_max=1)
    for _ in range(3):
        full_starved_read(feed)
    assert (feed.refill_at, feed.capacity) == (8, 16)


def test_growth_stops_where_twice_the_read_ahead_would_not_fit_the_byte_budget() -> None:
    budget = ByteBudget(4_000)
    feed = a_feed(prefetch=4, prefetch_max=1_000, budget=budget)
    feed.put([Event(PARTITION, b"1-0", {b"data": b"x" * 96})])  # 100 bytes an entry
    assert feed.take_now() is not None
    for _ in range(10):
        full_starved_read(feed)
    assert feed.refill_at == 20  # 4 -> 8 -> 16 -> 20: 2 * 20 * 100 bytes fill the 4000
    assert 2 * feed.refill_at * feed.entry_size <= budget.limit  # type: ignore[operator]


def test_large_entries_do_not_grow_the_read_ahead_past_a_megabyte() -> None:
    feed = a_feed(prefetch=2, prefetch_max=128, budget=ByteBudget(1 << 30))
    feed.put([Event(PARTITION, b"1-0", {b"data": b"x" * (256 * 1024 - 4)})])  # 256 KiB
    assert feed.take_now() is not None
    for _ in range(10):
        full_starved_read(feed)
    assert feed.refill_at == GROWTH_BYTES // (256 * 1024) == 4
    feed.put([Event(PARTITION, b"2-0", {b"data": b"x" * (4 * 1024 * 1024 - 4)})])  # 4 MiB
    assert feed.take_now() is not None
    feed.adapt(feed.wants, 0, starved=True)
    full_starved_read(feed)
    assert feed.refill_at == 2  # back to prefetch_count, and no growth at 4 MiB an entry


def test_take_n_fixes_the_read_ahead_at_n() -> None:
    feed = a_feed(prefetch=8, prefetch_max=128)
    feed.hold_at_least(100)
    assert (feed.floor, feed.refill_at, feed.ceiling) == (100, 100, 100)
    full_starved_read(feed)
    assert feed.refill_at == 100
    feed.adapt(feed.wants, 0, starved=True)
    assert (feed.refill_at, feed.capacity) == (100, 200)


async def test_a_backlog_grows_the_read_ahead_and_caught_up_shrinks_it_back(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(
        make_app, default_partition_count=1, default_prefetch_count=4, default_prefetch_max=32
    )
    running: list[Any] = []
    read_aheads: list[int] = []
    seen: list[int] = []

    def feed() -> PartitionFeed | None:
        return running[0].worker.executors[0].feeds.get(0) if running else None

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events.records():
            current = feed()
            if current is not None:
                read_aheads.append(current.refill_at)
            seen.append(event.seq)

    await ticks.send(*(Tick(key="a", seq=n) for n in range(600)))
    running.append(await workers(app))
    await until(lambda: len(seen) == 600, clock)
    assert seen == list(range(600))  # in order, each once
    assert max(read_aheads) == 32  # grew to the ceiling, never past it
    assert all(4 <= r <= 32 for r in read_aheads)

    # Caught up: events now come one at a time, and each read finds fewer than it asks.
    for n in range(600, 606):
        await ticks.send(Tick(key="a", seq=n))
        await until(lambda n=n: len(seen) == n + 1, clock)  # type: ignore[misc]
    current = feed()
    assert current is not None
    await until(lambda: current.refill_at == 4, clock)
    assert current.capacity == 8
    assert seen == list(range(606))
    await running[0].stop()


async def test_the_grown_read_ahead_keeps_the_buffers_within_the_byte_budget(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    limit = 6_000
    app, ticks = ticks_app(
        make_app,
        default_partition_count=2,
        default_prefetch_count=2,
        default_prefetch_max=1_000,
        prefetch_bytes=limit,
    )
    running: list[Any] = []
    read_aheads: list[int] = []
    seen: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events.records():
            if running:
                feeds = running[0].worker.executors[0].feeds.values()
                read_aheads.extend(f.refill_at for f in feeds)
            seen.append(event.seq)

    await ticks.send(*(Tick(key=f"k{n % 2}", seq=n) for n in range(1_000)))
    running.append(await workers(app))
    await until(lambda: len(seen) == 1_000, clock)
    budget = running[0].worker.budget
    sizes = [f.entry_size for f in running[0].worker.executors[0].feeds.values()]
    await running[0].stop()
    assert budget is not None
    largest = max(sizes)
    assert max(read_aheads) > 2  # it did grow
    assert all(2 * r * largest <= limit for r in read_aheads if r > 2)
    assert budget.peak <= limit + 2 * largest  # within the budget plus one event a partition
