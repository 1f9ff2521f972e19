"""Regression tests for engine bugs found by the end-to-end tests (memory backend)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runnel import App, Events
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.locks import MemoryPartitionLocks

from .conftest import Tick, ticks_app, until


async def test_a_lease_lost_on_a_fenced_ack_is_taken_again_and_the_partition_goes_on(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    # Found with real workers: a worker resumed after SIGSTOP had its reads and acks fenced;
    # the feeds were marked lost but kept, so no partition was ever processed again.
    app, ticks = ticks_app(make_app, default_partition_count=1)
    seen: list[int] = []
    holding = asyncio.Event()
    go_on = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if not go_on.is_set():
                holding.set()
                await go_on.wait()
            seen.append(tick.seq)

    await ticks.send(*[Tick(key="k", seq=i) for i in range(3)])
    running = await workers(app)
    await until(holding.is_set, clock)
    # The lease vanishes while event 0 is in flight, and no time passes before its ack: the
    # ack is refused (fenced) before any renewal could notice the loss.
    locks = app.backend.locks
    assert isinstance(locks, MemoryPartitionLocks)
    assert locks.force_release(ticks.keys.lock("proc", 0))
    go_on.set()
    # Whatever was processed under the lost lease had its ack refused and comes again, in
    # order, once the partition is taken again.
    await until(lambda: len(seen) > 3 and seen[-3:] == [0, 1, 2], clock, within=30)
    assert await running.stop() == 0
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []
