"""Helpers for engine tests: apps on a private in-memory broker with a simulated clock.

Tests of one worker run it here (``workers``); tests of several workers, faults and
coordination run them under the public test kit (:class:`runnel.testing.Harness`, through
the ``runnel_harness`` fixture), with the few views of the runtime below.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import pytest
from dependency_injector import providers

from runnel import App, Events, Record, Stream
from runnel.adapters.memory.clock import SimulatedClock
from runnel.runtime.executor import Executor
from runnel.runtime.worker import Worker
from runnel.testing import Harness, VirtualWorker


class Tick(Record):
    """The events of most runtime tests: ``seq`` counts up per ``key``."""

    key: str
    seq: int


def ticks_app(make_app: Callable[..., App], **settings: Any) -> tuple[App, Stream[Tick]]:
    """An app (``make_app(**settings)``) and its stream ``ticks`` partitioned by key."""
    app = make_app(**settings)
    return app, app.stream("ticks", record=Tick, partition_by="key")


def drain(app: App, stream: Stream[Any], name: str = "proc") -> None:
    """Register a processor that takes every event of ``stream`` and does nothing with it."""

    @app.processor(stream, name=name)
    async def proc(events: Events) -> None:
        async for _ in events:
            pass


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(autojump=True)


@pytest.fixture
def make_app(clock: SimulatedClock) -> Callable[..., App]:
    def make(**settings: Any) -> App:
        name = f"t{uuid4().hex[:8]}"
        settings.setdefault("default_partition_count", 4)
        settings.setdefault("default_join_delay", 0)
        app = App(name=name, redis_url=f"memory://{name}", **settings)
        app.container.clock.override(providers.Object(clock))
        return app

    return make


class Running:
    """A worker running in the background of a test."""

    def __init__(self, worker: Worker, task: asyncio.Task[int]) -> None:
        self.worker = worker
        self.task = task

    async def stop(self) -> int:
        self.worker.request_stop()
        return await self.task


@pytest.fixture
async def workers() -> AsyncIterator[Callable[..., Any]]:
    started: list[Running] = []

    async def start(app: App, **kwargs: Any) -> Running:
        worker = Worker(app.plan(), install_signals=False, **kwargs)
        task = asyncio.create_task(worker.run())
        started_or_done = asyncio.ensure_future(worker.started.wait())
        await asyncio.wait({task, started_or_done}, return_when=asyncio.FIRST_COMPLETED)
        started_or_done.cancel()
        running = Running(worker, task)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            await running.stop()


async def until(
    condition: Callable[[], bool],
    clock: SimulatedClock,
    within: float = 120.0,
    step: float = 0.01,
) -> None:
    """Wait (in simulated time) until ``condition()`` holds; fail after ``within`` seconds.

    ``condition`` is checked every ``step`` simulated seconds.
    """
    deadline = clock.now() + within
    while not condition():
        if clock.now() > deadline:
            raise AssertionError(f"condition not met within {within} simulated seconds")
        await clock.sleep(step)


def executor(worker: VirtualWorker) -> Executor:
    """The executor of a virtual worker's one processor."""
    (only,) = worker.worker.executors
    return only


def holders(h: Harness, processor: str = "proc") -> dict[int, list[str]]:
    """Partition -> every live worker that would hand its events to user code right now."""
    held: dict[int, list[str]] = {}
    for vw in h.workers.values():
        for number in sorted(vw.partitions(processor)):
            held.setdefault(number, []).append(vw.name)
    return held


def exclusive(h: Harness, processor: str = "proc") -> bool:
    """No partition has two owners that would both hand its events to user code."""
    return all(len(names) == 1 for names in holders(h, processor).values())


async def start(h: Harness, *names: str) -> list[VirtualWorker]:
    """Start workers called ``names``, each as soon as the previous one is up."""
    return [await h.start(name, balanced=False) for name in names]


async def start_owning(
    h: Harness, *names: str, partitions: int, processor: str = "proc"
) -> list[VirtualWorker]:
    """Start workers called ``names``, and run until all ``partitions`` have an owner."""
    started = await start(h, *names)
    await h.run_until(lambda: len(holders(h, processor)) == partitions)
    return started


async def stop_all(h: Harness) -> None:
    """Stop every live worker as SIGTERM does (a paused one is killed: it cannot hear it)."""
    for vw in list(h.workers.values()):
        if vw.state == "paused":
            await vw.kill()
        elif vw.alive:
            assert await vw.stop() == 0
