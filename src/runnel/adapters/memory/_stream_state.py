"""The data of one memory stream: entry ids, entries, consumer groups, pending lists.

These are plain synchronous structures; :mod:`runnel.adapters.memory.streams` gives them
Redis Streams semantics and :mod:`runnel.adapters.memory.broker` keeps them in its keyspace.

Example:
    >>> stream = Stream()
    >>> stream.add(StreamId(1, 0), {b"n": b"1"})
    >>> stream.find(parse_id(b"1-0"))
    {b'n': b'1'}
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field

from runnel.domain.ids import MIN_ID, StreamId
from runnel.errors import BackendProtocolError


def parse_id(raw: bytes, *, end: bool = False) -> StreamId:
    """Parse an id given to a command, refusing a malformed one as Redis does.

    Raises:
        BackendProtocolError: the id is malformed (Redis' own error text).

    Example:
        >>> parse_id(b"5-2"), parse_id(b"5")
        (StreamId(ms=5, seq=2), StreamId(ms=5, seq=0))
    """
    try:
        return StreamId.parse(raw, end=end)
    except ValueError:
        raise BackendProtocolError(
            f"ERR Invalid stream ID specified as stream command argument: {raw!r}"
        ) from None


@dataclass(slots=True)
class Nack:
    """One pending entry: who has it, since when, how often it was delivered."""

    consumer: str
    delivered_at: float
    count: int = 1


class PendingList:
    """A group's pending entries list, iterable in id order.

    Deliveries almost always arrive in id order, so entries live in an insertion-ordered
    dict that is re-sorted only after an out-of-order insert (a rewound group).
    """

    __slots__ = ("_entries", "_highest", "_sorted")

    def __init__(self) -> None:
        self._entries: dict[StreamId, Nack] = {}
        self._highest = MIN_ID
        self._sorted = True

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, sid: StreamId) -> bool:
        return sid in self._entries

    def get(self, sid: StreamId) -> Nack | None:
        """The pending entry ``sid``, if pending."""
        return self._entries.get(sid)

    def put(self, sid: StreamId, nack: Nack) -> None:
        """Add or replace the pending entry ``sid``."""
        if sid not in self._entries and self._entries and sid < self._highest:
            self._sorted = False
        self._entries[sid] = nack
        self._highest = max(self._highest, sid)

    def pop(self, sid: StreamId) -> Nack | None:
        """Remove ``sid``; return what was pending."""
        return self._entries.pop(sid, None)

    def since(self, start: StreamId) -> Iterator[tuple[StreamId, Nack]]:
        """Pending entries with ids >= ``start`` in id order (a snapshot, safe to mutate)."""
        if not self._sorted:
            self._entries = dict(sorted(self._entries.items()))
            self._sorted = True
        return iter([(sid, nack) for sid, nack in self._entries.items() if sid >= start])


@dataclass(slots=True)
class Group:
    """A consumer group: its cursor, pending entries and known consumers."""

    last_delivered: StreamId
    pel: PendingList = field(default_factory=PendingList)
    consumers: set[str] = field(default_factory=set)


class Stream:
    """A stream's entries in id order, its last id and its consumer groups.

    Trimming from the front only moves ``_head``; the lists are compacted once more than
    half of them is dead, so capped appends cost amortised O(1).
    """

    __slots__ = ("_fields", "_head", "_ids", "groups", "last_id")

    def __init__(self) -> None:
        self._ids: list[StreamId] = []
        self._fields: list[dict[bytes, bytes]] = []
        self._head = 0
        self.last_id: StreamId = MIN_ID
        self.groups: dict[str, Group] = {}

    def __len__(self) -> int:
        return len(self._ids) - self._head

    def add(self, sid: StreamId, fields: dict[bytes, bytes]) -> None:
        """Append an entry whose id is above ``last_id``."""
        self._ids.append(sid)
        self._fields.append(fields)
        self.last_id = sid

    def last_entry_id(self) -> StreamId | None:
        """The id of the newest entry still stored, if any."""
        return self._ids[-1] if len(self) else None

    def oldest(self, count: int) -> list[StreamId]:
        """The ids of the ``count`` oldest entries."""
        return self._ids[self._head : self._head + max(0, count)]

    def trim(self, maxlen: int) -> int:
        """Drop the oldest entries beyond ``maxlen``; return how many went."""
        excess = len(self) - max(0, maxlen)
        if excess <= 0:
            return 0
        self._head += excess
        if self._head > len(self._ids) // 2:
            del self._ids[: self._head]
            del self._fields[: self._head]
            self._head = 0
        return excess

    def count_after(self, sid: StreamId) -> int:
        """How many stored entries have an id above ``sid``."""
        return len(self._ids) - bisect_right(self._ids, sid, self._head)

    def find(self, sid: StreamId) -> dict[bytes, bytes] | None:
        """The fields of entry ``sid``, or None if it is not (or no longer) stored."""
        i = bisect_left(self._ids, sid, self._head)
        return self._fields[i] if i < len(self._ids) and self._ids[i] == sid else None

    def remove(self, sid: StreamId) -> bool:
        """Delete entry ``sid`` (XDEL); False if it is not stored."""
        i = bisect_left(self._ids, sid, self._head)
        if i >= len(self._ids) or self._ids[i] != sid:
            return False
        del self._ids[i]
        del self._fields[i]
        return True

    def first_entry_id(self) -> StreamId | None:
        """The id of the oldest entry still stored, if any."""
        return self._ids[self._head] if len(self) else None

    def between(
        self, low: StreamId, high: StreamId, count: int | None = None
    ) -> Iterator[tuple[StreamId, dict[bytes, bytes]]]:
        """Entries with ``low <= id <= high`` in id order, at most ``count`` of them."""
        i = bisect_left(self._ids, low, self._head)
        stop = bisect_right(self._ids, high, i)
        if count is not None:
            stop = min(stop, i + max(0, count))
        for j in range(i, stop):
            yield self._ids[j], self._fields[j]
