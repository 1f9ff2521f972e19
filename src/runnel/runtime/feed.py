"""A partition's feed: the buffer between the fetcher and the partition's consumer.

The fetcher fills it (reading up to the partition's read-ahead whenever that much room is
free, so at most twice that many are buffered), within the worker's byte budget
(:mod:`runnel.runtime.budget`); the consumer's Events iterator drains it. It also holds
the partition's lease and fence, and the local lease deadline after which no event is
handed to user code.

The read-ahead adapts (:meth:`PartitionFeed.adapt`): it starts at ``prefetch_count`` and
doubles each time a read of new entries comes back full while the consumer had emptied the
buffer (the partition has a backlog and the consumer waits on the reads, so larger reads
mean fewer round trips and acknowledgements; a consumer that is slower than the reads gains
nothing from a larger buffer and keeps the one it has), up to ``prefetch_max``, to
:data:`GROWTH_BYTES` of its largest entries and to what the byte budget could hold for
this partition alone; it halves, never below
``prefetch_count``, each time a read finds the partition caught up (events trickle in, and
a small buffer keeps what a crash would redeliver small). Under ``take(n)`` with ``n`` above
``prefetch_count`` the read-ahead is ``n``, fixed. Only the fetcher calls it, with
the outcome of a read, so the rule is the same on every backend and needs no clock.
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

GROWTH_BYTES: Final = 1 << 20
"""The most bytes a grown read-ahead may span, at the largest entry read from the
partition. Larger reads pay off for small events, whose cost is the round trips; large
events gain nothing from them, and a large reply holds up Redis and the event loop (lease
renewals included). A read-ahead never shrinks below ``prefetch_count`` for it."""


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
        prefetch_max: int = 0,
    ) -> None:
        self.partition = partition
        self.key = key
        self.lease = lease
        self.fence = fence
        self.deadline = deadline
        # Double buffering: a read fetches up to ``refill_at`` events ahead (the read-ahead)
        # as soon as that much room is free, while the processor still has up to as many to
        # go. The read-ahead moves between ``floor`` and ``ceiling`` (see adapt()).
        self.floor = max(1, prefetch)
        self.ceiling = max(self.floor, prefetch_max)
        self.refill_at = self.floor
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
        """Read whole batches of ``count`` ahead (``take(n)`` needs a batch at a time).

        A read-ahead of ``count`` events is then fixed: a batch already makes each round
        large, and growing it further measured no faster (more events alive at once).
        """
        if count > self.floor:
            self.floor = self.ceiling = count
        if count > self.refill_at:
            self._set_read_ahead(count)
            self._room.set()

    def adapt(self, asked: int, got: int, starved: bool) -> None:
        """Resize the read-ahead after a read of new entries that asked ``asked``, got ``got``.

        ``starved`` says whether the buffer was empty when the entries arrived (the
        consumer waited on the read, or soon would have). A full read of at least the
        read-ahead into a starved buffer means a backlog the consumer could go through
        faster: double the read-ahead, up to the ceiling, to :data:`GROWTH_BYTES` and to
        what the byte budget could hold for this partition alone (twice the read-ahead), at
        the largest entry read from it. A short read means caught up: halve it, down to
        the floor. Anything else (the consumer still busy with what it had, a read the
        budget cut) changes nothing.
        """
        read_ahead = self.refill_at
        if got < asked:
            if read_ahead > self.floor:
                self._set_read_ahead(max(self.floor, read_ahead // 2))
            return
        if not starved or asked < read_ahead or read_ahead >= self.ceiling:
            return
        grown = min(self.ceiling, 2 * read_ahead)
        size = self.entry_size
        if size > 0:
            grown = min(grown, GROWTH_BYTES // size)
            budget = self.budget
            if budget is not None and budget.limit is not None:
                grown = min(grown, budget.limit // (2 * size))
        if grown > read_ahead:
            self._set_read_ahead(grown)

    def _set_read_ahead(self, count: int) -> None:
        self.refill_at = count
        self.capacity = 2 * count

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
        buffer = self.buffer
        if self.closing or not buffer:
            return None
        if self.clock.now() >= self.deadline:  # expired(), inlined: once per event
            self.close(lost=True)
            return None
        event = buffer.popleft()
        budget = self.budget
        if budget is not None:
            size = self.sizes.popleft()
            self.bytes -= size
            budget.release(size)
        if len(buffer) <= self.capacity - self.refill_at:
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
    # Two C-level passes: a generator over the items cost about 5% of a worker's time.
    return sum(map(len, fields)) + sum(map(len, fields.values()))
