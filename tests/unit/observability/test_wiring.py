"""Settings, container providers and log formats of the observability features."""

from __future__ import annotations

import doctest
import json
import logging
import sys
import types

import pytest
from dependency_injector import providers
from prometheus_client import CollectorRegistry

import runnel.adapters.http.endpoint
import runnel.adapters.http.request
import runnel.adapters.memory.metrics
import runnel.adapters.otel
import runnel.adapters.prometheus
import runnel.domain.health
import runnel.domain.metrics
import runnel.entrypoints.logs
import runnel.telemetry
from runnel.adapters.otel import OpenTelemetryTracing
from runnel.adapters.prometheus import PrometheusMetrics
from runnel.container import Container, make_metrics
from runnel.entrypoints.logs import ConsoleFormatter, JsonFormatter
from runnel.errors import Misconfigured
from runnel.settings import Settings
from runnel.telemetry import NoMetrics, NoTracing


@pytest.mark.parametrize(
    "module",
    [
        runnel.adapters.http.endpoint,
        runnel.adapters.http.request,
        runnel.adapters.memory.metrics,
        runnel.adapters.otel,
        runnel.adapters.prometheus,
        runnel.domain.health,
        runnel.domain.metrics,
        runnel.entrypoints.logs,
        runnel.telemetry,
    ],
    ids=lambda module: module.__name__,
)
def test_the_modules_doctests_pass(module: types.ModuleType) -> None:
    outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert outcome.attempted > 0
    assert outcome.failed == 0


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        (":9100", ("0.0.0.0", 9100)),
        ("[::1]:9100", ("::1", 9100)),
        ("worker-1.local:0", ("worker-1.local", 0)),
    ],
)
def test_the_http_address_is_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert Settings(http_address=address).http_host_port() == expected


@pytest.mark.parametrize("address", ["9100", "host:", "host:99999", "::1:9100", "a b:1", ""])
def test_a_malformed_http_address_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        Settings(http_address=address)


def test_the_observability_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNNEL_HTTP_ADDRESS", ":9100")
    monkeypatch.setenv("RUNNEL_METRICS", "false")
    monkeypatch.setenv("RUNNEL_TRACING", "true")
    monkeypatch.setenv("RUNNEL_STUCK_PENDING_SECONDS", "0")
    settings = Settings()
    assert settings.http_host_port() == ("0.0.0.0", 9100)
    assert settings.metrics is False
    assert settings.tracing is True
    assert settings.stuck_pending_seconds == 0.0
    assert Settings.model_fields["http_address"].default is None  # off by default


@pytest.mark.parametrize(
    ("enabled", "http", "kind"),
    [
        (None, None, NoMetrics),
        (None, ":9100", PrometheusMetrics),  # the endpoint serves /metrics
        (False, ":9100", NoMetrics),
        (True, None, PrometheusMetrics),
    ],
)
def test_metrics_are_on_when_asked_or_served(
    enabled: bool | None, http: str | None, kind: type
) -> None:
    assert type(make_metrics(enabled, http, None)) is kind


def test_metrics_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runnel.container.prometheus_installed", lambda: False)
    assert isinstance(make_metrics(None, ":9100", None), NoMetrics)
    monkeypatch.setitem(sys.modules, "runnel.adapters.prometheus", None)
    with pytest.raises(Misconfigured, match=r"pip install 'runnel\[metrics\]'"):
        make_metrics(True, None, None)


def test_the_container_exports_through_a_registry_the_user_provides() -> None:
    registry = CollectorRegistry()
    container = Container(settings=Settings(redis_url="memory://obs", metrics=True))
    container.metrics_registry.override(providers.Object(registry))
    metrics = container.metrics()
    assert isinstance(metrics, PrometheusMetrics)
    assert metrics.registry is registry
    assert container.metrics() is metrics  # one per container

    wrong = Container(settings=Settings(redis_url="memory://obs", metrics=True))
    wrong.metrics_registry.override(providers.Object("not a registry"))
    with pytest.raises(Misconfigured, match="CollectorRegistry"):
        wrong.metrics()


def test_the_container_traces_only_when_asked() -> None:
    assert isinstance(Container(settings=Settings()).tracing(), NoTracing)
    assert isinstance(Container(settings=Settings(tracing=True)).tracing(), OpenTelemetryTracing)


# --------------------------------------------------------------------------- logs


def record_with_extras(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("shop.orders")
    return logger.makeRecord(
        "shop.orders", logging.WARNING, "x.py", 1, "charged %s", ("o-1",), None, extra=extra
    )


def test_json_logs_keep_the_callers_extra_fields() -> None:
    record = record_with_extras(order_id=42, customer="c-7", amounts=[1, 2], when=object())
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "charged o-1"
    assert data["order_id"] == 42
    assert data["customer"] == "c-7"
    assert data["amounts"] == [1, 2]
    assert data["when"].startswith("<object object")  # not JSON: written as text
    assert "args" not in data
    assert "msg" not in data


def test_an_extra_field_named_like_a_json_key_is_renamed_not_lost() -> None:
    record = record_with_extras(time="yesterday", level="deep", logger="mine")
    data = json.loads(JsonFormatter().format(record))
    assert data["level"] == "warning"
    assert (data["extra_time"], data["extra_level"], data["extra_logger"]) == (
        "yesterday",
        "deep",
        "mine",
    )


def test_console_logs_show_extra_fields_after_the_context() -> None:
    record = record_with_extras(order_id=42, partition=3)
    line = ConsoleFormatter().format(record)
    assert line.endswith("shop.orders: charged o-1 [partition=3 order_id=42]")


def test_extra_fields_are_masked_like_messages() -> None:
    record = record_with_extras(note="connected with s3cret", attempts=3)
    data = json.loads(JsonFormatter(["s3cret"]).format(record))
    assert "s3cret" not in json.dumps(data)
    assert data["attempts"] == 3
    assert "s3cret" not in ConsoleFormatter(["s3cret"]).format(record)
