"""Sending events given as JSON: every input checked before anything is written.

What ``runnel send`` and ``runnel sendmany`` do, for tools of your own too: each JSON
object is parsed into the stream's record, routed and encoded exactly as it will be sent
(:func:`prepare`), every line of a JSON Lines file is checked before the first is sent
(:func:`prepare_lines`), and the events then go out in chunks, each written whole or not
at all (:func:`send_prepared`). A chunk the backend refuses stops the send with a
:class:`SendFailed` that says what was written before it and where to resume.

Example:
    >>> import asyncio
    >>> from runnel import App, Record
    >>> app = App(name="doc-sending", redis_url="memory://doc-sending")
    >>> class Order(Record):
    ...     order_id: int
    >>> orders = app.stream("orders", record=Order, partition_by="order_id")
    >>> events, errors = prepare_lines(orders, [b'{"order_id": 1}', b'{"order_id": "x"}'])
    >>> [e.line for e in events]
    [1]
    >>> print(*errors)
    line 2: order_id: Input should be a valid integer, unable to parse string as an integer
    >>> ids = asyncio.run(send_prepared(orders, events))
    >>> len(ids)
    1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from runnel.errors import OutcomeUnknown, RunnelError
from runnel.ports import Append
from runnel.stream import Stream

CHUNK_SIZE: Final = 1000
"""Events written per round trip by default."""


class InvalidInput(ValueError):
    """Why one input cannot become an event of the stream (nothing was sent)."""


class SendFailed(RunnelError):
    """A chunk was refused (or may have been lost) part-way through a send.

    The message says which error, how many events were written before it, and the first
    line that was not.

    Attributes:
        sent: how many events were written before the failure.
        cause: the backend's error.
    """

    def __init__(self, message: str, sent: int, cause: RunnelError) -> None:
        super().__init__(message)
        self.sent = sent
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Prepared:
    """One input, validated, routed and encoded, ready to append.

    Attributes:
        line: where it came from (1 for a single event).
        append: the entry to write.
        partition: the partition it goes to.
    """

    line: int
    append: Append
    partition: int


def prepare(stream: Stream[Any], text: str | bytes, line: int = 1) -> Prepared:
    """Parse, build, route and encode one JSON object, exactly as it will be sent.

    Raises:
        InvalidInput: the JSON, a field, the partition key or the encoding is wrong.
    """
    try:
        record = stream.record.model_validate_json(text)
    except ValidationError as exc:
        raise InvalidInput(_reason(exc)) from exc
    try:
        # A custom partition_by or hasher may raise anything; so may an unsupported key.
        route = stream.route_of(record)
        partition = route % stream.partition_count
    except Exception as exc:
        raise InvalidInput(f"cannot compute its partition: {type(exc).__name__}: {exc}") from exc
    try:
        fields = stream.codec.encode(record)
    except Exception as exc:
        raise InvalidInput(f"cannot encode it: {type(exc).__name__}: {exc}") from exc
    return Prepared(
        line, Append(stream.partition_key_name(partition), fields, None, route), partition
    )


def prepare_lines(stream: Stream[Any], lines: Iterable[bytes]) -> tuple[list[Prepared], list[str]]:
    """Every line of JSON Lines in UTF-8, prepared; blank lines are skipped.

    Returns:
        The prepared events, and one message per bad line (``line N: why``), in order.
    """
    events: list[Prepared] = []
    errors: list[str] = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                f"line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1})"
            )
            continue
        if not text.strip():
            continue
        try:
            events.append(prepare(stream, text, number))
        except InvalidInput as exc:
            errors.append(f"line {number}: {exc}")
    return events, errors


async def send_prepared(
    stream: Stream[Any],
    events: Sequence[Prepared],
    chunk_size: int = CHUNK_SIZE,
    on_chunk: Callable[[int], None] | None = None,
    idempotency_key: str | None = None,
) -> list[bytes]:
    """Append ``events`` chunk by chunk, in order; their entry ids.

    Args:
        stream: the stream the events were prepared for.
        events: what :func:`prepare` or :func:`prepare_lines` made.
        chunk_size: events per round trip; each chunk is written whole or not at all.
        on_chunk: called with the number of events of each chunk once it is written.
        idempotency_key: makes the send safe to repeat: the event of line ``N`` is sent
            with the idempotency key ``f"{idempotency_key}:{N}"``, so sending the same
            input again with the same key (within the ``idempotency_window`` setting)
            adds only what did not arrive the first time.

    Raises:
        SendFailed: the backend refused a chunk, or failed while it was on its way; for a
            single event, the backend's own error is raised instead.
    """
    ids: list[bytes] = []
    try:
        for i in range(0, len(events), chunk_size):
            chunk = events[i : i + chunk_size]
            appends = [event.append for event in chunk]
            if idempotency_key is not None:
                keys = [f"{idempotency_key}:{event.line}" for event in chunk]
                appends = stream.with_idempotency_keys(appends, keys)
            ids += await stream.append_encoded(appends)
            if on_chunk is not None:
                on_chunk(len(chunk))
    except RunnelError as exc:
        if len(events) == 1:
            raise
        message = _unsent(stream, events, len(ids), chunk_size, exc)
        if idempotency_key is not None:
            message += (
                f" With the same idempotency key ({idempotency_key}), sending the whole input "
                "again is safe: what arrived is not sent twice."
            )
        raise SendFailed(message, len(ids), exc) from exc
    return ids


def _unsent(
    stream: Stream[Any], events: Sequence[Prepared], sent: int, chunk_size: int, exc: RunnelError
) -> str:
    """The error of a failed send, with what it wrote before and what it did not."""
    error = f"{type(exc).__name__}: {exc}"
    chunk = events[sent : sent + chunk_size]
    first = chunk[0].line
    # A refused chunk is written whole or not at all; a lost connection leaves it unknown.
    unknown = isinstance(exc, OutcomeUnknown)
    fate = "may or may not have been written" if unknown else "was not written"
    where = f"{stream.app.name}.{stream.name}"
    if not sent:
        before = f"nothing was sent to {where}"
    else:
        partitions = len({event.partition for event in events[:sent]})
        before = (
            f"{sent} of {len(events)} event(s), up to line {events[sent - 1].line}, were "
            f"sent to {partitions} partition(s) of {where}"
        )
    advice = ""
    if sent:
        advice = (
            f" Sending the whole file again would send those {sent} event(s) twice: "
            f"resume from line {first} instead"
            + (", once you know whether that chunk arrived." if unknown else ".")
        )
    return (
        f"{error}\n{before} before the error; the chunk of {len(chunk)} event(s) from "
        f"line {first} {fate}, and nothing after it was sent.{advice}"
    )


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
