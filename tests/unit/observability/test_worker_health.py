"""The worker's health: pings with a time limit, shared and rate-limited; reconnects counted."""

from __future__ import annotations

import asyncio

from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.metrics import MemoryMetrics
from runnel.errors import BackendUnavailable, PermissionDenied
from runnel.runtime.health import WorkerHealth


class Backend:
    """A ping that answers, fails, refuses or hangs, as the test says."""

    def __init__(self) -> None:
        self.calls = 0
        self.mode = "answer"
        self.release = asyncio.Event()

    async def ping(self) -> None:
        self.calls += 1
        if self.mode == "down":
            raise BackendUnavailable("connection refused")
        if self.mode == "refuse":
            raise PermissionDenied("NOPERM this user has no permissions to run 'get'")
        if self.mode == "hang":
            await self.release.wait()


def started(clock: SimulatedClock, backend: Backend, metrics: MemoryMetrics) -> WorkerHealth:
    health = WorkerHealth("shop", clock, backend.ping, metrics, ping_timeout=1.0, recheck=1.0)
    health.start()
    return health


async def test_a_probe_pings_only_when_what_it_knows_is_older_than_a_second() -> None:
    clock, backend, metrics = SimulatedClock(autojump=True), Backend(), MemoryMetrics()
    health = started(clock, backend, metrics)
    assert (await health.readiness()).ok
    assert (await health.readiness()).ok
    assert backend.calls == 1
    await clock.advance(1.0)
    assert (await health.readiness()).ok
    assert backend.calls == 2
    health.answered()  # another call succeeded meanwhile: nothing to check
    await health.readiness()
    assert backend.calls == 2


async def test_an_unreachable_backend_fails_readiness_then_counts_the_reconnect() -> None:
    clock, backend, metrics = SimulatedClock(autojump=True), Backend(), MemoryMetrics()
    health = started(clock, backend, metrics)
    backend.mode = "down"
    verdict = await health.readiness()
    assert [c.name for c in verdict.failing()] == ["backend"]
    assert metrics.value("runnel_backend_reachable", app="shop") == 0
    assert metrics.value("runnel_worker_ready", app="shop") == 0
    assert (await health.liveness()).ok  # a restart would not bring Redis back

    backend.mode = "answer"
    await clock.advance(1.0)
    assert (await health.readiness()).ok
    assert metrics.value("runnel_reconnects_total", app="shop") == 1
    assert metrics.value("runnel_backend_errors_total", app="shop") == 1
    assert metrics.value("runnel_backend_reachable", app="shop") == 1


async def test_a_hung_backend_fails_within_the_time_limit_and_probes_share_one_ping() -> None:
    clock, backend, metrics = SimulatedClock(autojump=True), Backend(), MemoryMetrics()
    health = started(clock, backend, metrics)
    backend.mode = "hang"
    first, second = await asyncio.gather(health.readiness(), health.readiness())
    assert not first.ok
    assert not second.ok
    assert backend.calls == 1
    await clock.advance(5.0)
    assert not (await health.readiness()).ok
    assert backend.calls == 1  # the hung ping is still the one in flight
    backend.release.set()
    await clock.advance(1.0)
    assert (await health.readiness()).ok
    await health.aclose()


async def test_a_backend_that_refuses_the_ping_still_answers() -> None:
    clock, backend, metrics = SimulatedClock(autojump=True), Backend(), MemoryMetrics()
    health = started(clock, backend, metrics)
    backend.mode = "refuse"
    assert (await health.readiness()).ok


async def test_a_stopping_worker_is_not_ready_and_does_not_ping() -> None:
    clock, backend, metrics = SimulatedClock(autojump=True), Backend(), MemoryMetrics()
    health = started(clock, backend, metrics)
    health.stop()
    assert [c.name for c in (await health.readiness()).failing()] == ["running"]
    assert backend.calls == 0
