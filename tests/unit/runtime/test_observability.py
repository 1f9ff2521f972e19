"""What a worker reports, on the memory backend in simulated time: metrics, probes, stuck
partitions, traces and log fields."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from dependency_injector import providers
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runnel import App, Events, ExceptionPolicy
from runnel._version import __version__
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.metrics import MemoryMetrics
from runnel.adapters.otel import OpenTelemetryTracing
from runnel.entrypoints.logs import ContextFilter, JsonFormatter
from runnel.middleware import DeadLetterMiddleware

from .conftest import Tick, ticks_app, until


def metered(app: App) -> MemoryMetrics:
    """Give ``app`` metrics kept in memory (what the Prometheus adapter would export)."""
    metrics = MemoryMetrics()
    app.container.metrics.override(providers.Object(metrics))
    return metrics


def labels(app: App, processor: str = "proc", **more: Any) -> dict[str, Any]:
    return {"app": app.name, "stream": "ticks", "processor": processor, **more}


async def test_a_worker_counts_what_it_processes_and_what_it_holds(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, partition_check_interval=1.0)
    metrics = metered(app)
    seen: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)

    await ticks.send(*(Tick(key=f"k{n % 7}", seq=n) for n in range(40)))
    running = await workers(app)
    await until(lambda: len(seen) == 40, clock)
    processed = "runnel_events_processed_total"
    await until(lambda: metrics.total(processed, app=app.name) == 40, clock)
    await clock.advance(2.5)  # two partition checks

    assert metrics.value("runnel_events_sent_total", app=app.name, stream="ticks") == 40
    sends = metrics.histogram_of("runnel_send_duration_seconds", app=app.name, stream="ticks")
    assert sends.count == 1
    assert metrics.value("runnel_partitions_owned", **labels(app)) == 4
    assert metrics.value("runnel_partitions_assigned", **labels(app)) == 4
    assert metrics.value("runnel_stream_partitions", app=app.name, stream="ticks") == 4
    assert metrics.value("runnel_leases_gained_total", **labels(app)) == 4
    assert metrics.value("runnel_rebalances_total", **labels(app)) == 1  # its join
    assert metrics.total("runnel_partition_lag", app=app.name) == 0
    assert metrics.total("runnel_partition_pending", app=app.name) == 0
    assert len(metrics.series("runnel_partition_lag")) == 4
    assert metrics.total("runnel_partition_stuck", app=app.name) == 0
    iterations = metrics.histogram_of("runnel_iteration_duration_seconds", **labels(app))
    assert 0 < iterations.count <= 40  # timed ones, each counting for those since the last
    assert metrics.value("runnel_leader", app=app.name) == 1
    assert metrics.value("runnel_build_info", app=app.name, version=__version__) == 1
    assert metrics.value("runnel_worker_start_time_seconds", app=app.name)
    assert (await running.worker.health.readiness()).ok
    assert metrics.value("runnel_worker_ready", app=app.name) == 1

    assert await running.stop() == 0
    assert metrics.value("runnel_worker_ready", app=app.name) == 0
    # Partitions handed back are no longer exported by this worker.
    assert metrics.series("runnel_partition_lag") == {}


async def test_lag_shows_what_waits_for_a_processor_that_does_not_keep_up(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(
        make_app,
        default_partition_count=1,
        partition_check_interval=1.0,
        default_prefetch_count=2,
        default_prefetch_max=2,  # a fixed read-ahead: the bound below is exact
    )
    metrics = metered(app)
    gate = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for _ in events:
            await gate.wait()

    await ticks.send(*(Tick(key="a", seq=n) for n in range(20)))
    await workers(app)
    lag, pending = "runnel_partition_lag", "runnel_partition_pending"
    await until(lambda: metrics.value(lag, **labels(app, partition=0)) is not None, clock)

    # The fetcher reads ahead (up to twice prefetch_count, plus the event in flight), the
    # rest waits in Redis.
    delivered = metrics.value(pending, **labels(app, partition=0))
    assert delivered is not None
    assert 1 <= delivered <= 5
    assert metrics.value(lag, **labels(app, partition=0)) == 20 - delivered
    gate.set()
    await until(lambda: metrics.value(lag, **labels(app, partition=0)) == 0, clock)
    await until(lambda: metrics.value(pending, **labels(app, partition=0)) == 0, clock)


@pytest.mark.parametrize(
    ("policy", "counted"),
    [
        (ExceptionPolicy.IGNORE, "runnel_events_ignored_total"),
        (ExceptionPolicy.QUARANTINE, "runnel_events_quarantined_total"),
    ],
)
async def test_failures_are_counted_by_what_the_policy_did(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    policy: ExceptionPolicy,
    counted: str,
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    metrics = metered(app)

    @app.processor(ticks, exception_policy=policy)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 2:
                raise ValueError("poison")

    await ticks.send(*(Tick(key="a", seq=n) for n in range(5)))
    await workers(app)
    where = labels(app, partition=0)
    await until(lambda: metrics.value(counted, **where) == 1, clock)
    assert metrics.value("runnel_events_failed_total", **where) == 1
    processed = 4 if policy is ExceptionPolicy.IGNORE else 2
    await until(lambda: metrics.value("runnel_events_processed_total", **where) == processed, clock)


async def test_dead_lettered_events_are_counted(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    metrics = metered(app)
    dead = DeadLetterMiddleware(source=ticks)

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq % 2:
                raise ValueError("odd")

    await ticks.send(*(Tick(key="a", seq=n) for n in range(6)))
    await workers(app)
    where = labels(app, partition=0)
    await until(lambda: metrics.value("runnel_events_dead_lettered_total", **where) == 3, clock)
    assert metrics.value("runnel_events_failed_total", **where) == 3
    assert metrics.value("runnel_events_ignored_total", **where) == 0  # dead-lettered instead


async def test_take_batches_count_every_event_and_time_each_batch(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    metrics = metered(app)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for batch in events.take(5, within=1.0):
            await clock.sleep(0.1 * len(batch))

    await ticks.send(*(Tick(key="a", seq=n) for n in range(10)))
    await workers(app)
    where = labels(app, partition=0)
    await until(lambda: metrics.value("runnel_events_processed_total", **where) == 10, clock)
    iterations = metrics.histogram_of("runnel_iteration_duration_seconds", **labels(app))
    assert iterations.count == 2
    assert iterations.sum == pytest.approx(1.0)


@pytest.fixture
def warnings_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="runnel.runtime.monitor")
    return caplog


async def test_a_partition_whose_iteration_hangs_is_reported_stuck_then_moving(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    warnings_log: pytest.LogCaptureFixture,
) -> None:
    app, ticks = ticks_app(
        make_app,
        default_partition_count=1,
        partition_check_interval=1.0,
        stuck_iteration_seconds=10.0,
        stuck_pending_seconds=0,
    )
    metrics = metered(app)
    hang = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 1:
                await hang.wait()

    ids = await ticks.send(*(Tick(key="a", seq=n) for n in range(3)))
    await workers(app)
    where = labels(app, partition=0)
    stuck = "runnel_partition_stuck"
    await until(lambda: metrics.value(stuck, **where) == 1, clock)

    warnings = [r for r in warnings_log.records if "is stuck" in r.getMessage()]
    assert [r.levelname for r in warnings] == ["WARNING"]
    assert f"the iteration on entry {ids[1].decode()} has run for at least" in (
        warnings[0].getMessage()
    )
    reasons = {"reason": "iteration", **where}
    assert metrics.value("runnel_stuck_partition_warnings_total", **reasons) == 1
    await clock.advance(30.0)  # still stuck: not reported again
    assert metrics.value("runnel_stuck_partition_warnings_total", **reasons) == 1

    hang.set()
    await until(lambda: metrics.value(stuck, **where) == 0, clock)
    assert any("is moving again" in r.getMessage() for r in warnings_log.records)


async def test_a_quarantined_partition_is_stuck_on_its_pending_entry(
    make_app: Callable[..., App],
    workers: Any,
    clock: SimulatedClock,
    warnings_log: pytest.LogCaptureFixture,
) -> None:
    app, ticks = ticks_app(
        make_app,
        default_partition_count=1,
        partition_check_interval=1.0,
        stuck_pending_seconds=60.0,
    )
    metrics = metered(app)

    @app.processor(ticks, exception_policy=ExceptionPolicy.QUARANTINE)
    async def proc(events: Events) -> None:
        async for _ in events:
            raise ValueError("always")

    await ticks.send(Tick(key="a", seq=0))
    await workers(app)
    where = labels(app, partition=0)
    await until(lambda: metrics.value("runnel_partition_stuck", **where) == 1, clock)
    reasons = {"reason": "pending", **where}
    assert metrics.value("runnel_stuck_partition_warnings_total", **reasons) == 1
    oldest = metrics.value("runnel_partition_oldest_pending_seconds", **where)
    assert oldest is not None
    assert oldest > 60.0
    assert any("oldest pending entry" in r.getMessage() for r in warnings_log.records)


async def test_background_task_failures_are_counted(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app(partition_check_interval=1.0)
    metrics = metered(app)

    @app.timer(interval=1.0)
    async def flaky() -> None:
        raise RuntimeError("down")

    await workers(app)
    failures = {"app": app.name, "task": "flaky", "kind": "timer"}
    await until(lambda: (metrics.value("runnel_task_failures_total", **failures) or 0) >= 3, clock)


async def test_the_probes_follow_the_worker_from_start_to_stop(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for _ in events:
            pass

    running = await workers(app)
    health = running.worker.health
    await until(lambda: health.facts().executors[0].owned == 4, clock)
    assert (await health.liveness()).ok
    ready = await health.readiness()
    assert ready.ok
    assert [c.name for c in ready.checks] == ["started", "running", "backend", "processor:proc"]

    assert await running.stop() == 0
    after = await health.readiness()
    assert [c.name for c in after.failing()] == ["running"]
    assert (await health.liveness()).ok  # stopped, not halted


async def test_a_halted_worker_fails_its_liveness_probe(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)
    metrics = metered(app)

    @app.processor(ticks, exception_policy=ExceptionPolicy.HALT)
    async def proc(events: Events) -> None:
        async for _ in events:
            raise ValueError("fatal")

    await ticks.send(Tick(key="a", seq=0))
    running = await workers(app)
    assert await running.task == 1
    verdict = await running.worker.health.liveness()
    assert [c.name for c in verdict.failing()] == ["halted"]
    assert metrics.value("runnel_worker_halted", app=app.name) == 1


async def test_a_send_and_its_processing_are_linked_spans(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app, ticks = ticks_app(make_app, default_partition_count=2)
    app.container.tracing.override(providers.Object(OpenTelemetryTracing(provider)))
    done = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for _ in events:
            done.set()

    [entry] = await ticks.send(Tick(key="a", seq=0))
    await workers(app)
    await until(done.is_set, clock)
    await until(lambda: len(exporter.get_finished_spans()) == 2, clock)
    sent, processed = sorted(exporter.get_finished_spans(), key=lambda s: s.name, reverse=True)
    assert (sent.name, processed.name) == (f"send {app.name}.ticks", f"process {app.name}.ticks")
    assert processed.parent is not None
    assert processed.parent.span_id == sent.context.span_id
    assert [link.context.span_id for link in processed.links] == [sent.context.span_id]
    assert processed.attributes is not None
    assert processed.attributes["messaging.message.id"] == entry.decode()


async def test_log_lines_of_an_events_processing_name_its_entry(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("shop")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    app, ticks = ticks_app(make_app, default_partition_count=1)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            logger.info("charged", extra={"seq": tick.seq})

    try:
        ids = await ticks.send(Tick(key="a", seq=0), Tick(key="a", seq=1))
        await workers(app)
        await until(lambda: out.getvalue().count("charged") == 2, clock)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["entry_id"], line["seq"], line["partition"]) for line in lines] == [
        (ids[0].decode(), 0, 0),
        (ids[1].decode(), 1, 0),
    ]
