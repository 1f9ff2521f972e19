"""Failure paths just above the ports, where only the engine's own checks stand between
a slow or refused backend call and an event reaching user code too late (memory
backend, simulated clock)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from runnel import App, Events
from runnel.adapters.memory.clock import SimulatedClock
from runnel.ports import Lease

from .conftest import Tick, ticks_app, until

SLOW_REPLY = 5.0  # seconds the first renewal's reply takes
LOCK_EXPIRY = 10.0


async def test_a_slow_renewal_reply_dates_the_deadline_from_its_send_and_nothing_follows_it(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1, default_lock_expiry=LOCK_EXPIRY)
    handed: list[float] = []  # when each event reached user code

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for _ in events:
            handed.append(clock.now())
            await clock.sleep(0.05)

    running = await workers(app)
    executor = running.worker.executors[0]
    await until(lambda: 0 in executor.feeds, clock)
    locks = app.backend.locks
    real_extend = locks.extend
    sent: list[float] = []
    never = asyncio.Event()

    async def slow_then_silent(leases: Sequence[Lease], ttl: float) -> list[bool]:
        if feed.lease not in leases:  # leadership renews through the same port
            return await real_extend(leases, ttl)
        sent.append(clock.now())
        if len(sent) > 1:
            await never.wait()  # every later renewal hangs: no reply at all
        await clock.sleep(SLOW_REPLY)  # the first one is answered, late
        return await real_extend(leases, ttl)

    feed = executor.feeds[0]
    monkeypatch.setattr(locks, "extend", slow_then_silent)
    producing = True

    async def produce() -> None:
        seq = 0
        while producing:
            await ticks.send(Tick(key="k", seq=seq))
            seq += 1
            await clock.sleep(0.1)

    producer = asyncio.create_task(produce())
    try:
        await until(lambda: len(sent) >= 1, clock)
        await until(lambda: clock.now() >= sent[0] + SLOW_REPLY + 0.5, clock)
        usable = executor.lease_clock.usable
        assert feed.deadline == pytest.approx(sent[0] + usable)  # from the send, not the reply
        await until(lambda: feed.lost, clock, within=30)
        assert handed, "precondition: events reached user code before the deadline"
        await clock.sleep(5)  # events keep arriving; none may be handed out
        assert max(handed) < sent[0] + usable
        assert max(handed) > sent[0] + SLOW_REPLY  # it kept processing while it could
    finally:
        producing = False
        never.set()
        await producer


async def test_after_one_refused_acknowledgement_no_buffered_event_reaches_user_code(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1, default_prefetch_count=50)
    handed: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            handed.append(tick.seq)
            await clock.sleep(0.01)

    await ticks.send(*[Tick(key="k", seq=i) for i in range(500)])
    running = await workers(app)
    executor = running.worker.executors[0]
    await until(lambda: len(handed) >= 20, clock)
    feed = executor.feeds[0]
    assert len(feed.buffer) > 0, "precondition: events are buffered"
    # Another owner takes the lease under the worker's feet (as after a pause it did not
    # notice): its next acknowledgement is refused by the fence.
    await app.backend.kv.set(feed.lease.key, b"someone-else:999999")
    await until(lambda: executor.acker.refused > 0 or feed.lost, clock)
    assert executor.acker.refused > 0, "precondition: an acknowledgement was refused"
    seen_at_refusal = len(handed)
    await clock.sleep(0.3)  # time to hand out thirty buffered events, if it would
    assert len(handed) == seen_at_refusal
    assert not feed.buffer
