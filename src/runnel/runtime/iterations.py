"""What a partition's iterations tell the metrics and the traces.

A consumer hands every item (an event, or a ``take()`` batch) to the processor and gets
control back when the processor asks for the next one: that span of time is one
*iteration*. :class:`IterationMonitor` is told when each iteration begins and how it
ends, and turns that into:

* counters: events processed (kept in a plain integer and added to the counter at every
  timed iteration and every scrape) and, from the consumer's policy, failed, ignored,
  dead-lettered and quarantined events;
* histograms: the iteration's duration, and the end-to-end latency of its oldest entry
  (from the time in its id, on the Redis clock, to the iteration's end);
* a consumer span per iteration (when tracing is on), current while the processor runs.

Costs are kept off the processing loop: with metrics and tracing off, the consumer does
not create a monitor at all; with metrics on, the consumer calls it for one iteration in a
stride (:func:`~runnel.domain.metrics.next_stride`, about 200 a second per partition) and
only counts the others itself; each timed iteration counts, in the histograms, for itself
and the ones let pass since the timed one before it.

Example:
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> from runnel.adapters.memory.metrics import MemoryMetrics
    >>> from runnel.domain.model import Event, Partition
    >>> from runnel.telemetry import NoTracing
    >>> metrics = MemoryMetrics()
    >>> where = Where("shop", "orders", "printer", 3, "w1-printer-abc")
    >>> monitor = IterationMonitor(where, metrics, NoTracing(), SimulatedClock())
    >>> event = Event(Partition("orders", 3), b"1-0", {})
    >>> skip = monitor.begin(event); monitor.end(event)
    >>> metrics.value("runnel_events_processed_total", **where.partition_labels())
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from runnel.domain.metrics import next_stride
from runnel.domain.model import Event
from runnel.ports import Clock
from runnel.telemetry import LabelValue, Metrics, ProcessSpan, ProcessTarget, Tracing

Item = Event | list[Event]


@dataclass(frozen=True, slots=True)
class Where:
    """The partition a monitor watches, and the executor watching it."""

    app: str
    stream: str
    processor: str
    partition: int
    executor: str

    def processor_labels(self) -> dict[str, LabelValue]:
        """The labels of per-processor metrics."""
        return {"app": self.app, "stream": self.stream, "processor": self.processor}

    def partition_labels(self) -> dict[str, LabelValue]:
        """The labels of per-partition metrics."""
        return {**self.processor_labels(), "partition": self.partition}

    def target(self) -> ProcessTarget:
        """What consumer spans describe."""
        return ProcessTarget(
            f"{self.app}.{self.stream}", self.processor, self.partition, self.executor
        )


class IterationMonitor:
    """Counts, times and traces one partition's iterations (see the module docstring).

    Args:
        where: the partition and its executor.
        metrics: where counters and histograms go.
        tracing: where consumer spans go.
        clock: the executor's clock.
    """

    __slots__ = (
        "_clock",
        "_dead_lettered",
        "_failed",
        "_ignored",
        "_iteration",
        "_last_timed",
        "_latency",
        "_lease_expired",
        "_metered",
        "_processed",
        "_quarantined",
        "_span",
        "_started",
        "_stride",
        "_target",
        "_tracing",
        "_unpublished",
        "_wall_offset",
        "_weight",
    )

    def __init__(self, where: Where, metrics: Metrics, tracing: Tracing, clock: Clock) -> None:
        partition, processor = where.partition_labels(), where.processor_labels()
        self._clock = clock
        self._metered = metrics.enabled
        self._processed = metrics.counter("runnel_events_processed_total", **partition)
        self._failed = metrics.counter("runnel_events_failed_total", **partition)
        self._ignored = metrics.counter("runnel_events_ignored_total", **partition)
        self._dead_lettered = metrics.counter("runnel_events_dead_lettered_total", **partition)
        self._quarantined = metrics.counter("runnel_events_quarantined_total", **partition)
        self._iteration = metrics.histogram("runnel_iteration_duration_seconds", **processor)
        self._latency = metrics.histogram("runnel_end_to_end_latency_seconds", **processor)
        self._lease_expired = metrics.counter("runnel_lease_expired_errors_total", **processor)
        self._tracing = tracing if tracing.enabled else None
        self._target = where.target()
        self._span: ProcessSpan | None = None
        self._stride = 1
        self._weight = 1
        self._started: float | None = None
        self._last_timed: float | None = None
        self._unpublished = 0
        self._wall_offset = clock.wall().timestamp() - clock.now()

    @property
    def active(self) -> bool:
        """Whether anything is measured at all (else the consumer need not call it)."""
        return self._metered or self._tracing is not None

    # ------------------------------------------------------------------ per iteration

    def begin(self, item: Item, skipped: int = 0, skipped_events: int = 0) -> int:
        """The processor is handed ``item``; return how many iterations to let pass before
        calling again.

        The consumer calls it only for the iterations the last call asked for (every one
        while tracing is on), and says how many it let pass since (``skipped``, holding
        ``skipped_events`` events, all processed): they cost it a counter of its own each.
        """
        if skipped_events:
            self._unpublished += skipped_events
        if self._tracing is not None:
            events = [item] if isinstance(item, Event) else item
            self._span = self._tracing.process(self._target, events)
        if not self._metered:
            return 0
        self._time(self._clock.now(), skipped + 1)
        return 0 if self._tracing is not None else self._stride - 1

    def _time(self, now: float, weight: int) -> None:
        """Time this iteration (standing for ``weight`` of them), and choose the stride.

        The time since the last timed iteration moves the stride towards about 200 timed
        iterations a second (:func:`~runnel.domain.metrics.next_stride`). While tracing is
        on every iteration comes here, and each is timed.
        """
        last = self._last_timed
        if last is not None and self._tracing is None:
            self._stride = next_stride(self._stride, now - last)
        self._weight = weight
        self._last_timed = now
        self._started = now

    def end(self, item: Item) -> None:
        """The processor asked for the next item: ``item`` (one :meth:`begin` was called
        for) is done, and acknowledged."""
        if self._metered:
            if isinstance(item, Event):
                self._unpublished += 1
                oldest = item
            else:
                self._unpublished += len(item)
                oldest = item[0]
            if self._started is not None:
                self._timed(oldest)
        if self._span is not None:
            span, self._span = self._span, None
            span.end()

    def count(self, events: int) -> None:
        """``events`` more events were processed in iterations :meth:`begin` was not called
        for (the consumer reports them before it waits for more, and when it stops)."""
        self._unpublished += events

    def abandon(self, error: BaseException | None) -> None:
        """The iteration in flight ended without finishing: ``error`` failed it, or (None)
        the processor stopped (its partition revoked or lost, the worker stopping)."""
        self._started = None
        if self._span is not None:
            span, self._span = self._span, None
            span.end(error)

    def lease_expired(self) -> None:
        """``ensure_owned()`` raised LeaseExpired to the processor."""
        self._lease_expired.inc()

    def publish(self) -> None:
        """Add the events processed since the last call to the counter.

        Processed events are counted in a plain integer and added to the counter at every
        timed iteration and whenever the metrics are read, which saves a call per event.
        """
        if self._unpublished:
            self._processed.inc(self._unpublished)
            self._unpublished = 0

    def _timed(self, oldest: Event) -> None:
        self.publish()
        assert self._started is not None
        now = self._clock.now()
        weight = self._weight
        self._iteration.observe(now - self._started, weight)
        self._started = None
        appended = _append_time(oldest.id)
        if appended is not None:
            self._latency.observe(max(0.0, now + self._wall_offset - appended), weight)

    # ------------------------------------------------------------------ outcomes (policy)

    def failed(self, events: int) -> None:
        """``events`` events failed (whatever the policy does next)."""
        self._failed.inc(events)

    def ignored(self, events: int) -> None:
        """``events`` failed events were acknowledged under IGNORE."""
        self._ignored.inc(events)

    def dead_lettered(self, events: int) -> None:
        """``events`` events were written to a dead-letter stream."""
        self._dead_lettered.inc(events)

    def quarantined(self, events: int) -> None:
        """``events`` failed events quarantined the partition."""
        self._quarantined.inc(events)

    # ------------------------------------------------------------------ the sampler

    def retune(self) -> None:
        """Re-read the offset between the wall clock and the monotonic one (they drift)."""
        self._wall_offset = self._clock.wall().timestamp() - self._clock.now()


def _append_time(entry_id: bytes) -> float | None:
    """The Unix time (seconds) in an entry id (``<ms>-<seq>``), if it has one.

    Example:
        >>> _append_time(b"1796179753358-1")
        1796179753.358
    """
    ms, _, _ = entry_id.partition(b"-")
    return int(ms) / 1000.0 if ms.isdigit() else None


def events_of(item: Item | Sequence[Event]) -> int:
    """How many events an item holds."""
    return 1 if isinstance(item, Event) else len(item)
