"""``events.ensure_owned()``: the ownership check user code makes at a side effect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from runnel import App, Events, context
from runnel.adapters.memory.clock import SimulatedClock
from runnel.errors import LeaseExpired

from .conftest import Tick, ticks_app, until


async def test_a_check_past_the_lease_deadline_refuses_the_side_effect_and_the_event_comes_back(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    # As after SIGSTOP/SIGCONT: the processor's await completes after the lease's local
    # deadline has passed, before the watchdog ran. The check at the side effect refuses.
    app, ticks = ticks_app(make_app, default_partition_count=1)
    written: list[tuple[int, int]] = []  # (seq, epoch) of each side effect
    refused: list[LeaseExpired] = []
    gate = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 1 and not refused:
                await gate.wait()  # "paused" inside an await
            try:
                epoch = events.ensure_owned()
            except LeaseExpired as exc:
                refused.append(exc)
                raise
            written.append((tick.seq, epoch))

    await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1), Tick(key="k", seq=2))
    running = await workers(app)
    executor = running.worker.executors[0]
    await until(lambda: written == [(0, written[0][1])] if written else False, clock)
    first_epoch = written[0][1]
    feed = executor.feeds[0]
    feed.deadline = clock.now() - 0.001  # the lease lapsed while the await was pending
    gate.set()
    await until(lambda: len({s for s, _ in written}) == 3, clock)
    assert len(refused) == 1
    assert refused[0].epoch == first_epoch
    assert "may have a new owner" in str(refused[0])
    assert [s for s, _ in written] == [0, 1, 2]  # seq 1 written once, by the new lease
    assert all(e > first_epoch for s, e in written if s > 0)
    assert running.worker.halt_reason is None  # no exception policy applied (HALT default)
    assert await running.stop() == 0


async def test_a_check_within_the_lease_returns_the_epoch_everywhere_in_the_processor(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    seen: list[tuple[int, int, int]] = []

    async def deep_in_user_code() -> int:
        return context.ensure_owned()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            seen.append((events.ensure_owned(), await deep_in_user_code(), event.epoch))

    await ticks.send(Tick(key="k", seq=0))
    running = await workers(app)
    await until(lambda: len(seen) == 1, clock)
    ((checked, deep, epoch),) = seen
    assert checked == deep == epoch > 0
    await running.stop()


def test_the_context_check_outside_a_processor_says_so() -> None:
    with pytest.raises(LookupError, match="inside a processor"):
        context.ensure_owned()
