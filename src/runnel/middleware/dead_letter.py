"""Dead-letter middleware: failed events go to a sink stream instead of being lost.

The fields of a dead letter are described in :mod:`runnel.domain.failures`, and writing
one (appended and acknowledged in one fenced step) in :mod:`runnel.runtime.dead_letters`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from runnel.domain.failures import DeadLetterInfo, read_dead_letter
from runnel.errors import DecodeError, Misconfigured
from runnel.interfaces import Middleware
from runnel.stream import Stream


class DeadLetterMiddleware(Middleware):
    """Writes every event of a failed iteration to ``sink`` with the error.

    The sink is a stream named ``<source>.dead`` with the source's record type and
    partition count; a failed event from source partition ``n`` goes to sink partition
    ``n``, keeping its original raw fields plus ``__error_type``, ``__error_message``,
    ``__error_stream``, ``__error_partition``, ``__error_id``, ``__error_processor`` and
    ``__error_time``. Writing the dead letter and acknowledging the source entry happen
    in one atomic, fenced operation: if the write fails, the event is not acknowledged.
    The processor's exception policy still applies afterwards (use IGNORE to go on).

    The sink holds at most ``max_letters`` letters per partition (the source's
    ``partition_size`` by default) and never drops one: when it is full, a new dead letter
    is refused and its event stays pending (``DeadLetterFailed``) until letters are purged
    (``runnel deadletter purge``).

    A processor of the sink that iterates ``events.records()`` gets the original record
    of each dead letter, or an :class:`UndecodableLetter` (the raw fields, the decoding
    error and what failed) when the original entry cannot be decoded: the poison it
    collects never halts it.

    Example:
        >>> from runnel import App, ExceptionPolicy, Record
        >>> app = App(name="doc-dead-letters", redis_url="memory://doc-dead-letters")
        >>> class Action(Record):
        ...     key: str
        >>> actions = app.stream("actions", record=Action, partition_by="key")
        >>> dead_letter = DeadLetterMiddleware(source=actions)
        >>> @app.processor(actions, exception_policy=ExceptionPolicy.IGNORE,
        ...                middleware=[dead_letter])
        ... async def act(events):
        ...     async for action in events.records():
        ...         print(action.key)
        >>> sorted(app.streams)
        ['actions', 'actions.dead']
    """

    def __init__(
        self, source: Stream[Any], sink_name: str | None = None, max_letters: int | None = None
    ) -> None:
        from runnel.app import App  # the sink is declared on the source's App

        self.source = source
        app = source.app
        if not isinstance(app, App):
            raise Misconfigured(f"the dead-letter source {source!r} was not declared by an App")
        name = sink_name or f"{source.name}.dead"
        existing = app.streams.get(name)
        if existing is not None:
            self.sink: Stream[Any] = existing
        else:
            self.sink = app.stream(
                name,
                record=source.record,
                partition_by=source.partition_by,
                partition_count=source.partition_count,
                partition_size=max_letters or source.partition_size,
                serializer=source.serializer,
                compressor=source.compressor,
                hasher=None if source.hasher_name.startswith("xxh") else source.hasher,
                trim_mode="lossless",
            )
        # The sink keeps every letter until it is purged: a group nobody reads holds them
        # all unacknowledged, so the lossless cap refuses a letter that would trim one (the
        # failed event then stays pending, DeadLetterFailed) instead of dropping it.
        self.sink.kept_by = (KEEPER,)
        spec = self.sink.spec
        if not getattr(spec.decode, "tolerant", False):
            self.sink.spec = dataclasses.replace(spec, decode=tolerant(spec.decode))

    async def handler(
        self, parent: AsyncIterator[Any], events: Any = None, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        """Pass items through; on a failure, dead-letter the item being processed."""
        async for item in parent:
            try:
                yield item
            except GeneratorExit:
                failure = getattr(events, "failure", None)
                if failure is not None:
                    await events.dead_letter(item, failure, self.sink)
                raise


KEEPER = "__kept"
"""The consumer group that holds every dead letter until it is purged (nobody reads it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class UndecodableLetter:
    """A dead letter whose original entry cannot be decoded into its record.

    What ``events.records()`` yields for it on the dead-letter stream, instead of raising.

    Attributes:
        fields: the original entry's raw fields, byte for byte.
        decode_error: why it cannot be decoded (``DecodeError: ...``).
        failure: what failed when it was dead-lettered (error type and message, source
            stream, partition and entry id, processor, time).
    """

    fields: Mapping[bytes, bytes]
    decode_error: str
    failure: DeadLetterInfo


def tolerant(decode: Callable[[Mapping[bytes, bytes]], Any]) -> Callable[[Any], Any]:
    """A dead-letter stream's decoder: the original record, or an UndecodableLetter."""

    def decode_letter(fields: Mapping[bytes, bytes]) -> Any:
        data, info = read_dead_letter(fields)
        try:
            return decode(data)
        except DecodeError as exc:
            return UndecodableLetter(data, f"{type(exc).__name__}: {exc}", info)

    decode_letter.tolerant = True  # type: ignore[attr-defined]  # marks it as wrapped once
    return decode_letter
