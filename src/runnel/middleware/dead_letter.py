"""Dead-letter middleware: failed events go to a sink stream instead of being lost.

The fields of a dead letter are described in :mod:`runnel.domain.failures`, and writing
one (appended and acknowledged in one fenced step) in :mod:`runnel.runtime.dead_letters`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from runnel.errors import Misconfigured
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

    def __init__(self, source: Stream[Any], sink_name: str | None = None) -> None:
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
                partition_size=source.partition_size,
                serializer=source.serializer,
                compressor=source.compressor,
                hasher=None if source.hasher_name.startswith("xxh") else source.hasher,
            )

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
