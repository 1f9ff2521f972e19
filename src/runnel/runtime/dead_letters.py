"""Writing failed events to a dead-letter stream, each with its acknowledgement.

A dead letter is the failed entry's own fields plus the error's (see
:mod:`runnel.domain.failures`), appended to the sink stream's partition of the same number
(modulo its partition count). The append and the source entry's acknowledgement are one
atomic, fenced step of the stream log: a stale owner writes nothing, and an event whose
dead letter could not be written stays pending.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from runnel.domain.failures import dead_letter_fields, describe, safe_repr
from runnel.domain.model import Event
from runnel.errors import DeadLetterFailed, Fenced
from runnel.ports import Clock, DeadLetter, StreamLog
from runnel.runtime.feed import PartitionFeed
from runnel.runtime.specs import Sink
from runnel.runtime.store import StreamStore

log = logging.getLogger(__name__)


class DeadLetterWriter:
    """Dead-letters the failed events of one processor.

    Args:
        log_port: the stream log (its atomic dead-letter-and-acknowledge call).
        clock: the wall clock of the letters' time stamps.
        processor: the processor (consumer group) whose events fail.
        store_of: the store of a sink stream, by name.
    """

    def __init__(
        self,
        log_port: StreamLog,
        clock: Clock,
        processor: str,
        store_of: Callable[[str], StreamStore],
    ) -> None:
        self._log = log_port
        self._clock = clock
        self._processor = processor
        self._store_of = store_of
        self.fenced = 0
        """Dead letters refused because the lease was gone."""

    async def write(
        self, feed: PartitionFeed, events: Sequence[Event], error: BaseException, sink: Sink
    ) -> None:
        """Append each of ``events`` not yet dead-lettered to ``sink``, acknowledging it.

        Raises:
            Fenced: the lease is gone (the feed is closed as lost; the new owner redelivers).
            DeadLetterFailed: the sink could not be prepared or written; the events not
                written stay pending.
        """
        info = describe(error)
        stamp = self._clock.wall().isoformat()
        partition = feed.partition
        try:
            store = self._store_of(sink.spec.name)
            await store.prepare()
        except Exception as exc:
            raise DeadLetterFailed(
                f"could not prepare the dead-letter stream {sink.spec.name!r} (the failed "
                f"events stay pending and are retried): {safe_repr(exc)}"
            ) from exc
        keys = store.spec.partition_keys
        sink_key = keys[partition.number % len(keys)]
        # A lossless sink keeps its letters: a full one refuses (the event stays pending).
        cap = store.spec.partition_size if store.spec.trim_mode != "lossy" else None
        for event in events:
            if event._dead:
                continue
            fields = dead_letter_fields(
                event.data,
                info,
                stream=partition.stream,
                partition=partition.number,
                entry_id=event.id,
                processor=self._processor,
                time=stamp,
            )
            letter = DeadLetter(
                feed.key, self._processor, event.id, sink_key, fields, feed.fence, cap
            )
            try:
                await self._log.dead_letter(letter)
            except Fenced:
                self.fenced += 1
                feed.close(lost=True)  # the lease is gone: the new owner redelivers it
                raise
            except Exception as exc:
                raise DeadLetterFailed(
                    f"could not dead-letter {partition.stream}.{partition.number} entry "
                    f"{event.id.decode()} to {sink_key} (it stays pending and is retried): "
                    f"{safe_repr(exc)}"
                ) from exc
            event._dead = True
            log.warning(
                "dead-lettered %s.%d entry %s to %s: %s",
                partition.stream,
                partition.number,
                event.id.decode(),
                sink_key,
                info.type,
            )
