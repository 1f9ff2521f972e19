"""PrometheusMetrics: the Metrics port exported through ``prometheus-client`` (extra ``metrics``).

Recording goes to :class:`~runnel.adapters.memory.metrics.MemoryMetrics` handles (an
attribute update, no lock); a collector registered on a
:class:`prometheus_client.CollectorRegistry` turns them into metric families when the
registry is scraped. The registry is the one users add their own metrics to::

    from prometheus_client import Counter
    charged = Counter("shop_charged_total", "Orders charged.", registry=app.metrics.registry)

Apps that share a registry share one collector (and one set of series, told apart by
their ``app`` label), so several Apps can be exported through one ``/metrics``.

Example:
    >>> metrics = PrometheusMetrics()
    >>> metrics.counter("runnel_events_sent_total", app="shop", stream="orders").inc(3)
    >>> body, content_type = metrics.exposition()
    >>> b'runnel_events_sent_total{app="shop",stream="orders"} 3.0' in body
    True
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from runnel.adapters.memory.metrics import (
    CounterValue,
    GaugeValue,
    HistogramValue,
    LabelKey,
    MemoryMetrics,
    Series,
)
from runnel.domain.metrics import CATALOGUE, MetricKind, MetricSpec

Tables = dict[str, dict[LabelKey, Series]]

_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, Tables] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


class PrometheusMetrics(MemoryMetrics):
    """Runnel's metrics on a Prometheus registry.

    Args:
        registry: where to export; a new :class:`~prometheus_client.CollectorRegistry`
            with the process and platform collectors when None. Pass
            ``prometheus_client.REGISTRY`` to export through the library's global
            registry (and whatever else is registered there).

    Example:
        >>> from prometheus_client import CollectorRegistry
        >>> shared = CollectorRegistry()
        >>> a, b = PrometheusMetrics(shared), PrometheusMetrics(shared)
        >>> a.tables is b.tables
        True
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = new_registry()
        self.registry = registry
        super().__init__(_tables_of(registry))

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the ``Accept`` header asks for, and its content type.

        The Prometheus text format (0.0.4) unless OpenMetrics is asked for.
        """
        encode, content_type = choose_encoder(accept)
        return encode(self.registry), content_type


def new_registry() -> CollectorRegistry:
    """A registry of its own with the process and platform collectors.

    Example:
        >>> body, _ = PrometheusMetrics(new_registry()).exposition()
        >>> b"process_cpu_seconds_total" in body
        True
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def _tables_of(registry: CollectorRegistry) -> Tables:
    """The series exported through ``registry`` (its collector is registered once)."""
    with _SHARED_LOCK:
        tables = _SHARED.get(registry)
        if tables is None:
            tables = {}
            registry.register(RunnelCollector(tables))
            _SHARED[registry] = tables
        return tables


class RunnelCollector(Collector):
    """Turns the in-memory series into Prometheus metric families at scrape time."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def describe(self) -> Iterator[Metric]:
        """Every family runnel may export, so the registry refuses a duplicate name."""
        for spec in CATALOGUE.values():
            yield _family(spec)

    def collect(self) -> Iterator[Metric]:
        """The families that have at least one series."""
        for spec in CATALOGUE.values():
            series = list(self._tables.get(spec.name, {}).items())
            if not series:
                continue
            family = _family(spec)
            for key, value in series:
                if isinstance(value, HistogramValue):
                    assert isinstance(family, HistogramMetricFamily)
                    buckets = [(_le(bound), n) for bound, n in value.cumulative()]
                    family.add_metric(list(key), buckets, value.sum)
                elif isinstance(value, (CounterValue, GaugeValue)):
                    assert isinstance(family, (CounterMetricFamily, GaugeMetricFamily))
                    family.add_metric(list(key), value.value)
            yield family


def _family(spec: MetricSpec) -> Metric:
    labels = list(spec.labels)
    if spec.kind is MetricKind.COUNTER:
        return CounterMetricFamily(spec.family, spec.help, labels=labels)
    if spec.kind is MetricKind.GAUGE:
        return GaugeMetricFamily(spec.name, spec.help, labels=labels)
    return HistogramMetricFamily(spec.name, spec.help, labels=labels)


def _le(bound: float) -> str:
    """A bucket's ``le`` label value, written as the Prometheus clients write it."""
    return "+Inf" if bound == float("inf") else repr(float(bound))
