"""Background tasks, timers, crontab and leader election on the memory backend.

Time is simulated: a timer "running for 100 seconds" takes milliseconds.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest

from runnel import App, context
from runnel.adapters.memory.clock import EPOCH, SimulatedClock
from runnel.testing import HarnessFactory

from .conftest import start, stop_all, until

POLL_MS = 1000  # leadership_poll_interval in these tests: 1 simulated second


class Hostile(Exception):
    """An exception that cannot even be printed."""

    def __str__(self) -> str:
        raise RuntimeError("cannot print me")

    def __repr__(self) -> str:
        raise RuntimeError("cannot repr me")


async def test_a_task_runs_once_at_start_and_its_failure_does_not_stop_the_worker(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app()
    ran: list[str] = []

    @app.task
    async def greet() -> None:
        ran.append("greet")

    @app.task(name="broken")
    async def fails() -> None:
        ran.append("broken")
        raise Hostile()

    running = await workers(app)
    await until(lambda: sorted(ran) == ["broken", "greet"], clock)
    await clock.sleep(5)
    assert not running.task.done()
    assert await running.stop() == 0
    assert sorted(ran) == ["broken", "greet"]


async def test_a_timer_fires_on_its_grid_without_drift_and_survives_failures(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app()
    fired: list[float] = []

    @app.timer(interval=0.7)
    async def tick() -> None:
        fired.append(clock.now())
        await clock.sleep(0.3)  # work inside the run does not push the next slot
        if len(fired) % 3 == 0:
            raise Hostile()

    running = await workers(app)
    start = clock.now()
    await until(lambda: len(fired) >= 150, clock, within=200)
    await running.stop()
    offsets = [t - start for t in fired[:150]]
    assert offsets == pytest.approx([0.7 * (k + 1) for k in range(150)], abs=1e-6)


async def test_a_timer_that_overruns_skips_slots_instead_of_overlapping(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app()
    active = 0
    overlaps = 0
    starts: list[float] = []

    @app.timer(interval=1.0)
    async def slow() -> None:
        nonlocal active, overlaps
        active += 1
        overlaps += active > 1
        starts.append(clock.now())
        await clock.sleep(2.5)
        active -= 1

    running = await workers(app)
    await until(lambda: len(starts) >= 5, clock, within=60)
    await running.stop()
    assert overlaps == 0
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(starts)]
    assert gaps[:4] == [3.0, 3.0, 3.0, 3.0]  # runs 2.5s, next free slot is 3s later


async def test_a_crontab_fires_at_its_local_wall_times(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app(leadership_poll_interval=600_000)  # few election rounds over 3 days
    fired: list[datetime] = []

    @app.crontab("30 9 * * *", timezone="Europe/Paris")
    async def morning() -> None:
        fired.append(clock.wall())

    running = await workers(app)
    await until(lambda: len(fired) >= 3, clock, within=4 * 86_400, step=600)
    await running.stop()
    # The simulated wall clock starts at 2026-01-01 00:00 UTC; Paris is UTC+1 in winter.
    assert datetime(2026, 1, 1, tzinfo=timezone.utc) == EPOCH
    assert [t.isoformat() for t in fired[:3]] == [
        "2026-01-01T08:30:00+00:00",
        "2026-01-02T08:30:00+00:00",
        "2026-01-03T08:30:00+00:00",
    ]


def leader_app(make_app: Callable[..., App]) -> tuple[App, Counter[int], list[tuple[str, int]]]:
    app = make_app(leadership_poll_interval=POLL_MS)
    slots: Counter[int] = Counter()
    runs: list[tuple[str, int]] = []

    @app.timer(interval=0.5, on_leader=True)
    async def leader_tick() -> None:
        slot = round(clock_of(app).wall().timestamp() / 0.5)
        slots[slot] += 1
        runs.append((context.worker_id.get(), slot))

    return app, slots, runs


def clock_of(app: App) -> Any:
    return app.backend.clock


async def test_leader_ticks_run_once_each_on_one_of_several_workers(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, slots, runs = leader_app(make_app)
    async with runnel_harness(app) as h:
        await start(h, "w1", "w2", "w3")
        await h.run_until(lambda: len(slots) >= 40, timeout=60)
        await stop_all(h)
    assert max(slots.values()) == 1
    assert len({worker for worker, _ in runs}) == 1  # the leader did them all


async def test_a_graceful_leader_hands_over_at_once_and_a_dead_one_within_two_polls(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, slots, runs = leader_app(make_app)
    async with runnel_harness(app) as h:
        await start(h, "w1", "w2", "w3")
        await h.run_until(lambda: len(runs) >= 4)
        first = runs[-1][0]
        stopped_at = h.now
        await h.worker(first).stop()
        await h.run_until(lambda: runs[-1][0] != first)
        graceful_gap = h.now - stopped_at
        second = runs[-1][0]
        killed_at = h.now
        await h.worker(second).kill()
        await h.run_until(lambda: runs[-1][0] not in (first, second))
        crash_gap = h.now - killed_at
        await stop_all(h)
    assert graceful_gap <= POLL_MS / 1000 + 0.5  # the key was released: next poll takes it
    assert crash_gap <= 2 * POLL_MS / 1000 + 0.5
    assert max(slots.values()) == 1


async def test_a_paused_leader_never_runs_a_tick_its_successor_ran(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, slots, runs = leader_app(make_app)
    async with runnel_harness(app) as h:
        await start(h, "w1", "w2")
        await h.run_until(lambda: len(runs) >= 4)
        leader = h.worker(runs[-1][0])
        leader.pause()  # it keeps its timers, but nothing it says reaches the backend
        await h.run_until(lambda: runs[-1][0] != leader.name, timeout=10)
        await h.advance(3)
        leader.resume()
        await h.advance(5)
        await stop_all(h)
    assert max(slots.values()) == 1
    assert {w for w, _ in runs} == {"w1", "w2"}


async def test_leadership_is_released_on_a_graceful_exit(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, _, runs = leader_app(make_app)
    running = await workers(app)
    await until(lambda: len(runs) >= 2, clock)
    assert await app.backend.kv.get(f"__lead:{app.name}") is not None
    await running.stop()
    assert await app.backend.kv.get(f"__lead:{app.name}") is None


async def test_a_leader_only_task_runs_on_one_worker(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app = make_app(leadership_poll_interval=POLL_MS)
    ran: list[str] = []

    @app.task(on_leader=True)
    async def once() -> None:
        ran.append(context.worker_id.get())

    async with runnel_harness(app) as h:
        await start(h, "w1", "w2", "w3")
        await h.run_until(lambda: len(ran) >= 1)
        await h.advance(5)
        await stop_all(h)
    assert len(ran) == 1


async def test_a_leader_only_task_runs_again_on_a_new_leader_after_a_failover(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app = make_app(leadership_poll_interval=POLL_MS)
    ran: list[str] = []

    @app.task(on_leader=True)
    async def on_leadership() -> None:
        ran.append(context.worker_id.get())

    async with runnel_harness(app) as h:
        await start(h, "w1", "w2")
        await h.run_until(lambda: len(ran) == 1)
        await h.worker(ran[0]).kill()
        await h.run_until(lambda: len(ran) == 2, timeout=3 * POLL_MS / 1000)
        await h.advance(5)
        await stop_all(h)
    assert sorted(ran) == ["w1", "w2"]
