"""MemoryMetrics: the Metrics port keeping every series in process memory.

A handle is a tiny object with one or two numbers, so recording is one attribute update
(and a bisection for a histogram): cheap enough for the processing loop. Tests read the
values back with :meth:`MemoryMetrics.value` and :meth:`MemoryMetrics.histogram_of`;
the Prometheus adapter exports the same series at scrape time.

Everything runs on the event loop's thread. A scrape from another thread (a
``prometheus_client`` HTTP server of the application's own) reads copies of the tables,
so it never fails; a histogram read while it is being updated can be off by the one
observation in flight.

Example:
    >>> metrics = MemoryMetrics()
    >>> metrics.counter("runnel_events_sent_total", app="shop", stream="orders").inc(2)
    >>> metrics.value("runnel_events_sent_total", app="shop", stream="orders")
    2.0
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

from runnel.domain.metrics import CATALOGUE, MetricKind, MetricSpec, label_key, spec_named
from runnel.telemetry import LabelValue

LabelKey = tuple[str, ...]
"""The label values of one series, in the order the catalogue declares the labels."""


class CounterValue:
    """One counter series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self.value += amount


class GaugeValue:
    """One gauge series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        """Replace the value."""
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        self.value += amount


class HistogramValue:
    """One histogram series: a count per bucket (not cumulative) and the sum.

    ``counts[i]`` counts observations ``<= bounds[i]`` and above the bound before it; the
    last slot counts those above every bound (the ``+Inf`` bucket).

    Example:
        >>> h = HistogramValue((1.0, 2.0))
        >>> for v in (0.5, 1.0, 1.5, 9.0):
        ...     h.observe(v)
        >>> h.counts, h.sum
        ([2, 1, 1], 12.0)
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float, count: int = 1) -> None:
        """Count ``count`` observations of ``value``."""
        self.counts[bisect_left(self.bounds, value)] += count
        self.sum += value * count

    @property
    def count(self) -> int:
        """Observations in all."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` per bucket, ending with ``inf``."""
        total = 0
        out = []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


Series = CounterValue | GaugeValue | HistogramValue


class MemoryMetrics:
    """Every series in dictionaries, one per metric, keyed by label values.

    ``tables`` may be shared by several instances (the Prometheus adapter shares one per
    registry, so Apps exporting through one registry do not collide).

    Example:
        >>> m = MemoryMetrics()
        >>> m.histogram("runnel_send_duration_seconds", app="a", stream="s").observe(0.002)
        >>> m.histogram_of("runnel_send_duration_seconds", app="a", stream="s").count
        1
    """

    enabled = True

    def __init__(self, tables: dict[str, dict[LabelKey, Series]] | None = None) -> None:
        self.tables: dict[str, dict[LabelKey, Series]] = {} if tables is None else tables

    def counter(self, name: str, **labels: LabelValue) -> CounterValue:
        """The counter ``name`` with these label values (created at 0)."""
        _, key = _key(name, MetricKind.COUNTER, labels)
        series = self.tables.setdefault(name, {}).get(key)
        if series is None:
            series = self.tables[name][key] = CounterValue()
        assert isinstance(series, CounterValue)
        return series

    def gauge(self, name: str, **labels: LabelValue) -> GaugeValue:
        """The gauge ``name`` with these label values (created at 0)."""
        _, key = _key(name, MetricKind.GAUGE, labels)
        series = self.tables.setdefault(name, {}).get(key)
        if series is None:
            series = self.tables[name][key] = GaugeValue()
        assert isinstance(series, GaugeValue)
        return series

    def histogram(self, name: str, **labels: LabelValue) -> HistogramValue:
        """The histogram ``name`` with these label values (created empty)."""
        spec, key = _key(name, MetricKind.HISTOGRAM, labels)
        series = self.tables.setdefault(name, {}).get(key)
        if series is None:
            series = self.tables[name][key] = HistogramValue(spec.buckets)
        assert isinstance(series, HistogramValue)
        return series

    def forget(self, name: str, **labels: LabelValue) -> None:
        """Stop exporting one series (nothing happens if it does not exist)."""
        _, key = _key(name, _kind_of(name), labels)
        self.tables.get(name, {}).pop(key, None)

    # ------------------------------------------------------------------ reading (tests)

    def series(self, name: str) -> dict[LabelKey, Series]:
        """A copy of every series of ``name``, by label values."""
        return dict(self.tables.get(name, {}))

    def value(self, name: str, **labels: LabelValue) -> float | None:
        """The value of a counter or gauge series; None if it was never created."""
        _, key = _key(name, _kind_of(name), labels)
        series = self.tables.get(name, {}).get(key)
        if series is None:
            return None
        if isinstance(series, HistogramValue):
            raise KeyError(f"{name!r} is a histogram: use histogram_of()")
        return series.value

    def total(self, name: str, **labels: LabelValue) -> float:
        """The sum of a counter or gauge over every series matching ``labels`` (a subset).

        Example:
            >>> m = MemoryMetrics()
            >>> for p in (0, 1):
            ...     m.counter("runnel_events_processed_total", app="a", stream="s",
            ...               processor="p", partition=p).inc()
            >>> m.total("runnel_events_processed_total", app="a")
            2.0
        """
        spec = spec_named(name, _kind_of(name))
        unknown = set(labels) - set(spec.labels)
        if unknown:
            raise KeyError(f"{name!r} has no label {', '.join(sorted(unknown))}")
        wanted = {spec.labels.index(label): str(value) for label, value in labels.items()}
        out = 0.0
        for key, series in list(self.tables.get(name, {}).items()):
            if all(key[i] == value for i, value in wanted.items()):
                if isinstance(series, HistogramValue):
                    raise KeyError(f"{name!r} is a histogram: use histogram_of()")
                out += series.value
        return out

    def histogram_of(self, name: str, **labels: LabelValue) -> HistogramValue:
        """A histogram series (KeyError if it was never created)."""
        _, key = _key(name, MetricKind.HISTOGRAM, labels)
        series = self.tables.get(name, {}).get(key)
        if not isinstance(series, HistogramValue):
            raise KeyError(f"no series of {name!r} with {dict(labels)}")
        return series


def _kind_of(name: str) -> MetricKind:
    spec = CATALOGUE.get(name)
    if spec is None:
        raise KeyError(f"{name!r} is not a runnel metric (see runnel.domain.metrics)")
    return spec.kind


def _key(
    name: str, kind: MetricKind, labels: Mapping[str, LabelValue]
) -> tuple[MetricSpec, LabelKey]:
    spec = spec_named(name, kind)
    return spec, label_key(spec, labels)
