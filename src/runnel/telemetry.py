"""Ports for what a worker tells the outside about itself: metrics, traces and probes.

Three small Protocols, each with a no-op default that costs nothing:

* :class:`Metrics` hands out counters, gauges and histograms by their stable name in
  :data:`runnel.domain.metrics.CATALOGUE` and their label values. The runtime asks for a
  handle once (per partition, per processor) and then only calls ``inc``, ``set`` or
  ``observe`` on it; it skips even the clock readings behind a histogram when
  ``enabled`` is False. The adapters are ``MemoryMetrics`` (values kept in the process,
  for tests) and ``PrometheusMetrics`` (the ``metrics`` extra).
* :class:`Tracing` starts a producer span per send and a consumer span per event or
  ``take()`` batch. The producer span's W3C trace context travels in the entries (see
  the wire format in ``docs/architecture.md``). The adapter is ``OpenTelemetryTracing``
  (the ``otel`` extra).
* :class:`Probes` answers the HTTP endpoint's ``/healthz`` and ``/readyz``.

Example:
    >>> metrics = NoMetrics()
    >>> metrics.counter("runnel_events_sent_total", app="shop", stream="orders").inc(3)
    >>> metrics.enabled, NoTracing().enabled
    (False, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from runnel.domain.health import Verdict
from runnel.domain.model import Event

LabelValue = str | int
"""A label value; partition numbers may be given as ints."""


# --------------------------------------------------------------------------- metrics


class Counter(Protocol):
    """A value that only goes up."""

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount`` (>= 0)."""
        ...


class Gauge(Protocol):
    """A value that goes up and down."""

    def set(self, value: float) -> None:
        """Replace the value."""
        ...

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        ...


class Histogram(Protocol):
    """Observations counted into the buckets of the metric's catalogue entry."""

    def observe(self, value: float, count: int = 1) -> None:
        """Count ``count`` observations of ``value`` (a sample standing for ``count``)."""
        ...


class Metrics(Protocol):
    """Counters, gauges and histograms by catalogue name and label values.

    Asking for a name that is not in the catalogue, or with other labels than it
    declares, raises ``KeyError``: the runtime uses only declared metrics, so a typo
    fails in the tests instead of exporting a stray series.
    """

    @property
    def enabled(self) -> bool:
        """False for the no-op default: callers may skip the work of measuring."""
        ...

    def counter(self, name: str, **labels: LabelValue) -> Counter:
        """The counter ``name`` with these label values."""
        ...

    def gauge(self, name: str, **labels: LabelValue) -> Gauge:
        """The gauge ``name`` with these label values."""
        ...

    def histogram(self, name: str, **labels: LabelValue) -> Histogram:
        """The histogram ``name`` with these label values."""
        ...

    def forget(self, name: str, **labels: LabelValue) -> None:
        """Stop exporting one series (a partition this worker no longer owns)."""
        ...


class _Nothing:
    """A counter, gauge and histogram that records nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1.0) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, value: float, count: int = 1) -> None:
        pass


_NOTHING = _Nothing()


class NoMetrics:
    """The default :class:`Metrics`: every handle is one shared object that does nothing.

    Example:
        >>> NoMetrics().histogram("anything").observe(1.0)
    """

    enabled = False

    def counter(self, name: str, **labels: LabelValue) -> Counter:
        """A counter that counts nothing."""
        return _NOTHING

    def gauge(self, name: str, **labels: LabelValue) -> Gauge:
        """A gauge that keeps nothing."""
        return _NOTHING

    def histogram(self, name: str, **labels: LabelValue) -> Histogram:
        """A histogram that counts nothing."""
        return _NOTHING

    def forget(self, name: str, **labels: LabelValue) -> None:
        """Nothing to forget."""


# --------------------------------------------------------------------------- tracing


@dataclass(frozen=True, slots=True)
class SendTarget:
    """Where a send goes: ``destination`` is ``<app>.<stream>``; ``partition`` is set when
    every entry of the send goes to one partition.

    Example:
        >>> SendTarget("shop.orders", count=2, partition=None).count
        2
    """

    destination: str
    count: int
    partition: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessTarget:
    """What a consumer processes: ``destination`` (``<app>.<stream>``), the processor
    (the consumer group), the partition and the executor's id (the client id).

    Example:
        >>> ProcessTarget("shop.orders", "printer", 3, "host-1-printer-ab12cd").group
        'printer'
    """

    destination: str
    group: str
    partition: int
    client_id: str


class SendSpan(Protocol):
    """A producer span in progress."""

    @property
    def carrier(self) -> Mapping[bytes, bytes]:
        """The fields that carry this span's trace context, to add to every entry sent."""
        ...

    def end(self, error: BaseException | None = None) -> None:
        """End the span, marking it failed with ``error`` if given."""
        ...


class ProcessSpan(Protocol):
    """A consumer span in progress; it is the current span until it ends."""

    def end(self, error: BaseException | None = None) -> None:
        """End the span (and stop it being current), marking it failed with ``error``."""
        ...


class Tracing(Protocol):
    """Producer and consumer spans, with the trace context carried in the entries."""

    @property
    def enabled(self) -> bool:
        """False for the no-op default: nothing is added to entries, no span is made."""
        ...

    def send(self, target: SendTarget) -> SendSpan:
        """Start the producer span of one send."""
        ...

    def process(self, target: ProcessTarget, events: Sequence[Event]) -> ProcessSpan:
        """Start the consumer span of one iteration (an event or a batch), linked to the
        producer span of each event that carries one, and make it the current span."""
        ...


class _NoSpan:
    __slots__ = ()
    carrier: Mapping[bytes, bytes] = {}

    def end(self, error: BaseException | None = None) -> None:
        pass


_NO_SPAN = _NoSpan()


class NoTracing:
    """The default :class:`Tracing`: no spans, nothing added to entries.

    Example:
        >>> dict(NoTracing().send(SendTarget("shop.orders", 1)).carrier)
        {}
    """

    enabled = False

    def send(self, target: SendTarget) -> SendSpan:
        """A span that records nothing and carries no context."""
        return _NO_SPAN

    def process(self, target: ProcessTarget, events: Sequence[Event]) -> ProcessSpan:
        """A span that records nothing."""
        return _NO_SPAN


# --------------------------------------------------------------------------- probes


class Probes(Protocol):
    """What the HTTP endpoint asks the worker for ``/healthz`` and ``/readyz``."""

    async def liveness(self) -> Verdict:
        """Whether the worker should be left running."""
        ...

    async def readiness(self) -> Verdict:
        """Whether the worker is doing its share of the work."""
        ...
