"""The byte budget: how many bytes of fetched, not yet processed events a worker buffers.

``prefetch_count`` bounds each partition's buffer by a number of events; with large events
that number says little about memory. The budget bounds the sum of the raw sizes (field
names plus values) of the events buffered by every partition a worker owns, across all
its processors. The fetcher sizes each read by what is left of it, and reads a partition
whose buffer is empty at least one entry whatever is left, so a single event larger than
the budget still flows and no partition waits on another. The bytes are counted when an
event is buffered and given back when it is handed to user code (or dropped from the
buffer).

A read asks for a number of entries, not bytes: the fetcher estimates an entry of a
partition by the largest it has read from it (before its first read, by the largest any
partition has read; the worker's very first read asks for one entry). The buffered bytes
therefore stay within the budget plus one event per partition, as long as a partition's
entries are not larger than the ones read from it before.
"""

from __future__ import annotations

import asyncio


class ByteBudget:
    """Bytes of buffered events allowed, shared by every partition feed of a worker.

    Args:
        limit: the budget in bytes; ``None`` for no limit (only ``prefetch_count`` applies).
            ``0`` buffers one event per partition at a time.

    Example:
        >>> budget = ByteBudget(100)
        >>> budget.take(60); budget.free()
        40
        >>> budget.release(60); budget.free()
        100
    """

    __slots__ = ("_wakers", "blocked", "entry_size", "limit", "peak", "reserved", "used")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 0:
            raise ValueError(f"prefetch_bytes must be >= 0 or None, got {limit!r}")
        self.limit = limit
        self.used = 0
        """Bytes of the events buffered now."""
        self.reserved = 0
        """Bytes set aside for reads in flight (estimated)."""
        self.peak = 0
        """The most bytes ever buffered at once."""
        self.entry_size = 0
        """The largest entry any partition has read: the estimate for one not read yet."""
        self.blocked = False
        """A read was held back for lack of room: wake the fetchers when some comes back."""
        self._wakers: list[asyncio.Event] = []

    def watch(self, room: asyncio.Event) -> None:
        """Set ``room`` whenever bytes come back after a read was held back."""
        self._wakers.append(room)

    def free(self) -> int:
        """Bytes left for new reads (never negative); very large without a limit."""
        if self.limit is None:
            return 1 << 62
        return max(0, self.limit - self.used - self.reserved)

    def take(self, size: int) -> None:
        """Count ``size`` bytes of newly buffered events."""
        used = self.used = self.used + size
        if used > self.peak:
            self.peak = used

    def release(self, size: int) -> None:
        """Give back ``size`` bytes of events that left a buffer."""
        self.used -= size
        if self.blocked:
            self.wake()

    def reserve(self, size: int) -> None:
        """Set ``size`` bytes aside for a read in flight."""
        self.reserved += size

    def unreserve(self, size: int) -> None:
        """Give back what :meth:`reserve` set aside, once the read's entries are buffered."""
        self.reserved -= size
        if self.blocked:
            self.wake()

    def wake(self) -> None:
        """Tell every fetcher that room may have come back."""
        self.blocked = False
        for room in self._wakers:
            room.set()
