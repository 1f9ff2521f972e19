"""Metrics of faults, on the memory backend in simulated time: members reaped as gone (by
their closed connection or their expired heartbeat), ``LeaseExpired`` raised to user code,
and failed sends by error class."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from dependency_injector import providers

from runnel import App, Events
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.metrics import HistogramValue, MemoryMetrics
from runnel.errors import (
    BackendFull,
    BackendUnavailable,
    BackpressureError,
    LeaseExpired,
    OutcomeUnknown,
)
from runnel.ports import Append, Cap, Routing
from runnel.testing import Harness, HarnessFactory

from .conftest import Tick, drain, executor, holders, start_owning, ticks_app, until


def metered(app: App) -> MemoryMetrics:
    """Give ``app`` metrics kept in memory (what the Prometheus adapter would export)."""
    metrics = MemoryMetrics()
    app.container.metrics.override(providers.Object(metrics))
    return metrics


def reaped(metrics: MemoryMetrics, app: App, reason: str) -> float:
    return metrics.total("runnel_partitions_reaped_total", app=app.name, reason=reason)


def counting_app(make_app: Callable[..., App]) -> tuple[App, Any, list[int]]:
    app, ticks = ticks_app(
        make_app,
        default_lock_expiry=10.0,
        default_heartbeat_interval=1.0,
        default_partition_count=8,
    )
    seen: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)

    return app, ticks, seen


def send_errors(metrics: MemoryMetrics) -> dict[tuple[str, ...], float]:
    return {
        key: series.value
        for key, series in metrics.series("runnel_send_errors_total").items()
        if not isinstance(series, HistogramValue)
    }


def publish(h: Harness) -> None:
    for vw in h.workers.values():
        if vw.alive:
            vw.worker.publish_metrics()
            for ex in vw.worker.executors:
                ex.monitor.publish(ex.counts())


# ---------------------------------------------------------------------- reaps


async def test_partitions_of_a_member_gone_by_its_closed_connection_are_counted(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, _, _ = counting_app(make_app)
    metrics = metered(app)
    async with runnel_harness(app) as h:
        w1, _w2, _w3 = await start_owning(h, "w1", "w2", "w3", partitions=8)
        theirs = set(executor(w1).feeds)
        assert theirs, "precondition: the victim owns partitions"
        await w1.kill()
        await h.run_until(lambda: all(n in holders(h) for n in theirs), timeout=30)
        publish(h)
        assert reaped(metrics, app, "connection") == len(theirs)
        assert reaped(metrics, app, "heartbeat") == 0


async def test_partitions_of_a_member_whose_heartbeat_expired_are_counted_apart(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, _, _ = counting_app(make_app)
    metrics = metered(app)
    h = runnel_harness(app)
    # A store that cannot show connections: only the heartbeat's expiry tells.
    h.backend = dataclasses.replace(h.backend, presence=None)
    async with h:
        w1, _w2 = await start_owning(h, "w1", "w2", partitions=8)
        theirs = set(executor(w1).feeds)
        await w1.kill()
        await h.run_until(lambda: all(n in holders(h) for n in theirs), timeout=60)
        publish(h)
        assert reaped(metrics, app, "heartbeat") == len(theirs)
        assert reaped(metrics, app, "connection") == 0


# ---------------------------------------------------------------------- LeaseExpired


async def test_lease_expired_raised_to_the_processor_is_counted(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    metrics = metered(app)
    written: list[int] = []
    refused: list[LeaseExpired] = []
    gate = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 1 and not refused:
                await gate.wait()  # "paused" inside an await
            try:
                events.ensure_owned()
            except LeaseExpired as exc:
                refused.append(exc)
                raise
            written.append(tick.seq)

    await ticks.send(*(Tick(key="k", seq=n) for n in range(3)))
    running = await workers(app)
    executor_ = running.worker.executors[0]
    await until(lambda: written == [0], clock)
    name = "runnel_lease_expired_errors_total"
    labels = {"app": app.name, "stream": "ticks", "processor": "proc"}
    assert metrics.value(name, **labels) == 0
    executor_.feeds[0].deadline = clock.now() - 0.001  # the lease lapsed during the await
    gate.set()
    await until(lambda: written == [0, 1, 2], clock)
    assert len(refused) == 1
    assert metrics.value(name, **labels) == 1
    assert await running.stop() == 0


# ---------------------------------------------------------------------- send errors


async def test_a_send_refused_by_the_lossless_cap_is_counted_by_its_class(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    metrics = metered(app)
    ticks = app.stream(
        "ticks", record=Tick, partition_by="key", partition_count=1, partition_size=2
    )
    drain(app, ticks)  # a processor, not running: its unprocessed entries fill the cap
    await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1))
    with pytest.raises(BackpressureError):
        await ticks.send(Tick(key="k", seq=2))
    with pytest.raises(TypeError):  # refused before the backend: not a send error
        await ticks.send("not a tick")  # type: ignore[arg-type]  # the mistake under test
    assert send_errors(metrics) == {(app.name, "ticks", "BackpressureError"): 1.0}


class FailingLog:
    """A stream log whose appends raise ``error`` (the rest of the port is unused here)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def append(
        self,
        entries: Sequence[Append],
        cap: Cap | None = None,
        window: float = 0.0,
        routing: Routing | None = None,
    ) -> list[bytes]:
        raise self.error

    async def ensure_group(self, key: str, group: str, start: bytes) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (OutcomeUnknown("the reply was lost"), "OutcomeUnknown"),
        (BackendFull("OOM"), "BackendFull"),
        (BackendUnavailable("refused"), "BackendUnavailable"),
        (RuntimeError("a bug"), "other"),
    ],
)
async def test_every_send_error_is_counted_under_its_class(
    make_app: Callable[..., App], error: Exception, label: str
) -> None:
    app = make_app()
    metrics = metered(app)
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    store = ticks.store
    store._log = FailingLog(error)  # type: ignore[assignment]  # a log that fails on purpose
    for _ in range(2):
        with pytest.raises(type(error)):
            await ticks.send(Tick(key="k", seq=0))
    assert send_errors(metrics) == {(app.name, "ticks", label): 2.0}
    assert metrics.value("runnel_events_sent_total", app=app.name, stream="ticks") == 0
