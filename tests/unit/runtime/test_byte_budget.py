"""The byte budget (``prefetch_bytes``): bytes of buffered events, across partitions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from dependency_injector import providers

from runnel import App, Events, Record, Stream
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.metrics import MemoryMetrics
from runnel.domain.model import Event, Partition
from runnel.ports import Fence, Lease
from runnel.runtime.budget import ByteBudget
from runnel.runtime.feed import PartitionFeed, event_size
from runnel.settings import DEFAULT_PREFETCH_BYTES, Settings

from .conftest import until

BLOB = 10_000
"""Characters of payload in each large event."""


class Big(Record):
    key: str
    seq: int
    blob: str


def big_app(
    make_app: Callable[..., App], pause: float = 0.01, batch: int | None = None, **settings: Any
) -> tuple[App, Stream[Big], dict[str, list[int]], list[int]]:
    """An app whose processor notes every event's seq by key, and the largest event seen.

    Each event takes ``pause`` simulated seconds to process, so the fetcher runs ahead.
    """
    app = make_app(**settings)
    stream = app.stream("big", record=Big, partition_by="key")
    seen: dict[str, list[int]] = {}
    largest = [0]

    @app.processor(stream, name="proc")
    async def proc(events: Events) -> None:
        source = events.take(batch) if batch else events
        async for item in source:
            for event in item if isinstance(item, list) else [item]:
                largest[0] = max(largest[0], event_size(event))
                record = event.record()
                seen.setdefault(record.key, []).append(record.seq)
                await app.container.clock().sleep(pause)

    return app, stream, seen, largest


async def send_big(stream: Stream[Big], keys: int, per_key: int, size: int = BLOB) -> None:
    # Distinct payloads so that a compressor (if any) could not shrink them to nothing.
    for seq in range(per_key):
        await stream.send(
            *[
                Big(key=f"k{k}", seq=seq, blob=(f"{k:04d}{seq:06d}" * (size // 10 + 1))[:size])
                for k in range(keys)
            ]
        )


def in_order(seen: dict[str, list[int]], keys: int, per_key: int) -> bool:
    return all(seen.get(f"k{k}") == list(range(per_key)) for k in range(keys))


async def test_buffered_bytes_stay_within_the_budget_plus_one_event_per_partition(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    limit = 3 * BLOB
    app, stream, seen, largest = big_app(make_app, prefetch_bytes=limit)
    await send_big(stream, keys=8, per_key=20)
    running = await workers(app)
    budget = running.worker.budget
    assert budget is not None
    assert budget.limit == limit
    await until(lambda: in_order(seen, 8, 20), clock)
    await running.stop()
    partitions = 4
    assert budget.peak > 0
    assert budget.peak <= limit + partitions * largest[0]
    # Without the budget the buffers would hold up to 2 * prefetch_count events each.
    assert 2 * 8 * partitions * BLOB > 3 * (limit + partitions * largest[0])
    assert budget.used == 0
    assert budget.reserved == 0


async def test_without_a_budget_the_count_alone_bounds_the_buffers(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, stream, seen, _ = big_app(make_app, prefetch_bytes=None)
    await send_big(stream, keys=8, per_key=20)
    running = await workers(app)
    assert running.worker.budget is None
    feeds = list(running.worker.executors[0].feeds.values())
    most = [0]

    async def watch() -> None:
        while True:
            most[0] = max(most[0], sum(len(f.buffer) for f in feeds))
            await clock.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    await until(lambda: in_order(seen, 8, 20), clock)
    watcher.cancel()
    await running.stop()
    # The comparison the budget test relies on: far more than 3 budgets' worth buffered.
    assert most[0] * BLOB > 3 * (3 * BLOB + 4 * (BLOB + 200))


@pytest.mark.parametrize("limit", [0, 1_000])
async def test_an_event_larger_than_the_budget_still_flows(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, limit: int
) -> None:
    app, stream, seen, largest = big_app(make_app, prefetch_bytes=limit)
    await send_big(stream, keys=4, per_key=10)
    running = await workers(app)
    await until(lambda: in_order(seen, 4, 10), clock)
    await running.stop()
    budget = running.worker.budget
    assert budget is not None
    assert largest[0] > limit
    assert budget.peak <= limit + 4 * largest[0]
    assert budget.used == 0


async def test_batches_larger_than_the_budget_arrive_whole_or_in_time(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, stream, seen, _ = big_app(make_app, batch=5, prefetch_bytes=2 * BLOB)
    await send_big(stream, keys=6, per_key=15)
    running = await workers(app)
    await until(lambda: in_order(seen, 6, 15), clock)
    await running.stop()
    budget = running.worker.budget
    assert budget is not None
    assert budget.used == 0


async def test_the_budget_is_shared_by_every_processor_of_a_worker(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    limit = 4 * BLOB
    app, stream, seen, largest = big_app(make_app, prefetch_bytes=limit)
    other: list[int] = []

    @app.processor(stream, name="second")
    async def second(events: Events) -> None:
        async for record in events.records():
            other.append(record.seq)
            await app.container.clock().sleep(0.01)

    await send_big(stream, keys=8, per_key=10)
    running = await workers(app)
    budgets = {id(e.budget) for e in running.worker.executors}
    assert len(budgets) == 1
    assert len(running.worker.executors) == 2
    await until(lambda: in_order(seen, 8, 10) and len(other) == 80, clock)
    await running.stop()
    budget = running.worker.budget
    assert budget is not None
    assert budget.peak <= limit + 2 * 4 * largest[0]  # 4 partitions per processor


def test_a_feed_gives_its_bytes_back_when_it_drops_its_buffer() -> None:
    budget = ByteBudget(100)
    room = asyncio.Event()
    budget.watch(room)
    feed = PartitionFeed(
        Partition("s", 0),
        "stream",
        Lease("lock", b"w1:1", 1),
        Fence("lock", b"w1:1", "fenced"),
        float("inf"),
        prefetch=2,
        clock=SimulatedClock(),
        room=room,
        budget=budget,
    )
    events = [Event(Partition("s", 0), f"{i}-0".encode(), {b"data": b"x" * 36}) for i in range(3)]
    feed.put(events)
    assert (feed.bytes, budget.used, feed.entry_size) == (120, 120, 40)
    budget.blocked = True
    room.clear()
    assert feed.take_now() is events[0]
    assert (feed.bytes, budget.used, budget.peak) == (80, 80, 120)
    assert room.is_set()
    assert not budget.blocked
    assert feed.take_upto(1) == [events[1]]
    assert budget.used == 40
    feed.restart_from_history()
    assert (feed.bytes, budget.used, len(feed.sizes)) == (0, 0, 0)
    feed.put(events)
    feed.close()
    assert (feed.bytes, budget.used) == (0, 0)


def test_the_setting_defaults_and_refuses_negative_budgets() -> None:
    assert Settings().prefetch_bytes == DEFAULT_PREFETCH_BYTES
    assert Settings(prefetch_bytes=None).prefetch_bytes is None
    with pytest.raises(ValueError, match="prefetch_bytes"):
        Settings(prefetch_bytes=-1)
    with pytest.raises(ValueError, match="prefetch_bytes"):
        ByteBudget(-1)


async def test_a_worker_reports_the_bytes_it_buffers(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    metrics = MemoryMetrics()
    app, stream, seen, _ = big_app(make_app, pause=1.0, prefetch_bytes=4 * BLOB)
    app.container.metrics.override(providers.Object(metrics))
    await send_big(stream, keys=4, per_key=5)
    running = await workers(app)
    budget = running.worker.budget
    assert budget is not None
    await until(lambda: budget.used > 0, clock)
    running.worker.publish_metrics()
    assert metrics.value("runnel_worker_buffered_bytes", app=app.name) == budget.used
    await until(lambda: in_order(seen, 4, 5), clock)
    running.worker.publish_metrics()
    assert metrics.value("runnel_worker_buffered_bytes", app=app.name) == 0
    await running.stop()
