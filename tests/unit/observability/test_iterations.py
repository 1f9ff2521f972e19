"""The iteration monitor: counters, sampled and weighted timing, end-to-end latency, spans."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from runnel.adapters.memory.clock import EPOCH, SimulatedClock
from runnel.adapters.memory.metrics import MemoryMetrics
from runnel.adapters.otel import OpenTelemetryTracing
from runnel.domain.model import Event, Partition
from runnel.runtime.iterations import IterationMonitor, Where
from runnel.telemetry import NoMetrics, NoTracing

WHERE = Where("shop", "orders", "printer", 3, "w1-printer-abc")


def event(ms: int, seq: int = 0) -> Event:
    return Event(Partition("orders", 3), b"%d-%d" % (ms, seq), {b"data": b"{}"})


class CountingClock:
    """A clock that counts how often the monotonic time is read."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.reads = 0

    def now(self) -> float:
        self.reads += 1
        return self.clock.now()

    def wall(self) -> datetime:
        return self.clock.wall()

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)

    async def wait_for(self, waitable: Any, timeout: float) -> bool:
        return await self.clock.wait_for(waitable, timeout)


def epoch_ms(seconds: float) -> int:
    """The id time of an entry appended ``seconds`` after the simulated clock's zero."""
    return round((EPOCH.timestamp() + seconds) * 1000)


async def test_each_iteration_counts_its_events_and_is_timed() -> None:
    clock, metrics = SimulatedClock(start=100.0), MemoryMetrics()
    monitor = IterationMonitor(WHERE, metrics, NoTracing(), clock)
    single = event(epoch_ms(99.0))
    monitor.begin(single)
    await clock.advance(0.25)  # the processor works for a quarter second
    monitor.end(single)
    batch = [event(epoch_ms(100.0), n) for n in range(3)]
    monitor.begin(batch)
    await clock.advance(0.5)
    monitor.end(batch)

    assert metrics.value("runnel_events_processed_total", **WHERE.partition_labels()) == 4
    iteration = metrics.histogram_of(
        "runnel_iteration_duration_seconds", **WHERE.processor_labels()
    )
    assert iteration.count == 2
    assert iteration.sum == pytest.approx(0.75)
    latency = metrics.histogram_of("runnel_end_to_end_latency_seconds", **WHERE.processor_labels())
    # 100.25 - 99.0, then 100.75 - 100.0 (the batch's oldest entry)
    assert latency.count == 2
    assert latency.sum == pytest.approx(2.0, abs=0.002)


async def test_fast_partitions_time_one_iteration_in_a_stride_and_weigh_it_by_the_stride() -> None:
    clock, metrics = SimulatedClock(), MemoryMetrics()
    counting = CountingClock(clock)
    monitor = IterationMonitor(WHERE, metrics, NoTracing(), counting)
    skip = skipped = 0
    for n in range(2000):  # 2000 iterations a second, as a consumer drives the monitor
        item = event(epoch_ms(0.0), n)
        if skip:
            skip -= 1
            await clock.advance(0.00025)  # processing
            skipped += 1
        else:
            skip = monitor.begin(item, skipped, skipped)
            skipped = 0
            await clock.advance(0.00025)
            monitor.end(item)
        await clock.advance(0.00025)  # waiting for the next event
    monitor.count(skipped)

    monitor.publish()
    labels = WHERE.processor_labels()
    iteration = metrics.histogram_of("runnel_iteration_duration_seconds", **labels)
    # A simulated second: the clock is read for about 200 timed iterations (two reads each).
    assert counting.reads <= 2 * 400
    # Each timed iteration counts for those since the one before: exact up to the last.
    assert 2000 - 16 <= iteration.count <= 2000
    assert metrics.value("runnel_events_processed_total", **WHERE.partition_labels()) == 2000
    assert iteration.sum == pytest.approx(0.5, rel=0.02)
    assert metrics.value("runnel_events_processed_total", **WHERE.partition_labels()) == 2000


def test_an_abandoned_iteration_is_neither_processed_nor_timed() -> None:
    clock, metrics = SimulatedClock(), MemoryMetrics()
    monitor = IterationMonitor(WHERE, metrics, NoTracing(), clock)
    monitor.begin(event(1))
    monitor.abandon(ValueError("boom"))
    monitor.failed(1)
    monitor.ignored(1)

    assert metrics.value("runnel_events_processed_total", **WHERE.partition_labels()) == 0
    assert metrics.value("runnel_events_failed_total", **WHERE.partition_labels()) == 1
    assert metrics.value("runnel_events_ignored_total", **WHERE.partition_labels()) == 1
    assert (
        metrics.histogram_of("runnel_iteration_duration_seconds", **WHERE.processor_labels()).count
        == 0
    )


def test_with_everything_off_the_monitor_is_inactive() -> None:
    monitor = IterationMonitor(WHERE, NoMetrics(), NoTracing(), SimulatedClock())
    assert not monitor.active
    assert IterationMonitor(WHERE, MemoryMetrics(), NoTracing(), SimulatedClock()).active


def test_each_iteration_is_one_consumer_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monitor = IterationMonitor(WHERE, NoMetrics(), OpenTelemetryTracing(provider), SimulatedClock())
    assert monitor.active

    first = event(1)
    monitor.begin(first)
    monitor.end(first)
    batch = [event(2, 0), event(2, 1)]
    monitor.begin(batch)
    monitor.abandon(RuntimeError("no"))
    monitor.begin(event(3))
    monitor.abandon(None)  # revoked: no error
    provider.shutdown()

    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["process shop.orders"] * 3
    assert [s.status.status_code for s in spans] == [
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert spans[1].attributes is not None
    assert spans[1].attributes["messaging.batch.message_count"] == 2
