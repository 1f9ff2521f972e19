"""Coalesced, fenced acknowledgements.

Consumers queue acks without waiting. The fetcher carries whatever is queued in its next
read round (one round trip acknowledges and reads), so under load acknowledgements cost
no round trips of their own. When no read comes along, the fetcher sends them on their
own once :data:`ACK_LINGER` has passed since the oldest was queued, or as soon as
:data:`ACK_BATCH` are waiting. A graceful stop or revocation flushes, and waits for every
round still carrying acknowledgements.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

from runnel.errors import Fenced, PermissionDenied
from runnel.ports import AckRequest, Clock, StreamLog
from runnel.runtime.feed import PartitionFeed

log = logging.getLogger(__name__)

ACK_LINGER: Final = 0.002
"""Seconds queued acknowledgements wait for a read round to carry them."""

ACK_BATCH: Final = 512
"""Queued acknowledgements that are sent at once, without waiting for a read round."""

Batch = dict[PartitionFeed, list[bytes]]


class Acker:
    """Queues acknowledgements for one executor; the fetcher and revocations send them."""

    def __init__(self, log_port: StreamLog, group: str, clock: Clock) -> None:
        self._log = log_port
        self._clock = clock
        self._group = group
        self._pending: Batch = {}
        self._count = 0
        self.oldest = 0.0  # when the oldest queued acknowledgement was queued
        self._on_the_way = 0  # batches sent whose replies have not come back yet
        self._settled = asyncio.Event()  # set while no batch is on its way
        self._settled.set()
        self.urgent = asyncio.Event()  # set once ACK_BATCH acknowledgements wait
        self.queued_event = asyncio.Event()  # set whenever something is queued
        self.refused = 0
        self.fenced = 0
        """Acknowledgement requests refused because the lease was gone."""
        self.sent = 0

    def add(self, feed: PartitionFeed, ids: list[bytes]) -> None:
        """Queue ``ids`` of ``feed`` for acknowledgement."""
        if not self._pending:
            self.oldest = self._clock.now()
            self.queued_event.set()
        queued = self._pending.get(feed)
        if queued is None:
            self._pending[feed] = list(ids)
        else:
            queued.extend(ids)
        self._count += len(ids)
        if self._count >= ACK_BATCH:
            self.urgent.set()

    def queued(self) -> int:
        """How many ids wait to be sent."""
        return self._count

    def take(self) -> Batch:
        """Everything queued, now on its way: the caller sends it, then calls :meth:`settle`
        (or :meth:`restore` if sending failed)."""
        batch, self._pending, self._count = self._pending, {}, 0
        self.urgent.clear()
        self.queued_event.clear()
        self._on_the_way += 1
        self._settled.clear()
        return batch

    def _arrived(self) -> None:
        self._on_the_way -= 1
        if self._on_the_way == 0:
            self._settled.set()

    def requests(self, batch: Batch) -> list[AckRequest]:
        """The acknowledgement requests of ``batch``."""
        return [AckRequest(f.key, self._group, ids, f.fence) for f, ids in batch.items()]

    def restore(self, batch: Batch) -> None:
        """Queue ``batch`` again (its round trip failed)."""
        self._arrived()
        for feed, ids in batch.items():
            self.add(feed, ids)

    def settle(self, batch: Batch, results: Sequence[int | Exception]) -> None:
        """Account for a sent batch: count refusals (and drop those feeds), retry failures.

        Raises:
            PermissionDenied: the Redis user may not acknowledge (the ids stay queued).
        """
        self._arrived()
        refused: PermissionDenied | None = None
        for (feed, ids), result in zip(batch.items(), results, strict=True):
            if isinstance(result, PermissionDenied):
                refused = refused or result
                self.add(feed, ids)  # kept: acknowledged by whoever takes the partition
            elif isinstance(result, Fenced):
                self.refused += len(ids)
                self.fenced += 1
                log.warning(
                    "acknowledgement of %d entr%s of %s.%d refused: the lease (epoch %d) "
                    "is no longer ours",
                    len(ids),
                    "y" if len(ids) == 1 else "ies",
                    feed.partition.stream,
                    feed.partition.number,
                    feed.epoch,
                )
                feed.close(lost=True)
            elif isinstance(result, Exception):
                log.error(
                    "acknowledging %s.%d failed: %s",
                    feed.partition.stream,
                    feed.partition.number,
                    result,
                )
                self.add(feed, ids)
            else:
                self.sent += len(ids)
        if refused is not None:
            raise refused  # retrying cannot grant it: the worker halts

    async def flush(self) -> None:
        """Send everything queued now, in one round trip, and wait until every batch on its
        way (carried by a read round) has been answered too."""
        if self._pending:
            batch = self.take()
            try:
                results, _ = await self._log.exchange(self.requests(batch), [])
            except BaseException:
                self.restore(batch)  # a later flush retries; the caller sees the error
                raise
            self.settle(batch, results)
        await self._settled.wait()
