"""The fetcher: one loop per executor that reads every owned partition and acknowledges.

Each round is one round trip: it carries the acknowledgements queued so far and a fenced,
non-blocking group read of each partition that is due, i.e. that has at least half of its
buffer free and may have more entries. A partition first re-reads its own pending
entries (``0``), in id order, then new ones (``>``). A read that returns fewer entries
than it asked for means the partition is caught up: it is not read again until the
doorbell (``XREAD BLOCK`` after the last id seen, which changes no state and so needs no
fence) says it has new entries, or until ``read_timeout`` passes. The doorbell reads them
as it answers: :meth:`~runnel.ports.StreamLog.wait_and_read` runs a fenced read of its
partitions the moment the wait ends (on Redis, an ``exchange.lua`` call pipelined behind
the ``XREAD``), so a wake-up is one round trip. Its partitions count as being read until
it answers; one that catches up meanwhile gets a spare doorbell that only watches.

A read of new entries that comes back full to a partition whose consumer emptied its
buffer meanwhile grows the partition's read-ahead, and one that comes back short shrinks
it, between ``prefetch_count`` and ``prefetch_max``
(:meth:`~runnel.runtime.feed.PartitionFeed.adapt`).

With a byte budget (``prefetch_bytes``), a read asks for no more entries than the budget
has room for, estimating an entry by the largest read from that partition; a partition
whose buffer is empty reads at least one entry whatever is left (see
:mod:`runnel.runtime.budget`).

Acknowledgements that no read round comes to carry are sent on their own after a short
linger (see :mod:`runnel.runtime.acks`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from runnel.domain.ids import StreamId
from runnel.domain.model import Entry, Event
from runnel.domain.resize import MARKER_FIELD, marker_count
from runnel.errors import (
    BackendError,
    BackendUnavailable,
    Fenced,
    GroupMissing,
    PermissionDenied,
)
from runnel.ports import Clock, ReadRequest, StreamLog
from runnel.runtime._aio import cancel_and_wait
from runnel.runtime._repeats import RepeatedWarning
from runnel.runtime.acks import ACK_LINGER, Acker
from runnel.runtime.budget import ByteBudget
from runnel.runtime.feed import NEW, PartitionFeed

log = logging.getLogger(__name__)

MAX_ROUNDS = 2
"""Round trips in flight at once (never two reads of one partition)."""

REFUSED_BACKOFF = 1.0
"""Seconds a partition waits after Redis refused its read (other than a missing group)."""


class _Bell:
    """A doorbell in flight: the keys it watches, and the feeds it reads as it answers
    (with their generations when it was rung)."""

    __slots__ = ("feeds", "generations", "keys", "reserved", "task")

    def __init__(self, keys: dict[str, bytes], feeds: list[PartitionFeed], reserved: int) -> None:
        self.keys = keys
        self.feeds = feeds
        self.generations = [f.generation for f in feeds]
        self.reserved = reserved
        self.task: asyncio.Future[set[str]] | None = None

    def stale(self) -> bool:
        """Whether a feed it reads stopped, was restarted or held since it was rung."""
        return any(
            f.closing or f.held or f.generation != g
            for f, g in zip(self.feeds, self.generations, strict=True)
        )


class Fetcher:
    """Fills partition feeds from the stream log and sends their acknowledgements."""

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
        check_store: Callable[[], Awaitable[bool | None]] | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self._budget = budget
        if budget is not None:
            budget.watch(room)
        self._acker = acker
        self._check_store = check_store
        self._log = log_port
        self._clock = clock
        self._group = group
        self._feeds = feeds
        self._decoder = decoder
        self._read_timeout = read_timeout
        self._room = room
        self.rounds = 0
        self.fenced = 0
        """Reads refused because the lease was gone."""
        self.on_unavailable: Callable[[BaseException], None] | None = None
        """Told of each round that failed because the backend did not answer."""
        self.assigned = asyncio.Event()  # set when a partition is granted
        self.gone = 0
        self._bell: _Bell | None = None  # reads its feeds as it answers
        self._spare: _Bell | None = None  # reads nothing: for feeds ``_bell`` misses
        self._bell_reads = True  # False once the backend declined to read with a wait
        self._let_go = asyncio.Event()  # set whenever feeds stop reading
        self._rounds: dict[asyncio.Future[None], list[PartitionFeed]] = {}
        self._reading: set[PartitionFeed] = set()  # feeds with a read in flight
        self._backoffs: set[asyncio.Future[None]] = set()
        self._failures = RepeatedWarning(log, clock)
        self.on_marker: Callable[[int], None] | None = None
        """Told of a resize marker met ahead of the barrier (the count grown to)."""

    async def run(self) -> None:
        """Fetch and acknowledge until cancelled."""
        try:
            while True:
                try:
                    self._launch()
                    await self._wait()
                    self._collect()
                except BackendError as exc:
                    if self.on_unavailable is not None and isinstance(exc, BackendUnavailable):
                        self.on_unavailable(exc)
                    self._failures.warn("fetch failed, retrying: %s", exc)
                    await self._clock.sleep(0.5)
                else:
                    if self._failures.failures:
                        self._failures.clear("fetching")
        finally:
            await cancel_and_wait(*self._rounds, *self._backoffs)
            for bell in (self._bell, self._spare):
                if bell is not None and bell.task is not None:
                    await cancel_and_wait(bell.task)
            self._bell = self._spare = None
            self._reading.clear()
            self._let_go.set()

    async def let_go(self, feed: PartitionFeed) -> None:
        """Wait until no read of ``feed`` (closing) is in flight.

        Called before its lease is given up, so that no read of it reaches the backend
        after that, refused as a stale owner's. A doorbell that reads it is cancelled (its
        other feeds re-read what it may have taken); a round is waited for.
        """
        bell = self._bell
        if bell is not None and bell.task is not None and feed in bell.feeds:
            bell.task.cancel()
        deadline = self._clock.now() + self._read_timeout
        while feed in self._reading:
            left = deadline - self._clock.now()
            if left <= 0:
                return
            self._let_go.clear()
            await self._clock.wait_for(self._let_go, left)

    def _launch(self) -> None:
        """Start rounds for what is due, up to :data:`MAX_ROUNDS` in flight at once.

        A round that reads anything also looks again at the caught-up partitions (an empty
        read costs little), so their new entries are found while others keep the fetcher
        busy; the doorbell is for when nothing else is going on.
        """
        while len(self._rounds) < MAX_ROUNDS:
            free = [f for f in self._feeds() if f not in self._reading]
            feeds = [f for f in free if self._due(f)]
            counts: list[int] = []
            reserved = 0
            if feeds:
                feeds, counts, reserved = self._sized(feeds)
            if not feeds and not (self._acks_due() and not self._rounds):
                return
            if feeds:
                riders, rider_counts, rider_reserved = self._sized(
                    [f for f in free if self._rider(f)]
                )
                feeds += riders
                counts += rider_counts
                reserved += rider_reserved
            self._reading.update(feeds)
            task = asyncio.ensure_future(self.round(feeds, counts, reserved))
            self._rounds[task] = feeds
            if not feeds:
                return  # an acknowledgement-only round

    def _collect(self) -> None:
        """Account for finished rounds; a failed one is retried by run()."""
        failure: BaseException | None = None
        for task in [t for t in self._rounds if t.done()]:
            feeds = self._rounds.pop(task)
            self._reading.difference_update(feeds)
            self._let_go.set()
            if not task.cancelled() and task.exception() is not None:
                failure = task.exception()
        self._collect_bells()
        if failure is not None:
            raise failure

    def _sized(self, feeds: list[PartitionFeed]) -> tuple[list[PartitionFeed], list[int], int]:
        """How many entries each of ``feeds`` may read, within the byte budget.

        Returns the feeds that may read, how many entries each, and the bytes set aside for
        them. A feed with buffered events waits while the budget has no room for one more of
        its entries; one with an empty buffer reads at least one entry.
        """
        budget = self._budget
        if budget is None:
            return feeds, [f.wants for f in feeds], 0
        free = budget.free()
        kept: list[PartitionFeed] = []
        counts: list[int] = []
        reserved = 0
        for feed in feeds:
            size = feed.entry_size or budget.entry_size
            if size <= 0:
                count = 1  # nothing read yet: one entry tells the size
            else:
                count = min(feed.wants, free // size)
                if count < 1:
                    if feed.buffer:
                        budget.blocked = True  # read it once bytes come back
                        continue
                    count = 1
                free = max(0, free - count * size)
                reserved += count * size
            kept.append(feed)
            counts.append(count)
        budget.reserve(reserved)
        return kept, counts, reserved

    @staticmethod
    def _due(feed: PartitionFeed) -> bool:
        wants = feed.wants
        if wants <= 0 or feed.backoff:
            return False
        if feed.start != NEW:
            return True  # pending entries to re-read first
        return not feed.caught_up and wants >= feed.refill_at

    @staticmethod
    def _rider(feed: PartitionFeed) -> bool:
        return feed.caught_up and feed.start == NEW and feed.wants > 0 and not feed.backoff

    def _acks_due(self) -> bool:
        acker = self._acker
        if not acker.queued():
            return False
        return acker.urgent.is_set() or self._clock.now() >= acker.oldest + ACK_LINGER

    async def round(
        self, feeds: list[PartitionFeed], counts: list[int] | None = None, reserved: int = 0
    ) -> None:
        """One round trip: the queued acknowledgements, and a read of each of ``feeds``.

        ``counts`` says how many entries to read from each (by default all it has room
        for); ``reserved`` is what the byte budget set aside for them, given back at the end.
        """
        try:
            await self._round(feeds, counts or [f.wants for f in feeds])
        finally:
            if reserved and self._budget is not None:
                self._budget.unreserve(reserved)

    async def _round(self, feeds: list[PartitionFeed], counts: list[int]) -> None:
        requests = self._requests(feeds, counts)
        generations = [f.generation for f in feeds]
        acker = self._acker
        self.rounds += 1
        batch = acker.take()
        try:
            acked, results = await self._log.exchange(acker.requests(batch), requests)
        except BaseException:
            acker.restore(batch)  # sent again later (acknowledging twice is harmless)
            # The call may have run on the server without its reply reaching us: entries
            # read then are pending but not buffered. Re-read each partition's pending
            # entries first, in order, so none is skipped.
            for feed in feeds:
                if not feed.closing:
                    feed.restart_from_history()
            raise
        acker.settle(batch, acked)
        await self._settle(feeds, generations, requests, results)

    async def _settle(
        self,
        feeds: list[PartitionFeed],
        generations: list[int],
        requests: list[ReadRequest],
        results: list[list[Entry] | Exception],
    ) -> None:
        """Deliver each read's entries, or handle the refusal of its slot."""
        for feed, generation, request, result in zip(
            feeds, generations, requests, results, strict=True
        ):
            if isinstance(result, Fenced):
                self.fenced += 1
                log.warning(
                    "read of %s.%d refused: lease epoch %d is no longer current",
                    feed.partition.stream,
                    feed.partition.number,
                    feed.epoch,
                )
                feed.close(lost=True)
            elif isinstance(result, PermissionDenied):
                raise result  # retrying cannot grant it: the fetcher stops, the worker halts
            elif isinstance(result, Exception):
                await self._refused(feed, result)
            elif not feed.closing and feed.generation == generation:
                self._deliver(feed, result, request.count)
            # else: stopped, or restarted meanwhile; the entries stay pending

    def _requests(self, feeds: list[PartitionFeed], counts: list[int]) -> list[ReadRequest]:
        return [
            ReadRequest(f.key, self._group, _consumer(f), n, f.start, f.fence)
            for f, n in zip(feeds, counts, strict=True)
        ]

    async def _refused(self, feed: PartitionFeed, error: Exception) -> None:
        """A read Redis refused: re-create a missing group, else back off the partition."""
        if isinstance(error, GroupMissing):
            # The group is gone (the store was reset, or someone destroyed it): create it
            # again at the start, never at the end, so nothing is skipped.
            reset = await self._check_store() if self._check_store is not None else False
            if reset is None:  # the worker is halting: re-create nothing
                feed.backoff = True
                return
            if not reset:  # a reset is reported once, by the check itself
                log.error("%s has no group %s: creating it again at 0", feed.key, self._group)
            await self._log.ensure_group(feed.key, self._group, b"0")
            feed.restart_from_history()
            return
        log.error("read of %s failed: %s (trying again in %.1fs)", feed.key, error, REFUSED_BACKOFF)
        feed.backoff = True
        self._clock_later(REFUSED_BACKOFF, feed)

    def _clock_later(self, delay: float, feed: PartitionFeed) -> None:
        async def clear() -> None:
            await self._clock.sleep(delay)
            feed.backoff = False
            self._room.set()

        task = asyncio.ensure_future(clear())
        self._backoffs.add(task)
        task.add_done_callback(self._backoffs.discard)

    def _deliver(self, feed: PartitionFeed, entries: list[Entry], asked: int) -> None:
        if feed.start != NEW:
            if not entries:
                feed.start = NEW  # our pending entries are all back in the buffer
                return
            feed.start = entries[-1].id
            if StreamId.parse(feed.start) > StreamId.parse(feed.last_seen):
                feed.last_seen = feed.start  # read before a reply was lost: delivered now
        else:
            feed.caught_up = len(entries) < asked
            if not entries:
                feed.adapt(asked, 0, starved=not feed.buffer)
                return
            feed.last_seen = entries[-1].id
        gated = feed.limit is not None or feed.held
        if gated:
            entries = self._gated(feed, entries)
        events, sizes, trimmed, marked = self._events(feed, entries)
        if marked and not gated:  # a resize marker: the barrier decides what goes through
            entries = self._gated(feed, entries)
            events, sizes, trimmed, _ = self._events(feed, entries)
        for entry_id in trimmed:
            # Trimmed after delivery: nothing left to process. Acknowledge it away.
            log.error(
                "entry %s of %s was trimmed before it was processed (counted as lost)",
                entry_id.decode(),
                feed.key,
            )
            self._acker.add(feed, [entry_id])
            self.gone += 1
        starved = not feed.buffer  # the consumer ate everything while the read was away
        if events:
            feed.put(events, sizes)
        if feed.start == NEW:
            feed.adapt(asked, len(entries), starved)  # after put(): sized by these entries

    def _events(
        self, feed: PartitionFeed, entries: list[Entry]
    ) -> tuple[list[Event], list[int] | None, list[bytes], bool]:
        """The events of ``entries``, their sizes (with a byte budget), the ids of trimmed
        entries (no fields left), and whether any entry is a resize marker.

        One pass, and one call per entry (the Event): this runs for every entry read.
        """
        partition, epoch, decoder = feed.partition, feed.epoch, self._decoder
        events: list[Event] = []
        append = events.append
        sizes: list[int] | None = None if self._budget is None else []
        trimmed: list[bytes] = []
        marked = False
        for entry_id, fields, delivery_count in entries:
            if not fields:
                trimmed.append(entry_id)
                continue
            if MARKER_FIELD in fields:
                marked = True
            append(Event(partition, entry_id, fields, delivery_count, epoch, decoder))
            if sizes is not None:  # entry_size(), inlined
                sizes.append(sum(map(len, fields)) + sum(map(len, fields.values())))
        return events, sizes, trimmed, marked

    def _gated(self, feed: PartitionFeed, entries: list[Entry]) -> list[Entry]:
        """The entries a stream resize's barrier lets through (see runtime/resize.py).

        Those past the feed's limit stay pending and the feed is held; a switch marker is
        acknowledged, never handed out, and one the barrier does not know yet holds the
        feed right after it and tells ``on_marker``.
        """
        if feed.held:
            return []  # a read that was in flight when the feed was held: all stay pending
        limit = feed.limit
        kept: list[Entry] = []
        for entry in entries:
            if limit is not None and StreamId.parse(entry.id) > limit:
                feed.hold(limit.encode())
                return kept
            grown = marker_count(entry.fields)
            if grown is None:
                kept.append(entry)
                continue
            self._acker.add(feed, [entry.id])
            if grown > feed.limit_count:
                feed.limit, feed.limit_count = StreamId.parse(entry.id), grown
                feed.hold(entry.id)
                if self.on_marker is not None:
                    self.on_marker(grown)
                return kept
        return kept

    async def _wait(self) -> None:
        """Wait for a round to finish, room, a new partition, acks to send, or the doorbell."""
        acker = self._acker
        bell = self._bell
        if bell is not None and bell.task is not None and bell.stale():
            # Rare: one of its feeds must be read afresh (restarted, or a resize holds it),
            # or must not be read any more (stopped, lease lost), and the bell may ring for
            # long. Its other feeds re-read what it may have taken.
            bell.task.cancel()
        if not any(self._rounds.values()):
            # No read in flight (acknowledgements alone may be): every partition with room
            # is caught up, so ring the bell.
            self._ring([f for f in self._feeds() if self._rider(f)])
        waiters: list[asyncio.Future[Any]] = [*self._rounds]
        bells = [b.task for b in (self._bell, self._spare) if b is not None and b.task]
        waiters += bells
        timeout = self._read_timeout
        if len(self._rounds) < MAX_ROUNDS:
            self._room.clear()
            self.assigned.clear()
            for flag in (self._room, self.assigned):
                waiters.append(asyncio.ensure_future(flag.wait()))
            if not self._rounds:
                # Acknowledgements go on their own only when no round is there to carry them.
                waiters.append(asyncio.ensure_future(acker.urgent.wait()))
                if acker.queued():
                    timeout = max(0.0, acker.oldest + ACK_LINGER - self._clock.now())
                else:
                    waiters.append(asyncio.ensure_future(acker.queued_event.wait()))
        sleeper = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({*waiters, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            for waiter in waiters:
                if waiter not in bells and waiter not in self._rounds:
                    waiter.cancel()

    def _ring(self, riders: list[PartitionFeed]) -> None:
        """Keep a doorbell on every caught-up partition.

        The bell reads the partitions it watches as it answers, in the same round trip
        (:meth:`~runnel.ports.StreamLog.wait_and_read`), so it is not cancelled in passing
        (only when one of its partitions changes, see :meth:`_wait` and :meth:`let_go`): a
        partition that catches up while it rings, so that it does not cover it, gets a
        spare bell that only watches (cancelled and rung again as others catch up).
        """
        self._collect_bells()
        watched = {f.key: f.last_seen for f in riders}
        bell = self._bell
        if bell is None and self._bell_reads and watched:
            self._cancel_spare()
            feeds, counts, reserved = self._sized([f for f in riders if f not in self._reading])
            bell = self._bell = _Bell(watched, feeds, reserved)
            self._reading.update(feeds)
            bell.task = asyncio.ensure_future(self._ringing(bell, self._requests(feeds, counts)))
            return
        if bell is not None:
            watched = {k: v for k, v in watched.items() if bell.keys.get(k) != v}
        spare = self._spare
        if spare is not None and all(spare.keys.get(k) == v for k, v in watched.items()):
            return
        self._cancel_spare()  # rare: a partition caught up while the bell was ringing
        if not watched:
            return
        spare = self._spare = _Bell(watched, [], 0)
        spare.task = asyncio.ensure_future(self._log.wait(watched, self._read_timeout))

    def _cancel_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None and spare.task is not None and not spare.task.done():
            spare.task.cancel()
            spare.task.add_done_callback(_ignore_outcome)

    async def _ringing(self, bell: _Bell, requests: list[ReadRequest]) -> set[str]:
        """Ring ``bell`` and read its feeds as it answers; the watched keys to read again.

        Its reads are handled like a round's; the feeds it watched without reading them
        (the byte budget had no room) are looked at again if their keys woke, or when it
        timed out.
        """
        feeds, generations = bell.feeds, bell.generations
        try:
            try:
                woken, results = await self._log.wait_and_read(
                    bell.keys, self._read_timeout, requests
                )
            except BaseException:
                # Its reads may have run on the server without their reply reaching us.
                # Each feed was caught up, with everything up to ``last_seen`` delivered:
                # what a lost read took lies above it, so re-read our pending entries
                # after it (the buffer stays; nothing delivered comes back).
                for feed, generation in zip(feeds, generations, strict=True):
                    if not feed.closing and feed.generation == generation:
                        feed.start = feed.last_seen
                        feed.generation += 1  # (the reply is lost anyway)
                        feed.caught_up = False
                self._room.set()
                raise
            if results is None:
                self._bell_reads = False  # the backend reads in rounds only
                return woken or set(bell.keys)
            await self._settle(feeds, generations, requests, results)
        finally:
            if bell.reserved and self._budget is not None:
                self._budget.unreserve(bell.reserved)
        read = {f.key for f in feeds}
        return {k for k in (woken or bell.keys) if k not in read}

    def _collect_bells(self) -> None:
        """Take in the doorbells that answered: mark their partitions worth reading again."""
        failure: BaseException | None = None
        for bell in (self._bell, self._spare):
            if bell is None or bell.task is None or not bell.task.done():
                continue
            if bell is self._bell:
                self._bell = None
                self._reading.difference_update(bell.feeds)
                self._let_go.set()
            else:
                self._spare = None
            if bell.task.cancelled():
                continue
            error = bell.task.exception()
            if error is not None:
                failure = error
                continue
            woken = bell.task.result() or (set() if bell.feeds else set(bell.keys))
            for feed in self._feeds():
                if feed.key in woken and feed.key in bell.keys:
                    feed.caught_up = False  # new entries, or a timeout: look again
        if failure is not None:
            raise failure  # surfaced to run()'s retry


def _ignore_outcome(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a doorbell nobody waits for any more."""
    if not future.cancelled():
        future.exception()


def _consumer(feed: PartitionFeed) -> str:
    # Partition-scoped consumer names: the pending entries list moves with the lease.
    return f"p{feed.partition.number}"
