"""The OpenTelemetry adapter: spans, attributes, links and the carried trace context,
checked with the SDK's in-memory exporter."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, TraceState

from runnel import Record
from runnel.adapters.compressors import GzipCompressor
from runnel.adapters.otel import OpenTelemetryTracing, creation_context
from runnel.adapters.serializers import JSONSerializer
from runnel.codec import RecordCodec
from runnel.domain.encoding import TRACEPARENT_FIELD, TRACESTATE_FIELD
from runnel.domain.model import Event, Partition
from runnel.telemetry import ProcessTarget, SendTarget

TARGET = ProcessTarget("shop.orders", "printer", 3, "w1-printer-abc123")


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def tracing(provider: TracerProvider) -> OpenTelemetryTracing:
    return OpenTelemetryTracing(provider)


def event(entry_id: bytes, carrier: dict[bytes, bytes]) -> Event:
    return Event(Partition("orders", 3), entry_id, {b"data": b"{}", **carrier})


def finished(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def test_a_send_is_one_producer_span_whose_context_the_entries_carry(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter
) -> None:
    span = tracing.send(SendTarget("shop.orders", count=3))
    current = trace.get_current_span().get_span_context()
    carrier = dict(span.carrier)
    span.end()

    (sent,) = finished(exporter, "send shop.orders")
    assert sent.kind is SpanKind.PRODUCER
    assert current == sent.context  # current while the entries are appended
    assert not trace.get_current_span().get_span_context().is_valid  # and not after
    assert dict(sent.attributes or {}) == {
        "messaging.system": "runnel",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": "shop.orders",
        "messaging.batch.message_count": 3,
    }
    assert list(carrier) == [TRACEPARENT_FIELD]
    trace_id, span_id = f"{sent.context.trace_id:032x}", f"{sent.context.span_id:016x}"
    version, carried_trace, carried_span, flags = carrier[TRACEPARENT_FIELD].split(b"-")
    assert (version, carried_trace, carried_span) == (b"00", trace_id.encode(), span_id.encode())
    assert int(flags, 16) & 0x01  # sampled


def test_a_single_record_send_names_its_partition_and_carries_the_tracestate(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter
) -> None:
    parent = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    with trace.use_span(trace.NonRecordingSpan(parent)):
        span = tracing.send(SendTarget("shop.orders", count=1, partition=5))
        span.end()

    (sent,) = finished(exporter, "send shop.orders")
    assert sent.parent == parent
    assert sent.attributes is not None
    assert sent.attributes["messaging.destination.partition.id"] == "5"
    assert "messaging.batch.message_count" not in sent.attributes
    assert span.carrier[TRACESTATE_FIELD] == b"vendor=value"


def test_a_single_event_is_processed_in_a_child_of_its_producer_span_and_linked_to_it(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    send = tracing.send(SendTarget("shop.orders", count=1, partition=3))
    send.end()
    (sent,) = finished(exporter, "send shop.orders")

    span = tracing.process(TARGET, [event(b"1-0", dict(send.carrier))])
    inner = provider.get_tracer("user").start_span("charge")  # what the processor does
    inner.end()
    span.end()

    (processed,) = finished(exporter, "process shop.orders")
    (charge,) = finished(exporter, "charge")
    assert processed.kind is SpanKind.CONSUMER
    assert processed.parent is not None
    assert processed.parent.span_id == sent.context.span_id
    assert processed.context.trace_id == sent.context.trace_id
    assert [link.context.span_id for link in processed.links] == [sent.context.span_id]
    assert dict(processed.links[0].attributes or {}) == {"messaging.message.id": "1-0"}
    assert dict(processed.attributes or {}) == {
        "messaging.system": "runnel",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "shop.orders",
        "messaging.destination.partition.id": "3",
        "messaging.consumer.group.name": "printer",
        "messaging.client.id": "w1-printer-abc123",
        "messaging.message.id": "1-0",
    }
    assert charge.parent is not None
    assert charge.parent.span_id == processed.context.span_id  # user spans nest inside
    assert processed.status.status_code is StatusCode.UNSET


def test_a_batch_starts_its_own_trace_linked_to_every_producer_span(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter, provider: TracerProvider
) -> None:
    carriers = []
    for _ in range(2):
        send = tracing.send(SendTarget("shop.orders", count=1))
        carriers.append(dict(send.carrier))
        send.end()
    sent = finished(exporter, "send shop.orders")
    batch = [event(b"1-0", carriers[0]), event(b"1-1", carriers[1]), event(b"1-2", {})]

    with trace.use_span(provider.get_tracer("app").start_span("start"), end_on_exit=True):
        span = tracing.process(TARGET, batch)
        span.end()

    (processed,) = finished(exporter, "process shop.orders")
    assert processed.parent is None  # not a child of whatever was current
    assert processed.context.trace_id not in {s.context.trace_id for s in sent}
    assert [link.context.span_id for link in processed.links] == [s.context.span_id for s in sent]
    assert [dict(link.attributes or {}) for link in processed.links] == [
        {"messaging.message.id": "1-0"},
        {"messaging.message.id": "1-1"},
    ]
    assert processed.attributes is not None
    assert processed.attributes["messaging.batch.message_count"] == 3
    assert "messaging.message.id" not in processed.attributes


def test_an_event_sent_without_tracing_gets_a_root_span_without_links(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter
) -> None:
    tracing.process(TARGET, [event(b"7-0", {})]).end()
    (processed,) = finished(exporter, "process shop.orders")
    assert (processed.parent, list(processed.links)) == (None, [])


def test_a_failed_iteration_marks_its_span(
    tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter
) -> None:
    tracing.process(TARGET, [event(b"1-0", {})]).end(ValueError("cannot charge order 2"))
    (processed,) = finished(exporter, "process shop.orders")
    assert processed.status.status_code is StatusCode.ERROR
    assert processed.status.description == "ValueError: cannot charge order 2"
    assert processed.attributes is not None
    assert processed.attributes["error.type"] == "ValueError"
    assert [e.name for e in processed.events] == ["exception"]


@pytest.mark.parametrize(
    "traceparent",
    [
        b"garbage",
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero span id
        b"\xff\xfe",
    ],
)
def test_an_invalid_trace_context_is_ignored(
    traceparent: bytes, tracing: OpenTelemetryTracing, exporter: InMemorySpanExporter
) -> None:
    assert creation_context({TRACEPARENT_FIELD: traceparent}) is None
    tracing.process(TARGET, [event(b"1-0", {TRACEPARENT_FIELD: traceparent})]).end()
    (processed,) = finished(exporter, "process shop.orders")
    assert list(processed.links) == []


class Order(Record):
    order_id: int


class Tick(Record, primitive=True):
    n: int
    note: str


CARRIED = {
    TRACEPARENT_FIELD: b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    TRACESTATE_FIELD: b"vendor=value",
}


@pytest.mark.parametrize(
    "compressor", [None, GzipCompressor()], ids=lambda c: c.name if c else "bare"
)
def test_readers_decode_json_records_carrying_trace_context_as_before(
    compressor: GzipCompressor | None,
) -> None:
    codec = RecordCodec(Order, JSONSerializer(), compressor)
    fields = codec.encode(Order(order_id=7))
    assert codec.decode({**fields, **CARRIED}) == codec.decode(fields) == Order(order_id=7)


def test_readers_decode_primitive_records_carrying_trace_context_as_before() -> None:
    codec = RecordCodec(Tick, JSONSerializer(), None)
    fields = codec.encode(Tick(n=1, note="x"))
    assert codec.decode({**CARRIED, **fields}) == Tick(n=1, note="x")


def test_no_record_field_can_take_a_trace_context_name() -> None:
    class Sneaky(Record, primitive=True):
        __traceparent: str = "mine"  # a private attribute to pydantic, not a field

    assert TRACEPARENT_FIELD not in RecordCodec(Sneaky, JSONSerializer(), None).encode(Sneaky())
