"""OpenTelemetryTracing: the Tracing port on the OpenTelemetry API (extra ``otel``).

Runnel only uses the API: the application installs and configures the SDK (a tracer
provider, exporters, sampling), and without one every span is a no-op.

Spans follow the OpenTelemetry semantic conventions for messaging:

* ``send <app>.<stream>``, kind PRODUCER, one per ``send()`` (whatever the number of
  records). Its context is the creation context of every entry of the send: it is written
  into each entry as W3C trace context (``__traceparent``, ``__tracestate``), and it is
  the current span while the entries are appended.
* ``process <app>.<stream>``, kind CONSUMER, one per iteration: per event, or per
  ``take()`` batch. It links to the creation context of every event that carries one. A
  single event's span is also the child of its producer span, so the two show as one
  trace; a batch's span starts a trace of its own. It is the current span while the
  processor handles the event, so spans the processor starts are its children.

Attributes: ``messaging.system`` (``runnel``), ``messaging.operation.name`` and
``messaging.operation.type`` (``send`` or ``process``), ``messaging.destination.name``
(``<app>.<stream>``), ``messaging.destination.partition.id``, and on consumer spans
``messaging.consumer.group.name`` (the processor) and ``messaging.client.id`` (the
executor). ``messaging.message.id`` (the entry id) is set on a single event's span and on
each link of a batch; ``messaging.batch.message_count`` on spans of several messages. A
failed iteration or send sets the span's status to ERROR, records the exception and sets
``error.type`` to the exception's qualified class name.

Example:
    >>> from runnel.telemetry import SendTarget
    >>> span = OpenTelemetryTracing().send(SendTarget("shop.orders", 1))
    >>> dict(span.carrier)  # no SDK configured: nothing recorded, nothing carried
    {}
    >>> span.end()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import Token
from types import MappingProxyType
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from runnel._version import __version__
from runnel.domain.encoding import TRACEPARENT_FIELD, TRACESTATE_FIELD
from runnel.domain.model import Event
from runnel.telemetry import ProcessSpan, ProcessTarget, SendSpan, SendTarget

SYSTEM: Final = "runnel"
"""The ``messaging.system`` of runnel's spans."""

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_EMPTY: Final[Mapping[bytes, bytes]] = MappingProxyType({})


class OpenTelemetryTracing:
    """Producer and consumer spans through the OpenTelemetry API.

    Args:
        tracer_provider: the provider to take the tracer from; the global one (set by
            the application with ``opentelemetry.trace.set_tracer_provider``) when None.

    Example:
        >>> OpenTelemetryTracing().enabled
        True
    """

    enabled = True

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer("runnel", __version__, tracer_provider=tracer_provider)

    def send(self, target: SendTarget) -> SendSpan:
        """Start the producer span of one send and make it current."""
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM,
            "messaging.operation.name": "send",
            "messaging.operation.type": "send",
            "messaging.destination.name": target.destination,
        }
        if target.partition is not None:
            attributes["messaging.destination.partition.id"] = str(target.partition)
        if target.count != 1:
            attributes["messaging.batch.message_count"] = target.count
        span = self._tracer.start_span(
            f"send {target.destination}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        context = trace.set_span_in_context(span)
        headers: dict[str, str] = {}
        _PROPAGATOR.inject(headers, context=context)
        carrier: dict[bytes, bytes] = {}
        if "traceparent" in headers:
            carrier[TRACEPARENT_FIELD] = headers["traceparent"].encode("ascii")
            if headers.get("tracestate"):
                carrier[TRACESTATE_FIELD] = headers["tracestate"].encode("ascii")
        return _Span(span, otel_context.attach(context), carrier or _EMPTY)

    def process(self, target: ProcessTarget, events: Sequence[Event]) -> ProcessSpan:
        """Start the consumer span of one iteration and make it current."""
        attributes: dict[str, str | int] = {
            "messaging.system": SYSTEM,
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": target.destination,
            "messaging.destination.partition.id": str(target.partition),
            "messaging.consumer.group.name": target.group,
            "messaging.client.id": target.client_id,
        }
        links = []
        parent = None
        for event in events:
            created = creation_context(event.data)
            if created is None:
                continue
            if len(events) == 1:
                parent = trace.set_span_in_context(trace.NonRecordingSpan(created))
            links.append(Link(created, {"messaging.message.id": event.id.decode("ascii")}))
        if len(events) == 1:
            attributes["messaging.message.id"] = events[0].id.decode("ascii")
        else:
            attributes["messaging.batch.message_count"] = len(events)
        span = self._tracer.start_span(
            f"process {target.destination}",
            # A batch, or an event sent without tracing, starts a trace of its own rather
            # than joining whatever span was current when the worker started.
            context=parent if parent is not None else otel_context.Context(),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            links=links,
        )
        return _Span(span, otel_context.attach(trace.set_span_in_context(span)), _EMPTY)


def creation_context(fields: Mapping[bytes, bytes]) -> trace.SpanContext | None:
    """The producer span's context carried in an entry's fields, if it carries a valid one.

    Example:
        >>> tp = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        >>> creation_context({TRACEPARENT_FIELD: tp}).span_id == 0xB7AD6B7169203331
        True
        >>> creation_context({TRACEPARENT_FIELD: b"garbage"}) is None
        True
    """
    raw = fields.get(TRACEPARENT_FIELD)
    if raw is None:
        return None
    headers = {"traceparent": raw.decode("ascii", "replace")}
    state = fields.get(TRACESTATE_FIELD)
    if state:
        headers["tracestate"] = state.decode("ascii", "replace")
    context = trace.get_current_span(_PROPAGATOR.extract(headers)).get_span_context()
    return context if context.is_valid else None


class _Span:
    """A started span that is current until :meth:`end`."""

    __slots__ = ("_span", "_token", "carrier")

    def __init__(
        self, span: Span, token: Token[otel_context.Context], carrier: Mapping[bytes, bytes]
    ) -> None:
        self._span = span
        self._token = token
        self.carrier = carrier

    def end(self, error: BaseException | None = None) -> None:
        span = self._span
        if error is not None and span.is_recording():
            span.set_attribute("error.type", type(error).__qualname__)
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
        otel_context.detach(self._token)
        span.end()
