"""Batching by size and by age: the rules behind ``take(n, within=...)``.

How it works:
    A :class:`TakeBuffer` holds the items that have arrived but not yet gone out, and the
    arrival time of the first of them. That first arrival starts the batch's clock; later
    items join the batch without moving it. A batch leaves in exactly one of two ways:

    ============== ======================================== =============================
    call           when it returns a batch                  what the batch holds
    ============== ======================================== =============================
    ``offer``      the items just offered make ``size``     exactly ``size`` items
    (``_many``)
    ``poll``       ``now >= due_at()`` and the buffer is    the 1..``size`` items waiting
                   not empty
    ============== ======================================== =============================

    A batch still waiting when its partition stops never leaves: its items were not
    processed, so they stay unacknowledged and are delivered again.

    Once a batch has gone out the buffer is empty and has no clock. The next item to arrive
    starts a new one, so windows follow the traffic rather than a periodic tick: a batch that
    is cut short by ``size`` never shortens the wait of the batch after it, and a lone item is
    never sent early because a tick happened to fall just after it arrived.

    A burst comes out in full batches as it arrives: 35 items offered at once with
    ``size=10`` give three batches of ten from three of the ``offer`` calls, and the last five
    wait for ``poll`` until ``within`` seconds after the 31st item arrived.

    The buffer never reads a clock and never waits. The runtime passes ``now`` in, asks
    :meth:`TakeBuffer.due_at` when to come back, and calls :meth:`TakeBuffer.poll` then.
    ``within=0`` means "whatever is there, whenever polled".

Example:
    >>> buffer: TakeBuffer[str] = TakeBuffer(size=2, within=5.0)
    >>> buffer.offer("a", now=1.0) is None
    True
    >>> buffer.due_at()
    6.0
    >>> buffer.offer("b", now=2.0)
    ['a', 'b']
    >>> buffer.due_at() is None
    True
"""

from __future__ import annotations

import math
from typing import Generic, TypeVar

T = TypeVar("T")


class TakeBuffer(Generic[T]):
    """Collects items into batches of at most ``size`` that wait at most ``within`` seconds.

    Args:
        size: the largest batch; a batch of this size leaves as soon as it is complete.
        within: how long, in seconds, a batch may wait after its first item arrived before
            :meth:`poll` lets it go incomplete. ``0`` lets any waiting items go at once.

    Raises:
        ValueError: ``size`` is below 1, or ``within`` is negative or not finite.

    Example:
        >>> buffer: TakeBuffer[int] = TakeBuffer(size=10, within=1.0)
        >>> [buffer.offer(n, now=0.0) for n in range(3)]
        [None, None, None]
        >>> buffer.poll(now=0.5) is None
        True
        >>> buffer.poll(now=1.0)
        [0, 1, 2]
    """

    __slots__ = ("_first_at", "_items", "_size", "_within")

    def __init__(self, size: int, within: float) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size!r}")
        if not (math.isfinite(within) and within >= 0):
            raise ValueError(f"within must be a finite number of seconds >= 0, got {within!r}")
        self._size = size
        self._within = float(within)
        self._items: list[T] = []
        self._first_at: float | None = None

    @property
    def size(self) -> int:
        """The largest batch this buffer emits.

        Example:
            >>> TakeBuffer[int](size=3, within=1.0).size
            3
        """
        return self._size

    @property
    def within(self) -> float:
        """How long a batch may wait after its first item before :meth:`poll` releases it.

        Example:
            >>> TakeBuffer[int](size=3, within=1.5).within
            1.5
        """
        return self._within

    def offer(self, item: T, now: float) -> list[T] | None:
        """Add ``item``, which arrived at ``now``; return the batch it completes, if any.

        The returned batch always holds exactly ``size`` items. A batch that is overdue but
        not full is not returned here, even when ``now`` is past :meth:`due_at`: the new item
        joins it and :meth:`poll` releases it, so ``offer`` has one meaning.

        Example:
            >>> buffer: TakeBuffer[str] = TakeBuffer(size=2, within=1.0)
            >>> buffer.offer("a", now=0.0) is None
            True
            >>> buffer.offer("b", now=0.1)
            ['a', 'b']
        """
        if not self._items:
            self._first_at = now
        self._items.append(item)
        if len(self._items) >= self._size:
            return self._take()
        return None

    @property
    def room(self) -> int:
        """How many more items the waiting batch takes before it is full.

        Example:
            >>> buffer: TakeBuffer[str] = TakeBuffer(size=3, within=1.0)
            >>> _ = buffer.offer("a", now=0.0)
            >>> buffer.room
            2
        """
        return self._size - len(self._items)

    def offer_many(self, items: list[T], now: float) -> list[T] | None:
        """:meth:`offer` for several items that arrived together, at most :attr:`room`.

        Raises:
            ValueError: more items than the batch has room for.

        Example:
            >>> buffer: TakeBuffer[str] = TakeBuffer(size=3, within=1.0)
            >>> buffer.offer_many(["a", "b"], now=0.0) is None
            True
            >>> buffer.offer_many(["c"], now=0.5)
            ['a', 'b', 'c']
        """
        if len(items) > self.room:
            raise ValueError(f"{len(items)} items offered, but the batch has room for {self.room}")
        if not items:
            return None
        if not self._items:
            self._first_at = now
        self._items.extend(items)
        if len(self._items) >= self._size:
            return self._take()
        return None

    def due_at(self) -> float | None:
        """When the waiting batch may leave incomplete: its first arrival plus ``within``.

        Returns ``None`` when nothing is waiting, so the runtime has nothing to come back for.

        Example:
            >>> buffer: TakeBuffer[str] = TakeBuffer(size=5, within=2.0)
            >>> buffer.due_at() is None
            True
            >>> _ = buffer.offer("a", now=10.0)
            >>> _ = buffer.offer("b", now=11.0)
            >>> buffer.due_at()
            12.0
        """
        if self._first_at is None:
            return None
        return self._first_at + self._within

    def poll(self, now: float) -> list[T] | None:
        """Return the waiting items if their batch is due at ``now``, else ``None``.

        Never returns an empty list: with nothing waiting there is nothing due.

        Example:
            >>> buffer: TakeBuffer[str] = TakeBuffer(size=5, within=2.0)
            >>> _ = buffer.offer("a", now=10.0)
            >>> buffer.poll(now=11.9) is None
            True
            >>> buffer.poll(now=12.0)
            ['a']
            >>> buffer.poll(now=99.0) is None
            True
        """
        due = self.due_at()
        if due is None or now < due:
            return None
        return self._take()

    def __len__(self) -> int:
        """How many items are waiting.

        Example:
            >>> buffer: TakeBuffer[str] = TakeBuffer(size=5, within=1.0)
            >>> _ = buffer.offer("a", now=0.0)
            >>> len(buffer)
            1
        """
        return len(self._items)

    def __repr__(self) -> str:
        return (
            f"TakeBuffer(size={self._size}, within={self._within}, "
            f"waiting={len(self._items)}, due_at={self.due_at()})"
        )

    def _take(self) -> list[T]:
        batch, self._items, self._first_at = self._items, [], None
        return batch
