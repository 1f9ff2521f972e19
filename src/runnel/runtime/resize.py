"""Holding a processor's partitions behind a stream resize's barrier.

One :class:`ResizeWatch` per executor applies :func:`runnel.domain.resize.barrier` to the
partitions it holds: it reads the stream's metadata (the partition count and its
history), the switch point of every old partition, and its consumer group's position on
each, and sets each feed's limit (the last id it may hand out) or holds it whole. The
fetcher stops a feed at its limit; entries past it stay pending and are read again once
the limit is lifted (:meth:`runnel.runtime.feed.PartitionFeed.unhold`).

How a running worker notices a resize: a feed that reads a switch marker the watch does
not know holds itself right after it and wakes the watch; the watch also reads the
metadata every :data:`IDLE_POLL` seconds, and every :data:`PENDING_POLL` seconds while a
barrier holds anything back (that is when the group positions are read too). When the
count grew, it tells the coordinator, which assigns the new partitions.

Example:
    >>> from runnel.domain.resize import Barrier
    >>> from runnel.domain.ids import StreamId
    >>> b = Barrier(8, 4, {0: StreamId(5, 0)}, frozenset({0}))
    >>> gate_of(b, 0), gate_of(b, 1), gate_of(b, 6)
    (StreamId(ms=5, seq=0), None, StreamId(ms=0, seq=0))
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from itertools import pairwise
from typing import Final, Protocol

from runnel.domain.ids import MIN_ID, StreamId
from runnel.domain.keys import Keys
from runnel.domain.resize import Barrier, Position, barrier, unlimited
from runnel.errors import BackendError
from runnel.ports import Clock, GroupProbe, GroupSnapshot, KeyValue
from runnel.runtime._repeats import RepeatedWarning
from runnel.runtime.feed import PartitionFeed
from runnel.telemetry import Metrics, NoMetrics

log = logging.getLogger(__name__)

PENDING_POLL: Final = 0.5
"""Seconds between two reads of the group positions while a barrier holds anything."""

IDLE_POLL: Final = 10.0
"""Seconds between two reads of the stream's metadata otherwise (a resize is noticed
sooner through the switch markers)."""


class Metadata(Protocol):
    """The stream's store as the watch uses it (a :class:`~runnel.runtime.store.StreamStore`)."""

    @property
    def history(self) -> tuple[int, ...]:
        """The partition counts the stream has had, as last read."""
        ...

    async def reload(self) -> int:
        """Read the metadata again; the partition count."""
        ...


class Snapshots(Protocol):
    """What reads the group positions (a :class:`~runnel.ports.StreamAdmin`)."""

    async def snapshot(self, probes: Sequence[GroupProbe]) -> list[GroupSnapshot]:
        """Each probed partition's group state, in one round trip."""
        ...


def gate_of(b: Barrier, number: int) -> StreamId | None:
    """The limit of partition ``number`` under ``b``: an id, ``MIN_ID`` for a partition
    held whole, None for no limit."""
    if not b.allows(number):
        return MIN_ID
    return b.limit(number)


def apply_gate(b: Barrier, number: int, feed: PartitionFeed) -> None:
    """Set ``feed``'s limit from ``b``; lift its hold if the limit moved."""
    if feed.limit_count > b.count:
        return  # it met the marker of a resize we have not read yet: it stays held
    feed.limit_count = b.count
    limit = gate_of(b, number)
    if limit == feed.limit:
        return
    feed.limit = limit
    if limit == MIN_ID:
        if not feed.held:
            feed.hold(None)
        return
    feed.unhold()


class ResizeWatch:
    """Keeps one processor's partitions behind its stream's resize barrier.

    Args:
        metadata: the stream's store (its metadata and history).
        keys: the stream's keys.
        group: the processor (its consumer group).
        kv: where the partitions' routing records are read.
        snapshots: what reads the group's position on the old partitions.
        clock: what the polls wait on.
        feeds: the partitions held now, by number.
        on_count: told of a grown partition count (the coordinator assigns it).
    """

    def __init__(
        self,
        metadata: Metadata,
        keys: Keys,
        group: str,
        kv: KeyValue,
        snapshots: Snapshots,
        clock: Clock,
        feeds: Callable[[], Mapping[int, PartitionFeed]],
        on_count: Callable[[int], Awaitable[None]],
        count: int,
        metrics: Metrics | None = None,
    ) -> None:
        self._metadata = metadata
        self._keys = keys
        self._group = group
        self._kv = kv
        self._snapshots = snapshots
        self._clock = clock
        self._feeds = feeds
        self._on_count = on_count
        self.barrier = unlimited(count)
        self.resizes = 0
        """Resizes noticed since the watch started."""
        self._switches: dict[tuple[int, int], StreamId] = {}
        self._released: tuple[int, ...] | None = None
        self._wake = asyncio.Event()
        self._failures = RepeatedWarning(log, clock)
        metrics = metrics if metrics is not None else NoMetrics()
        labels = {"app": keys.app, "stream": keys.stream_name, "processor": group}
        self._noticed = metrics.counter("runnel_stream_resizes_total", **labels)
        self._held = metrics.gauge("runnel_partitions_held_by_resize", **labels)

    def wake(self, grown: int | None = None) -> None:
        """Read the metadata soon (a feed met a switch marker, or a partition beyond it)."""
        self._wake.set()

    def apply(self, number: int, feed: PartitionFeed) -> None:
        """Put a newly held partition behind the barrier as it stands."""
        apply_gate(self.barrier, number, feed)
        if number >= self.barrier.count:
            self.wake()  # assigned by a peer that noticed a resize we have not

    @property
    def pending(self) -> bool:
        """Whether anything is held back, or a feed waits for the watch to catch up."""
        return not self.barrier.released or any(
            f.limit_count > self.barrier.count for f in self._feeds().values()
        )

    async def run(self) -> None:
        """Refresh until cancelled."""
        while True:
            try:
                await self.refresh()
            except BackendError as exc:
                self._failures.warn("checking the resize of %s failed: %s", self._group, exc)
            else:
                if self._failures.failures:
                    self._failures.clear(f"checking the resize of {self._group}")
            interval = PENDING_POLL if self.pending else IDLE_POLL
            await self._clock.wait_for(self._wake, interval)
            self._wake.clear()

    async def refresh(self) -> None:
        """Read the metadata and the positions; move every feed's limit."""
        count = await self._metadata.reload()
        history = self._metadata.history
        grew = count > self.barrier.count
        if grew:
            self.resizes += 1
            self._noticed.inc()
            log.info(
                "stream %s.%s has grown to %d partitions: %s holds the new partitions until "
                "every old one is processed up to its switch point",
                self._keys.app,
                self._keys.stream_name,
                count,
                self._group,
            )
        before = self.barrier
        self.barrier = await self._barrier(history)
        for number, feed in self._feeds().items():
            apply_gate(self.barrier, number, feed)
        self._held.set(self.barrier.held)
        if self.barrier.released and not before.released:
            log.info(
                "stream %s.%s: every old partition is processed up to its switch point; "
                "%s consumes all %d partitions",
                self._keys.app,
                self._keys.stream_name,
                self._group,
                self.barrier.count,
            )
        if grew:
            await self._on_count(count)

    async def _barrier(self, history: tuple[int, ...]) -> Barrier:
        if len(history) < 2 or history == self._released:
            return unlimited(history[-1])
        keys = self._keys
        old = history[-2]
        for p in range(old):
            needed = [(p, grown) for was, grown in pairwise(history) if p < was]
            if all(k in self._switches for k in needed):
                continue
            record = await self._kv.hash_get_all(keys.resize(p))
            for key in needed:
                raw = record.get(str(key[1]).encode())
                if raw is not None:
                    self._switches[key] = StreamId.parse(raw)
        probes = [
            GroupProbe(keys.stream(p), self._group, keys.lock(self._group, p)) for p in range(old)
        ]
        snaps = await self._snapshots.snapshot(probes)
        positions = {p: _position(s) for p, s in enumerate(snaps)}
        found = barrier(history, self._switches, positions)
        if found.released:
            self._released = history
        return found


def _position(snap: GroupSnapshot) -> Position:
    group = snap.group
    delivered = StreamId.parse(group.last_delivered_id) if group is not None else None
    pending = StreamId.parse(snap.oldest_pending) if snap.oldest_pending else None
    return Position(delivered, pending)
