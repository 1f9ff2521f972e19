"""``asyncio.sleep`` under a harness: simulated, scoped to the harness, always restored."""

from __future__ import annotations

import asyncio

import pytest

from runnel import Events
from runnel.testing import Harness

from .apps import Tick, counting_app, new_app

REAL_SLEEP = asyncio.sleep


@pytest.fixture
def fake_real_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Stand in for the real ``asyncio.sleep``, recording delays instead of waiting."""
    slept: list[float] = []

    async def recording_sleep(delay: float, result: object = None) -> object:
        slept.append(delay)
        return await REAL_SLEEP(0, result)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    return slept


async def test_a_processor_sleeping_for_minutes_takes_simulated_time() -> None:
    app, stream, seen = counting_app(work=120.0)
    async with Harness(app) as h:
        await h.start("w1")
        started = h.now
        await stream.send(Tick(key="a", seq=0), Tick(key="a", seq=1))
        await h.run_until_idle()
        # Two minutes each, plus the linger of the last acknowledgement (sent on its own).
        assert h.now - started == pytest.approx(240, abs=0.01)
    assert len(seen.handled) == 2


async def test_the_test_body_and_the_workers_sleep_in_simulated_time(
    fake_real_sleep: list[float],
) -> None:
    app = new_app()
    stream = app.stream("ticks", record=Tick, partition_by="key")

    @app.processor(stream)
    async def nap(events: Events) -> None:
        async for _ in events:
            await asyncio.sleep(30)

    async with Harness(app) as h:
        await h.start("w1")
        await stream.send(Tick(key="a", seq=0))
        before = h.now
        await asyncio.sleep(45)
        assert h.now - before == 45
        await h.run_until_idle()
    assert [d for d in fake_real_sleep if d > 0] == []  # nothing waited for real


async def test_tasks_that_are_not_under_the_harness_keep_the_real_sleep(
    fake_real_sleep: list[float],
) -> None:
    release = asyncio.Event()

    async def outsider() -> None:
        await release.wait()
        await asyncio.sleep(5)

    task = asyncio.create_task(outsider())  # created before the harness opened
    async with Harness(new_app()) as h:
        release.set()
        await task
        assert h.now == 0
    assert fake_real_sleep == [5]


async def test_sleep_is_restored_to_what_it_was_when_the_harness_closes(
    fake_real_sleep: list[float],
) -> None:
    patched = asyncio.sleep
    async with Harness(new_app()):
        assert asyncio.sleep is not patched
    assert asyncio.sleep is patched


async def test_sleep_is_restored_when_the_test_body_raises() -> None:
    async def failing_test() -> None:
        async with Harness(new_app()) as h:
            await h.start("w1")
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        await failing_test()
    assert asyncio.sleep is REAL_SLEEP


async def test_nested_harnesses_restore_sleep_only_when_the_last_closes() -> None:
    outer_app, inner_app = new_app(), new_app()
    async with Harness(outer_app) as outer:
        async with Harness(inner_app) as inner:
            await asyncio.sleep(10)
            assert (inner.now, outer.now) == (10, 0)
        assert asyncio.sleep is not REAL_SLEEP
        await asyncio.sleep(4)
        assert (inner.now, outer.now) == (10, 4)
    assert asyncio.sleep is REAL_SLEEP


async def test_a_zero_sleep_still_just_yields() -> None:
    app, _, _ = counting_app()
    async with Harness(app) as h:
        assert await asyncio.sleep(0, "result") == "result"
        await asyncio.sleep(-1)
        assert h.now == 0


async def test_sleeping_forever_is_no_deadline_the_clock_could_jump_to() -> None:
    async with Harness(new_app()) as h:
        forever = asyncio.ensure_future(asyncio.sleep(float("inf")))
        await asyncio.sleep(0)
        assert h.clock.next_deadline() is None
        await asyncio.sleep(30)
        assert (h.now, forever.done()) == (30, False)
        forever.cancel()
