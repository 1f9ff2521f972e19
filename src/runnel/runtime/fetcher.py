"""The fetcher: one loop per executor reading every owned partition.

Each round sends one fenced, non-blocking group read per partition that has buffer room,
in a single round trip. A partition first re-reads its own pending entries (``0``), in
id order, then new ones (``>``). When a round finds nothing, the fetcher rings the
read-only doorbell (``XREAD BLOCK`` after the last id seen), which changes no state and
so needs no fence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from runnel.domain.model import Entry, Event
from runnel.errors import BackendError, Fenced
from runnel.ports import Clock, ReadRequest, StreamLog
from runnel.runtime._aio import cancel_and_wait, wait_event
from runnel.runtime.acks import Acker
from runnel.runtime.feed import HISTORY, NEW, PartitionFeed

log = logging.getLogger(__name__)

# While some partition is full (its consumer is slow), idle partitions are re-polled at
# least this often, so the full one is refilled soon after its consumer catches up.
FULL_PARTITION_POLL = 0.05


class Fetcher:
    """Fills partition feeds from the stream log."""

    def __init__(
        self,
        log_port: StreamLog,
        clock: Clock,
        group: str,
        feeds: Callable[[], Iterable[PartitionFeed]],
        decoder: Callable[..., object],
        read_timeout: float,
        room: asyncio.Event,
        acker: Acker,
    ) -> None:
        self._acker = acker
        self._log = log_port
        self._clock = clock
        self._group = group
        self._feeds = feeds
        self._decoder = decoder
        self._read_timeout = read_timeout
        self._room = room
        self.rounds = 0
        self.assigned = asyncio.Event()  # set when a partition is granted
        self.gone = 0

    async def run(self) -> None:
        """Fetch until cancelled."""
        while True:
            try:
                got = await self.fetch_once()
            except BackendError as exc:
                log.warning("fetch failed, retrying: %s", exc)
                await self._clock.sleep(0.5)
                continue
            if got:
                continue
            await self._idle()

    async def fetch_once(self) -> int:
        """One round of reads; returns how many entries arrived."""
        feeds = [f for f in self._feeds() if f.wants > 0]
        if not feeds:
            return 0
        requests = [
            ReadRequest(f.key, self._group, _consumer(f), f.wants, f.start, f.fence) for f in feeds
        ]
        generations = [f.generation for f in feeds]
        self.rounds += 1
        results = await self._log.read(requests)
        total = 0
        for feed, generation, result in zip(feeds, generations, results, strict=True):
            if isinstance(result, Fenced):
                log.warning(
                    "read of %s.%d refused: lease epoch %d is no longer current",
                    feed.partition.stream,
                    feed.partition.number,
                    feed.epoch,
                )
                feed.close(lost=True)
                continue
            if isinstance(result, Exception):
                log.error("read of %s failed: %s", feed.key, result)
                continue
            if feed.closing or feed.generation != generation:
                continue  # stopped, or restarted meanwhile: the entries stay pending
            total += self._deliver(feed, result)
        return total

    def _deliver(self, feed: PartitionFeed, entries: list[Entry]) -> int:
        if feed.start != NEW:
            if not entries:
                feed.start = NEW  # our pending entries are all back in the buffer
                return 0
            feed.start = entries[-1].id
        else:
            if not entries:
                return 0
            feed.last_seen = entries[-1].id
        partition, epoch, decoder = feed.partition, feed.epoch, self._decoder
        events = []
        for entry in entries:
            if not entry.fields:
                # Trimmed after delivery: nothing left to process. Acknowledge it away.
                log.error(
                    "entry %s of %s was trimmed before it was processed (counted as lost)",
                    entry.id.decode(),
                    feed.key,
                )
                self._acker.add(feed, [entry.id])
                self.gone += 1
                continue
            events.append(
                Event(partition, entry.id, entry.fields, entry.delivery_count, epoch, decoder)
            )
        if events:
            feed.put(events)
        return len(entries)

    async def _idle(self) -> None:
        feeds = list(self._feeds())
        waiting = [f for f in feeds if f.wants > 0]
        if any(f.start != NEW for f in waiting):
            return  # history still to read: go round again
        if any(f.wants == 0 and not (f.closing or f.paused) for f in feeds) or not waiting:
            # A consumer is busy with a full buffer: come back as soon as it makes room,
            # and re-poll the idle partitions now and then meanwhile.
            timeout = FULL_PARTITION_POLL if waiting else self._read_timeout
            self._room.clear()
            await wait_event(self._room, timeout, self._clock)
            return
        # Everything is caught up: ring the doorbell, but let a new assignment cut it short.
        self.assigned.clear()
        bell = asyncio.ensure_future(
            self._log.wait({f.key: f.last_seen for f in waiting}, self._read_timeout)
        )
        assigned = asyncio.ensure_future(self.assigned.wait())
        try:
            await asyncio.wait({bell, assigned}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            assigned.cancel()
            if not bell.done():
                await cancel_and_wait(bell)
        if bell.done() and not bell.cancelled() and bell.exception() is not None:
            raise bell.exception()  # type: ignore[misc]  # surfaced to run()'s retry


def _consumer(feed: PartitionFeed) -> str:
    # Partition-scoped consumer names: the pending entries list moves with the lease.
    return f"p{feed.partition.number}"


HISTORY_START = HISTORY
