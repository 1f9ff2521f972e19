"""Ordered delivery, acknowledgement, batching and backpressure on the memory backend."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from runnel import App, Event, Events
from runnel.adapters.memory.clock import SimulatedClock
from runnel.runtime import worker as worker_module
from runnel.runtime.worker import describe_task

from .conftest import Tick, ticks_app, until


async def test_every_event_is_processed_once_in_per_key_order(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app)
    seen: dict[str, list[int]] = defaultdict(list)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen[tick.key].append(tick.seq)

    await ticks.send(*[Tick(key=f"k{i % 13}", seq=i // 13) for i in range(1300)])
    running = await workers(app)
    await until(lambda: sum(map(len, seen.values())) >= 1300, clock)
    assert await running.stop() == 0
    assert len(seen) == 13
    for values in seen.values():
        assert values == list(range(100))
    for n in range(4):
        assert await app.backend.admin.pending(ticks.keys.stream(n), "proc") == []


async def test_two_processors_each_see_every_event(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app)
    a: list[int] = []
    b: list[int] = []

    @app.processor(ticks)
    async def first(events: Events) -> None:
        async for tick in events.records():
            a.append(tick.seq)

    @app.processor(ticks)
    async def second(events: Events) -> None:
        async for tick in events.records():
            b.append(tick.seq)

    await ticks.send(*[Tick(key="k", seq=i) for i in range(50)])
    running = await workers(app)
    await until(lambda: len(a) == 50 and len(b) == 50, clock)
    await running.stop()
    assert a == b == list(range(50))


async def test_events_carry_partition_id_delivery_count_and_epoch(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    got: list[Event] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            got.append(event)

    ids = await ticks.send(Tick(key="a", seq=1))
    running = await workers(app)
    await until(lambda: len(got) == 1, clock)
    await running.stop()
    event = got[0]
    assert event.id == ids[0]
    assert event.partition.number == 0
    assert event.delivery_count == 1
    assert not event.redelivered
    assert event.epoch >= 1
    assert event.record() == Tick(key="a", seq=1)
    assert event.data == {b"data": b'{"key":"a","seq":1}'}


async def test_take_yields_full_batches_at_once_and_the_rest_after_within(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1, default_prefetch_count=50)
    batches: list[tuple[float, list[int]]] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for batch in events.take(10, within=2).records():
            batches.append((clock.now(), [t.seq for t in batch]))

    running = await workers(app)
    await clock.sleep(1)
    sent_at = clock.now()
    await ticks.send(*[Tick(key="k", seq=i) for i in range(35)])
    await until(lambda: sum(len(b) for _, b in batches) == 35, clock)
    await running.stop()
    sizes = [len(b) for _, b in batches]
    assert sizes == [10, 10, 10, 5]
    assert [s for _, b in batches for s in b] == list(range(35))
    full_at = [t for t, _ in batches[:3]]
    assert max(full_at) - sent_at < 1.0  # full batches did not wait for `within`
    assert batches[3][0] - sent_at >= 2.0  # the partial one waited `within`


async def test_take_never_yields_stray_single_event_batches(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1, default_prefetch_count=100)
    sizes: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for batch in events.take(20, within=1):
            sizes.append(len(batch))

    running = await workers(app)
    for round_ in range(5):
        await ticks.send(*[Tick(key="k", seq=round_ * 40 + i) for i in range(40)])
        await clock.sleep(3)
    await until(lambda: sum(sizes) == 200, clock)
    await running.stop()
    assert sizes == [20] * 10


async def test_a_slow_partition_does_not_stall_the_others(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app(default_partition_count=2, default_prefetch_count=4)
    ticks = app.stream("ticks", record=Tick, partition_by="key", hasher=lambda k: int(str(k)[1:]))
    fast: list[int] = []
    slow: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.key == "k0":
                await clock.sleep(10)  # partition 0 is slow
                slow.append(tick.seq)
            else:
                fast.append(tick.seq)

    await ticks.send(*[Tick(key=f"k{i % 2}", seq=i) for i in range(200)])
    running = await workers(app)
    start = clock.now()
    await until(lambda: len(fast) == 100, clock)
    assert clock.now() - start < 30  # the fast partition finished while the slow one crawls
    assert len(slow) < 10
    await running.stop()


async def test_graceful_stop_finishes_in_flight_work_and_processes_nothing_twice(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=2)
    seen: list[tuple[str, int]] = []
    finished: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append((tick.key, tick.seq))
            await clock.sleep(0.5)
            finished.append(tick.seq)

    await ticks.send(*[Tick(key=f"k{i % 5}", seq=i) for i in range(100)])
    first = await workers(app)
    await until(lambda: len(seen) >= 20, clock)
    assert await first.stop() == 0
    assert len(seen) == len(finished)  # nothing was cut off mid-iteration
    second = await workers(app)
    await until(lambda: len(seen) >= 100, clock)
    await second.stop()
    assert sorted(seq for _, seq in seen) == list(range(100))  # no duplicates, none lost


async def stuck_stop(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    grace_period: float,
    stubborn: bool = False,
) -> tuple[Any, asyncio.Event]:
    """A worker asked to stop while its processor's cleanup hangs until the returned event
    is set (even after the grace period's cancellation; with ``stubborn``, whatever the
    number of cancellations); the running worker and that event."""
    app, ticks = ticks_app(make_app, default_partition_count=1, default_grace_period=grace_period)
    release = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        try:
            async for _ in events.records():
                await clock.sleep(3600)  # still busy when the grace period ends
        finally:
            while True:
                try:
                    await release.wait()  # a cleanup that hangs, even after the cancellation
                    break
                except asyncio.CancelledError:
                    if not stubborn:
                        raise

    await ticks.send(Tick(key="k", seq=1))
    running = await workers(app)
    await until(lambda: running.worker.executors[0].consumers != {}, clock)
    await clock.sleep(1)
    running.worker.request_stop()
    return running, release


async def test_a_stop_stuck_past_its_grace_period_is_cut_short_and_says_where_it_waited(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="runnel.runtime.worker")
    running, _release = await stuck_stop(make_app, workers, clock, grace_period=2.0)
    stopped_at = clock.now()
    assert await running.task == 0  # without the release: the stop was cut short
    took = clock.now() - stopped_at
    assert took <= 2.0 + worker_module.STOP_MARGIN + worker_module.CANCEL_WAIT
    report = next(
        r.getMessage() for r in caplog.records if "could not stop gracefully" in r.getMessage()
    )
    assert "test_processing.py" in report  # names the stuck line
    assert "in proc" in report
    assert "still stopping" not in caplog.text  # its cancellation ended it


async def test_tasks_refusing_to_end_after_a_cut_stop_are_reported_a_limited_number_of_times(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "STOP_REPORT_LIMIT", 3)
    caplog.set_level(logging.WARNING, logger="runnel.runtime.worker")
    running, release = await stuck_stop(make_app, workers, clock, grace_period=1.0, stubborn=True)
    await until(lambda: "no further reports" in caplog.text, clock, within=120)
    await clock.sleep(600)  # simulated: long after the last report
    reports = [r for r in caplog.records if "still stopping" in r.getMessage()]
    assert len(reports) == 3
    assert "in proc" in reports[0].getMessage()
    assert "no further reports" in reports[-1].getMessage()
    assert not running.task.done()  # embedded in a program: the program decides
    release.set()
    assert await running.task == 0


_LIBRARY = """
async def wait_here(future):
    await future

async def pool_get(future):
    await wait_here(future)

async def execute(future):
    await pool_get(future)
"""


async def test_a_task_stuck_inside_a_library_is_described_by_the_line_that_called_it() -> None:
    library: dict[str, Any] = {}
    exec(compile(_LIBRARY, "/opt/py/site-packages/somelib/client.py", "exec"), library)
    future = asyncio.get_running_loop().create_future()

    async def load_customer() -> None:
        await library["execute"](future)

    task = asyncio.create_task(load_customer(), name="loader")
    await asyncio.sleep(0)
    try:
        where = describe_task(task)
    finally:
        future.set_result(None)
        await task
    assert re.fullmatch(
        r"loader: client\.py:3 in wait_here <- client\.py:6 in pool_get <- client\.py:9 in "
        r"execute <- \.\.\. <- test_processing\.py:\d+ in load_customer",
        where,
    ), where
