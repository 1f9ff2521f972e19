"""Coalesced, fenced acknowledgements.

Consumers queue acks without waiting; one flusher sends everything queued in a single
round trip, and whatever queues up meanwhile goes in the next (group commit: no added
latency when idle, large batches under load). A graceful stop or revocation flushes.
"""

from __future__ import annotations

import asyncio
import logging

from runnel.errors import Fenced
from runnel.ports import AckRequest, Clock, StreamLog
from runnel.runtime.feed import PartitionFeed

log = logging.getLogger(__name__)


class Acker:
    """Queues and flushes acknowledgements for one executor."""

    def __init__(self, log_port: StreamLog, group: str, clock: Clock) -> None:
        self._log = log_port
        self._clock = clock
        self._group = group
        self._pending: dict[PartitionFeed, list[bytes]] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.refused = 0
        self.sent = 0

    def add(self, feed: PartitionFeed, ids: list[bytes]) -> None:
        """Queue ``ids`` of ``feed`` for acknowledgement."""
        queued = self._pending.get(feed)
        if queued is None:
            self._pending[feed] = ids
        else:
            queued.extend(ids)
        self._wake.set()

    def queued(self) -> int:
        """How many ids wait to be sent."""
        return sum(len(v) for v in self._pending.values())

    async def run(self) -> None:
        """Flush whenever something is queued (until cancelled)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:
                log.warning("acknowledgements not sent yet, retrying: %s", exc)
                await self._clock.sleep(0.2)
                self._wake.set()

    async def flush(self) -> None:
        """Send everything queued now, in one round trip; wait for it."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            feeds = list(batch)
            requests = [AckRequest(f.key, self._group, batch[f], f.fence) for f in feeds]
            try:
                results = await self._log.ack(requests)
            except Exception:
                # Put them back so a later flush retries; the caller sees the error.
                for feed, ids in batch.items():
                    self._pending.setdefault(feed, []).extend(ids)
                raise
            for feed, result in zip(feeds, results, strict=True):
                if isinstance(result, Fenced):
                    self.refused += len(batch[feed])
                    log.warning(
                        "acknowledgement of %d entr%s of %s.%d refused: the lease (epoch %d) "
                        "is no longer ours",
                        len(batch[feed]),
                        "y" if len(batch[feed]) == 1 else "ies",
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
                    self._pending.setdefault(feed, []).extend(batch[feed])
                else:
                    self.sent += len(batch[feed])
