"""The metric catalogue's conventions, the in-memory handles and the Prometheus export."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from runnel.adapters.memory.metrics import MemoryMetrics
from runnel.adapters.prometheus import PrometheusMetrics
from runnel.domain.metrics import (
    APP,
    CATALOGUE,
    PARTITION,
    PROCESSOR,
    STREAM,
    MetricKind,
    spec_of_sample,
)
from runnel.telemetry import NoMetrics

LABEL_SETS = {APP, STREAM, PROCESSOR, PARTITION}


@pytest.mark.parametrize("spec", CATALOGUE.values(), ids=lambda spec: spec.name)
def test_every_metric_follows_the_naming_and_label_conventions(spec: object) -> None:
    from runnel.domain.metrics import MetricSpec

    assert isinstance(spec, MetricSpec)
    assert re.fullmatch(r"runnel_[a-z_]+", spec.name)
    assert spec.name.endswith("_total") == (spec.kind is MetricKind.COUNTER)
    assert spec.help.endswith(".")
    assert spec.labels[0] == "app"
    # Either one of the standard label sets, or one of them plus bounded labels of its own.
    assert any(spec.labels[: len(base)] == base for base in LABEL_SETS)
    if spec.kind is MetricKind.HISTOGRAM:
        assert "partition" not in spec.labels, "a partition label multiplies every bucket"
        assert list(spec.buckets) == sorted(set(spec.buckets))
        assert spec.name.endswith("_seconds")
    else:
        assert spec.buckets == ()


def test_scraped_sample_names_map_back_to_their_metric() -> None:
    assert spec_of_sample("runnel_end_to_end_latency_seconds_count").name == (
        "runnel_end_to_end_latency_seconds"
    )
    assert spec_of_sample("runnel_leader").kind is MetricKind.GAUGE
    with pytest.raises(KeyError):
        spec_of_sample("runnel_events_processed")  # a counter is scraped with _total


def test_handles_are_created_once_per_label_values_and_keep_their_values() -> None:
    metrics = MemoryMetrics()
    labels: dict[str, str | int] = {"app": "a", "stream": "s", "processor": "p", "partition": 3}
    metrics.counter("runnel_events_processed_total", **labels).inc()
    metrics.counter("runnel_events_processed_total", **{**labels, "partition": "3"}).inc(4)
    metrics.counter("runnel_events_processed_total", **{**labels, "partition": 1}).inc()

    assert metrics.value("runnel_events_processed_total", **labels) == 5.0
    assert metrics.total("runnel_events_processed_total", app="a", processor="p") == 6.0
    assert metrics.value("runnel_events_failed_total", **labels) is None


def test_gauges_go_up_down_and_can_be_forgotten() -> None:
    metrics = MemoryMetrics()
    lag = metrics.gauge("runnel_partition_lag", app="a", stream="s", processor="p", partition=0)
    lag.set(10)
    lag.inc(-3)
    assert metrics.value("runnel_partition_lag", app="a", stream="s", processor="p", partition=0)
    assert lag.value == 7

    metrics.forget("runnel_partition_lag", app="a", stream="s", processor="p", partition=0)
    metrics.forget("runnel_partition_lag", app="a", stream="s", processor="p", partition=9)
    assert metrics.series("runnel_partition_lag") == {}


def test_histograms_count_each_observation_in_the_first_bucket_that_holds_it() -> None:
    metrics = MemoryMetrics()
    sends = metrics.histogram("runnel_send_duration_seconds", app="a", stream="s")
    for value in (0.0005, 0.0006, 0.003, 100.0):
        sends.observe(value)

    cumulative = dict(sends.cumulative())
    assert cumulative[0.0005] == 1  # le is inclusive
    assert cumulative[0.001] == 2
    assert cumulative[0.005] == 3
    assert cumulative[30.0] == 3
    assert cumulative[float("inf")] == sends.count == 4
    assert sends.sum == pytest.approx(100.0041)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.counter("runnel_nope_total", app="a"), "is not a runnel metric"),
        (lambda m: m.gauge("runnel_events_sent_total", app="a", stream="s"), "is a counter"),
        (lambda m: m.counter("runnel_events_sent_total", app="a"), "has labels app, stream"),
        (
            lambda m: m.counter("runnel_events_sent_total", app="a", stream="s", x="1"),
            "got app, stream, x",
        ),
        (lambda m: m.histogram("runnel_leader", app="a"), "is a gauge"),
    ],
)
def test_undeclared_metrics_kinds_and_labels_are_refused(call: object, message: str) -> None:
    with pytest.raises(KeyError, match=message):
        call(MemoryMetrics())  # type: ignore[operator]


def test_the_no_op_default_accepts_anything_and_records_nothing() -> None:
    metrics = NoMetrics()
    handle = metrics.counter("whatever", any="label")
    handle.inc()
    metrics.gauge("x").set(1)
    metrics.histogram("y").observe(2)
    metrics.forget("z")
    assert metrics.enabled is False
    assert handle is metrics.counter("another")


def scrape(metrics: PrometheusMetrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_the_prometheus_export_parses_and_shows_every_kind() -> None:
    metrics = PrometheusMetrics()
    metrics.counter("runnel_events_sent_total", app="shop", stream="orders").inc(3)
    metrics.gauge("runnel_leader", app="shop").set(1)
    latency = metrics.histogram(
        "runnel_end_to_end_latency_seconds", app="shop", stream="orders", processor="p"
    )
    latency.observe(0.02)
    latency.observe(7.0)

    samples = scrape(metrics)

    assert samples["runnel_events_sent_total"] == {(("app", "shop"), ("stream", "orders")): 3.0}
    assert samples["runnel_leader"] == {(("app", "shop"),): 1.0}
    labels = (("app", "shop"), ("processor", "p"), ("stream", "orders"))
    assert samples["runnel_end_to_end_latency_seconds_count"] == {labels: 2.0}
    assert samples["runnel_end_to_end_latency_seconds_sum"] == {labels: 7.02}
    buckets = samples["runnel_end_to_end_latency_seconds_bucket"]
    app, processor, stream = labels
    assert buckets[(app, ("le", "0.025"), processor, stream)] == 1.0
    assert buckets[(app, ("le", "10.0"), processor, stream)] == 2.0
    assert buckets[(app, ("le", "+Inf"), processor, stream)] == 2.0
    # A registry of its own also exports the process's own metrics.
    assert "process_cpu_seconds_total" in samples
    # Families without a series are not shown at all.
    assert "runnel_events_failed_total" not in samples


def test_apps_sharing_a_registry_share_one_collector_and_users_add_their_own() -> None:
    registry = CollectorRegistry()
    one, two = PrometheusMetrics(registry), PrometheusMetrics(registry)
    one.counter("runnel_events_sent_total", app="one", stream="s").inc()
    two.counter("runnel_events_sent_total", app="two", stream="s").inc(2)
    charged = Counter("shop_charged", "Orders charged.", registry=registry)
    charged.inc(5)

    samples = scrape(one)

    assert samples["runnel_events_sent_total"] == {
        (("app", "one"), ("stream", "s")): 1.0,
        (("app", "two"), ("stream", "s")): 2.0,
    }
    assert samples["shop_charged_total"] == {(): 5.0}
    assert "process_cpu_seconds_total" not in samples  # a given registry is left as it is


def test_a_user_metric_cannot_take_a_runnel_name() -> None:
    registry = CollectorRegistry()
    PrometheusMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("runnel_events_sent", "Mine.", registry=registry)


def test_forgotten_series_leave_the_export() -> None:
    metrics = PrometheusMetrics()
    labels: dict[str, str | int] = {"app": "a", "stream": "s", "processor": "p", "partition": 2}
    metrics.gauge("runnel_partition_pending", **labels).set(4)
    assert scrape(metrics)["runnel_partition_pending"]
    metrics.forget("runnel_partition_pending", **labels)
    assert "runnel_partition_pending" not in scrape(metrics)
