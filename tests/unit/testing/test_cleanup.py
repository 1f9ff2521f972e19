"""Closing a harness never hangs, whatever the test body or the workers were doing."""

from __future__ import annotations

import asyncio
import unittest

import pytest

from runnel import Events
from runnel.adapters.system_clock import SystemClock
from runnel.testing import KILLED, Harness

from .apps import UNREACHABLE, Tick, counting_app, new_app


async def test_a_failing_test_body_kills_the_workers_and_restores_the_app() -> None:
    app, stream, seen = counting_app(work=50.0)
    harness = Harness(app)

    async def failing_test() -> None:
        async with harness as h:
            await h.start("w1")
            await h.start("w2")
            await stream.send(Tick(key="a", seq=0))
            await h.run_until(lambda: bool(seen.handled))
            raise AssertionError("the test failed")

    with pytest.raises(AssertionError, match="the test failed"):
        await failing_test()
    assert harness.exit_codes() == {"w1": KILLED, "w2": KILLED}
    assert not harness.is_open
    assert app.settings.redis_url == UNREACHABLE
    assert isinstance(app.container.clock(), SystemClock)
    assert harness.clock.next_deadline() is None or all(
        vw.task is not None and vw.task.done() for vw in harness.workers.values()
    )


async def test_a_normal_exit_stops_running_workers_gracefully() -> None:
    app, stream, _ = counting_app(work=1.0)
    harness = Harness(app)
    async with harness as h:
        await h.start("w1")
        await stream.send(Tick(key="a", seq=0), Tick(key="a", seq=1))
        await h.run_until(lambda: bool(h.deliveries("proc")))
    assert harness.exit_codes() == {"w1": 0}
    # The event in flight when the harness closed was finished, as after SIGTERM.
    assert [d.outcome for d in harness.deliveries("proc")] == ["done"]


async def test_exiting_with_a_paused_worker_does_not_hang() -> None:
    app, _, _ = counting_app()
    harness = Harness(app)
    async with harness as h:
        (await h.start("w1")).pause()
    assert harness.exit_codes() == {"w1": KILLED}


async def test_exiting_while_a_processor_never_finishes_does_not_hang() -> None:
    app = new_app(default_grace_period=3.0)
    stream = app.stream("ticks", record=Tick, partition_by="key")
    forever = asyncio.Event()

    @app.processor(stream)
    async def stuck(events: Events) -> None:
        async for _ in events:
            await forever.wait()

    harness = Harness(app)
    async with harness as h:
        await h.start("w1")
        await stream.send(Tick(key="a", seq=0))
        await h.run_until(lambda: bool(h.deliveries("stuck")))
        stopping_from = h.now
    assert harness.exit_codes() == {"w1": 0}
    assert harness.now - stopping_from >= 3.0  # the grace period ran out, then it was cancelled
    assert [d.outcome for d in harness.deliveries("stuck")] == ["interrupted"]


async def test_a_harness_that_was_never_exited_can_be_abandoned() -> None:
    app, _, _ = counting_app()
    harness = Harness(app)
    await harness.__aenter__()
    worker = await harness.start("w1")
    harness.abandon()
    assert asyncio.sleep.__module__ == "asyncio.tasks"
    assert app.settings.redis_url == UNREACHABLE
    assert not harness.is_open
    assert worker.task is not None
    for _ in range(100):
        await asyncio.sleep(0)
    assert worker.task.cancelled()


def test_the_harness_runs_under_plain_asyncio_run() -> None:
    app, stream, seen = counting_app(work=10.0)

    async def main() -> float:
        async with Harness(app) as h:
            await h.start()
            await stream.send(Tick(key="a", seq=0), Tick(key="b", seq=0))
            await h.run_until_idle()
            return h.now

    assert asyncio.run(main()) >= 10
    assert len(seen.handled) == 2


def test_the_harness_runs_in_an_isolated_asyncio_test_case() -> None:
    app, stream, seen = counting_app()

    class OrdersTest(unittest.IsolatedAsyncioTestCase):
        async def test_orders(self) -> None:
            async with Harness(app) as h:
                await h.start()
                await stream.send(Tick(key="a", seq=0))
                await h.run_until_idle()
            assert len(seen.handled) == 1

    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(OrdersTest).run(result)
    assert result.wasSuccessful(), result.errors + result.failures
