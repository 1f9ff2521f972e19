"""A partition's feed: the buffer between the fetcher and the partition's consumer.

The fetcher fills it (reading up to ``prefetch_count`` events ahead whenever that much
room is free, so at most twice that many are buffered), within the worker's byte budget
(:mod:`runnel.runtime.budget`); the consumer's Events iterator drains it. It also holds
the partition's lease and fence, and the local lease deadline after which no event is
handed to user code.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from runnel.domain.ids import StreamId
from runnel.domain.model import Event, Fields, Partition
from runnel.ports import Clock, Fence, Lease
from runnel.runtime.budget import ByteBudget

HISTORY: Final = b"0"
NEW: Final = b">"


class FeedClosed(Exception):
    """Raised by :meth:`PartitionFeed.get` once the feed closes (stop, revoke, lease loss)."""


class PartitionFeed:
    """Buffered events of one owned partition, plus its ownership state."""

    def __init__(
        self,
        partition: Partition,
        key: str,
        lease: Lease,
        fence: Fence,
        deadline: float,
        prefetch: int,
        clock: Clock,
        room: asyncio.Event,
        budget: ByteBudget | None = None,
    ) -> None:
        self.partition = partition
        self.key = key
        self.lease = lease
        self.fence = fence
        self.deadline = deadline
        # Double buffering: a read fetches up to ``prefetch`` events ahead as soon as that
        # much room is free, while the processor still has up to ``prefetch`` to go.
        self.refill_at = max(1, prefetch)
        self.capacity = 2 * self.refill_at
        self.clock = clock
        self.buffer: deque[Event] = deque()
        self.start: bytes = HISTORY  # re-read our own pending entries first
        self.last_seen: bytes = b"0-0"  # highest id delivered to us (for the doorbell)
        self.paused = False  # quarantined: owned but not consumed
        self.closing = False  # finish the in-flight iteration, then stop
        self.lost = False  # lease gone: stop at once
        self.generation = 0  # bumped on every restart: replies to older reads are dropped
        self.caught_up = False  # the last read found nothing more: wait for the doorbell
        self.backoff = False  # Redis refused its last read: wait a little before the next
        # A stream resize's barrier (runtime/resize.py): the last id this partition may hand
        # out now (None: no limit); ``held`` once it reached it (nothing more is read), and
        # where to re-read our pending entries from when it is lifted.
        self.limit: StreamId | None = None
        self.limit_count = 0  # the partition count the limit belongs to
        self.held = False
        self.resume_at: bytes | None = None
        self._data = asyncio.Event()
        self._room = room
        # The byte budget (None: no limit): the size of each buffered event, in step with
        # ``buffer``, their sum, and the largest entry read from this partition so far.
        self.budget = budget
        self.sizes: deque[int] = deque()
        self.bytes = 0
        self.entry_size = 0

    @property
    def epoch(self) -> int:
        """The fencing epoch of the lease this feed reads under."""
        return self.lease.epoch

    @property
    def wants(self) -> int:
        """How many entries the fetcher may add now (0 while stopped or full)."""
        if self.closing or self.lost or self.paused or self.held:
            return 0
        return self.capacity - len(self.buffer)

    def hold_at_least(self, count: int) -> None:
        """Read whole batches of ``count`` ahead (``take(n)`` needs a batch at a time)."""
        if count > self.refill_at:
            self.refill_at = count
            self.capacity = 2 * count
            self._room.set()

    def put(self, events: list[Event], sizes: list[int] | None = None) -> None:
        """Add fetched events (fetcher side), with their raw sizes when there is a budget."""
        self.buffer.extend(events)
        if self.budget is not None:
            if sizes is None:
                sizes = [event_size(e) for e in events]
            self.sizes.extend(sizes)
            total = sum(sizes)
            self.bytes += total
            self.budget.take(total)
            largest = max(sizes, default=0)
            if largest > self.entry_size:
                self.entry_size = largest
                if largest > self.budget.entry_size:
                    self.budget.entry_size = largest
        self._data.set()

    def _release_all(self) -> None:
        """Give back the bytes of every buffered event (the buffer is dropped)."""
        if self.budget is not None:
            self.sizes.clear()
            released, self.bytes = self.bytes, 0
            if released:
                self.budget.release(released)

    def restart_from_history(self) -> None:
        """Drop buffered events and re-read our pending entries, in id order, from the start.

        A read already in flight was sent for the old position: its reply is dropped (the
        fetcher compares generations), since its entries are pending anyway and come back
        in order with the history. Flush queued acknowledgements first, or events already
        processed come back too.
        """
        self.buffer.clear()
        self._release_all()
        self.start = HISTORY
        self.generation += 1
        self.caught_up = False
        if self.resume_at is not None:  # the history read meets the limit again
            self.held = False
            self.resume_at = None
        self._room.set()

    def hold(self, resume_at: bytes | None) -> None:
        """Read nothing more until :meth:`unhold` (a resize barrier).

        ``resume_at``: entries after it were read and are pending, not buffered: they are
        read again from there when the hold is lifted (None: nothing was read past it).
        """
        self.held = True
        self.resume_at = resume_at

    def unhold(self) -> None:
        """Lift a hold: read on, first our pending entries after where it stopped."""
        if not self.held:
            return
        self.held = False
        if self.resume_at is not None:
            self.start = self.resume_at
            self.resume_at = None
            self.generation += 1
        self.caught_up = False
        self._room.set()

    def close(self, lost: bool = False) -> None:
        """Stop handing out events: gracefully (``closing``) or at once (``lost``)."""
        self.closing = True
        if lost:
            self.lost = True
            self.buffer.clear()
        # A closing feed hands nothing more out: what it buffered no longer counts.
        self._release_all()
        self._data.set()

    def expired(self) -> bool:
        """Whether the local lease deadline has passed (on the monotonic clock)."""
        return self.clock.now() >= self.deadline

    def take_now(self) -> Event | None:
        """The next buffered event if one can be handed out right now."""
        if self.closing or not self.buffer:
            return None
        if self.expired():
            self.close(lost=True)
            return None
        event = self.buffer.popleft()
        budget = self.budget
        if budget is not None:
            size = self.sizes.popleft()
            self.bytes -= size
            budget.release(size)
        if len(self.buffer) <= self.capacity - self.refill_at:
            self._room.set()
        return event

    def take_upto(self, count: int) -> list[Event]:
        """Up to ``count`` buffered events at once (one deadline check for all of them)."""
        buffer = self.buffer
        if self.closing or not buffer:
            return []
        if self.expired():
            self.close(lost=True)
            return []
        budget, sizes = self.budget, self.sizes
        if count >= len(buffer):
            events = list(buffer)
            buffer.clear()
            if budget is not None:
                size = self.bytes
                sizes.clear()
                self.bytes = 0
                budget.release(size)
        else:
            events = [buffer.popleft() for _ in range(count)]
            if budget is not None:
                size = sum([sizes.popleft() for _ in range(count)])
                self.bytes -= size
                budget.release(size)
        if len(buffer) <= self.capacity - self.refill_at:
            self._room.set()
        return events

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event; ``None`` when ``timeout`` passed first.

        Raises:
            FeedClosed: the feed is closing or its lease is gone.
        """
        while True:
            event = self.take_now()
            if event is not None:
                return event
            if self.closing:
                raise FeedClosed
            self._data.clear()
            if timeout is None:
                await self._data.wait()
                continue
            if timeout <= 0:
                return None
            if not await self.clock.wait_for(self._data, timeout):
                event = self.take_now()
                if event is None and self.closing:
                    raise FeedClosed
                return event


def event_size(event: Event) -> int:
    """The raw size of an event, as the byte budget counts it: its field names and values."""
    return entry_size(event.data)


def entry_size(fields: Fields) -> int:
    """The raw size of an entry's fields: the sum of the lengths of names and values."""
    return sum(len(name) + len(value) for name, value in fields.items())
