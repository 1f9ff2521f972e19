"""Helpers for engine tests: apps on a private in-memory broker with a simulated clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import uuid4

import pytest
from dependency_injector import providers

from runnel import App
from runnel.adapters.memory.clock import SimulatedClock
from runnel.runtime.worker import Worker


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
