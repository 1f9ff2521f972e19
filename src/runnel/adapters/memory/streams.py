"""MemoryStreamLog: the StreamLog and StreamAdmin ports on a :class:`MemoryBroker`.

It mirrors what the Redis adapter's commands and scripts do: XADD ids, XREADGROUP (new
entries, or this consumer's history with delivery counts), XACK, XPENDING, XGROUP, the
fence check of every partition-mutating call, and the lossless / lossy length caps.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> from runnel.ports import Append
    >>> log = MemoryStreamLog(MemoryBroker(SimulatedClock()))
    >>> ids = asyncio.run(log.append([Append("s", {b"n": b"1"})]))
    >>> asyncio.run(log.length("s"))
    1
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from runnel.adapters.memory._stream_state import Group, Nack, Stream, parse_id
from runnel.adapters.memory.broker import MemoryBroker
from runnel.domain.ids import MAX_ID, MIN_ID, StreamId
from runnel.domain.model import Entry
from runnel.domain.resize import MARKER_FIELD
from runnel.errors import (
    BackendError,
    BackendProtocolError,
    BackpressureError,
    Fenced,
    GroupMissing,
    StreamResized,
)
from runnel.ports import (
    AckRequest,
    Append,
    Cap,
    Commit,
    DeadLetter,
    Fence,
    GroupInfo,
    GroupProbe,
    GroupSnapshot,
    KeyPeek,
    PendingEntry,
    ReadRequest,
    Routing,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
Slot = TypeVar("Slot", ReadRequest, AckRequest)


def _sink_full(key: str, held: int, cap: int) -> str:
    return (
        f"dead-letter stream {key!r} is full ({held} of {cap} letters kept until purged): "
        "the letter was not written"
    )


def _nogroup(key: str, group: str) -> GroupMissing:
    return GroupMissing(f"stream {key!r} has no consumer group {group!r}")


class MemoryStreamLog:
    """Partitioned logs with consumer groups, held in a :class:`MemoryBroker`.

    Example:
        >>> from runnel.adapters.memory.broker import MemoryBroker
        >>> from runnel.adapters.memory.clock import SimulatedClock
        >>> MemoryStreamLog(MemoryBroker(SimulatedClock())).broker.clock.now()
        0.0
    """

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.colocate: Callable[[str, str], bool] = lambda key, other: True
        """Which keys one commit can touch together (every pair, like one Redis server).
        Tests replace it to take the outbox path as on Redis Cluster."""

    # ------------------------------------------------------------------ helpers

    def _fenced(self, fence: Fence | None) -> Fenced | None:
        """A Fenced error (and a counted refusal) if ``fence`` no longer holds its lock."""
        if fence is None or self.broker.get_string(fence.lock_key) == fence.token:
            return None
        self.broker.incr(fence.counter_key)
        return Fenced(f"lease {fence.lock_key!r} is no longer held with token {fence.token!r}")

    def _group(self, key: str, group: str) -> tuple[Stream, Group]:
        stream = self.broker.stream(key)
        found = stream.groups.get(group) if stream is not None else None
        if stream is None or found is None:
            raise _nogroup(key, group)
        return stream, found

    @staticmethod
    def _unacked_by(stream: Stream, sid: StreamId) -> str | None:
        """The first group (by name) that has not acknowledged ``sid``, if any."""
        for name in sorted(stream.groups):
            group = stream.groups[name]
            if sid > group.last_delivered or sid in group.pel:
                return name
        return None

    # ------------------------------------------------------------------ appends

    async def append(
        self,
        entries: Sequence[Append],
        cap: Cap | None = None,
        window: float = 0.0,
        routing: Routing | None = None,
    ) -> list[bytes]:
        """Append every entry atomically, in order; return their ids (see the port).

        Raises:
            BackpressureError: a lossless ``cap`` would trim an unacknowledged entry.
            StreamResized: a partition routes with another count than ``routing``'s.
        """
        for item in entries:
            if not item.fields:
                raise BackendProtocolError("ERR wrong number of arguments for 'xadd' command")
        if routing is not None:
            self._check_routing(entries, routing)
        repeats = self._repeats(entries)
        fresh = [item for item, known in zip(entries, repeats, strict=True) if known is None]
        if cap is not None and cap.mode == "lossless":
            self._check_lossless(fresh, cap)
        ids: list[bytes] = []
        remembered: dict[str, bytes] = {}
        for item, known in zip(entries, repeats, strict=True):
            if known is not None:
                ids.append(known or remembered[item.idempotency_key or ""])
                continue
            sid = self._add(item.key, item.fields)
            ids.append(sid)
            if item.idempotency_key is not None:
                remembered[item.idempotency_key] = sid
                self.broker.set_string(item.idempotency_key, sid, ttl=max(0.001, window))
        if cap is not None:
            self._trim(fresh, {item.key: cap for item in fresh})
        self.broker.ring()
        return ids

    def _check_routing(self, entries: Sequence[Append], routing: Routing) -> None:
        """Refuse the batch if a partition routes with another count (as append.lua)."""
        for key in dict.fromkeys(item.key for item in entries):
            record = self.broker.hash(routing.records[key]) or {}
            count = record.get(b"count")
            if count is not None and int(count) != routing.count:
                refused = StreamResized(
                    f"stream partition {key} now routes with {count.decode()} partitions: "
                    "the append was routed with an older count and was not written",
                    key,
                    int(count),
                )
                refused.ids = [b""] * len(entries)
                raise refused

    async def switch(self, key: str, record: str, count: int) -> bytes:
        """Record ``key``'s switch point for a resize to ``count`` (as ``switch.lua``)."""
        grown = str(count).encode()
        routing = self.broker.hash(record, create=True)
        if routing is None:  # never: create=True makes it
            raise BackendProtocolError(f"no routing record at {record}")
        if routing.get(b"count") == grown and grown in routing:
            return routing[grown]
        point = self._add(key, {MARKER_FIELD: grown})
        self.broker.ring()
        routing[grown] = point
        routing[b"count"] = grown
        return point

    def _repeats(self, entries: Sequence[Append]) -> list[bytes | None]:
        """Per entry: the id its idempotency key remembers, b"" for a repeat of an earlier
        entry of the batch, or None for an entry to add."""
        seen: set[str] = set()
        out: list[bytes | None] = []
        for item in entries:
            key = item.idempotency_key
            if key is None:
                out.append(None)
            elif key in seen:
                out.append(b"")
            else:
                known = self.broker.get_string(key)
                if known is None:
                    seen.add(key)
                out.append(known)
        return out

    def _trim(self, entries: Sequence[Append], caps: Mapping[str, Cap]) -> None:
        """Trim every stream written to its cap, counting what a lossy cap dropped (in the
        stream's own counter when the cap names one per stream)."""
        for key in dict.fromkeys(item.key for item in entries):
            cap = caps.get(key)
            stream = self.broker.stream(key)
            if cap is None or stream is None:
                continue
            victims = stream.oldest(len(stream) - cap.maxlen)
            lost = sum(1 for sid in victims if self._unacked_by(stream, sid) is not None)
            stream.trim(cap.maxlen)
            if lost and cap.mode == "lossy":
                counter = cap.lost_keys.get(key, cap.lost_key) if cap.lost_keys else cap.lost_key
                self.broker.incr(counter, lost)
                logger.warning("lossy cap %d dropped %d unacknowledged entries", cap.maxlen, lost)

    async def commit(self, commit: Commit) -> list[bytes] | None:
        """Outputs, state changes and the acknowledgement in one step (see the port).

        Raises:
            Fenced: the lease is gone (counted; nothing was written).
            BackpressureError: an output's lossless cap has no room (nothing was written).
        """
        ack = commit.ack
        if ack.fence is None:
            raise ValueError("a commit must be fenced by the lease of its partition")
        refused = self._fenced(ack.fence)
        if refused is not None:
            raise refused
        _, group = self._group(ack.key, ack.group)
        if ack.ids and parse_id(ack.ids[0]) not in group.pel:
            return None  # applied already
        for item in commit.outputs:
            if not item.fields:
                raise BackendProtocolError("ERR wrong number of arguments for 'xadd' command")
        for key, cap in commit.caps.items():
            if cap.mode == "lossless":
                self._check_lossless([o for o in commit.outputs if o.key == key], cap)
        ids = [self._add(item.key, item.fields) for item in commit.outputs]
        self._trim(commit.outputs, commit.caps)
        state = commit.state
        if state is not None:
            table = self.broker.hash(state.key, create=True)
            assert table is not None
            table.update(state.set)
            for name in state.delete:
                table.pop(name, None)
            self.broker.drop_if_empty(state.key)
        self._ack_one(ack)
        self.broker.ring()
        return ids

    def _add(self, key: str, fields: Mapping[bytes, bytes]) -> bytes:
        stream = self.broker.stream(key, create=True)
        assert stream is not None
        sid = self.broker.next_id(stream)
        stream.add(sid, dict(fields))
        return sid.encode()

    def _check_lossless(self, entries: Sequence[Append], cap: Cap) -> None:
        """Refuse (before writing anything) if trimming would drop an unacked entry."""
        for key, added in Counter(item.key for item in entries).items():
            stream = self.broker.stream(key)
            if stream is None or not stream.groups:
                continue
            excess = len(stream) + added - cap.maxlen
            for sid in stream.oldest(excess):
                group = self._unacked_by(stream, sid)
                if group is not None:
                    raise BackpressureError(
                        f"lossless cap of {cap.maxlen} on stream {key!r}: trimming would drop "
                        f"entry {sid} that group {group!r} has not "
                        "acknowledged"
                    )
            if excess > len(stream):
                group = sorted(stream.groups)[0]
                raise BackpressureError(
                    f"lossless cap of {cap.maxlen} on stream {key!r}: the append alone exceeds "
                    f"it, trimming new entries group {group!r} has not read"
                )

    async def dead_letter(self, letter: DeadLetter) -> bytes:
        """Append to the sink and ack the source entry atomically; return the sink id.

        Raises:
            Fenced: the lease is gone (nothing was written or acknowledged).
        """
        refused = self._fenced(letter.fence)
        if refused is not None:
            raise refused
        if not letter.fields:
            raise BackendProtocolError("ERR wrong number of arguments for 'xadd' command")
        if letter.sink_cap is not None:
            sink = self.broker.stream(letter.sink_key)
            held = len(sink) if sink is not None else 0
            if held >= letter.sink_cap:
                raise BackpressureError(_sink_full(letter.sink_key, held, letter.sink_cap))
        sid = parse_id(letter.id)
        sink_id = self._add(letter.sink_key, letter.fields)
        stream = self.broker.stream(letter.key)
        group = stream.groups.get(letter.group) if stream is not None else None
        if group is not None:
            group.pel.pop(sid)
        self.broker.ring()
        return sink_id

    # ------------------------------------------------------------------ groups

    async def ensure_group(self, key: str, group: str, start: bytes = b"0") -> bool:
        """Create ``group`` on ``key`` (and the stream) if missing; True if created."""
        stream = self.broker.stream(key, create=True)
        assert stream is not None
        if group in stream.groups:
            return False
        last = stream.last_id if start == b"$" else parse_id(start)
        stream.groups[group] = Group(last_delivered=last)
        return True

    def _slots(self, requests: Sequence[Slot], serve: Callable[[Slot], T]) -> list[T | Exception]:
        """``serve`` each fenced request; a refusal or an error fills its own slot only."""
        results: list[T | Exception] = []
        for request in requests:
            try:
                refused = self._fenced(request.fence)
                results.append(refused if refused is not None else serve(request))
            except BackendError as exc:
                results.append(exc)
        return results

    def _read_one(self, request: ReadRequest) -> list[Entry]:
        stream, group = self._group(request.key, request.group)
        group.consumers.add(request.consumer)
        now = self.broker.clock.now()
        limit = request.count if request.count > 0 else None
        if request.start == b">":
            fresh = list(stream.between(group.last_delivered.next(), MAX_ID, limit))
            for sid, _ in fresh:
                group.pel.put(sid, Nack(request.consumer, now))
            if fresh:
                group.last_delivered = fresh[-1][0]
            return [Entry(sid.encode(), dict(fields)) for sid, fields in fresh]
        entries: list[Entry] = []
        for sid, nack in group.pel.since(parse_id(request.start).next()):
            if limit is not None and len(entries) >= limit:
                break
            if nack.consumer != request.consumer:
                continue
            fields = stream.find(sid)
            if fields is None:
                entries.append(Entry(sid.encode(), {}, nack.count))
                continue
            nack.count += 1
            nack.delivered_at = now
            entries.append(Entry(sid.encode(), dict(fields), nack.count))
        return entries

    def _ack_one(self, request: AckRequest) -> int:
        sids = [parse_id(raw) for raw in request.ids]
        stream = self.broker.stream(request.key)
        group = stream.groups.get(request.group) if stream is not None else None
        if group is None:
            return 0
        return sum(1 for sid in sids if group.pel.pop(sid) is not None)

    async def exchange(
        self, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
    ) -> tuple[list[int | Exception], list[list[Entry] | Exception]]:
        """Acknowledge, then read, in one step (see the port)."""
        acked = self._slots(acks, self._ack_one)
        return acked, self._slots(reads, self._read_one)

    async def groups(self, key: str) -> list[GroupInfo]:
        """The consumer groups of ``key`` by name (empty if the stream is missing)."""
        stream = self.broker.stream(key)
        if stream is None:
            return []
        return [
            GroupInfo(
                name,
                len(g.consumers),
                len(g.pel),
                g.last_delivered.encode(),
                lag=stream.count_after(g.last_delivered),
            )
            for name, g in sorted(stream.groups.items())
        ]

    async def pending(
        self, key: str, group: str, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        """Up to ``count`` pending entries of ``group`` in id order.

        Raises:
            GroupMissing: the stream or group does not exist.
        """
        _, found = self._group(key, group)
        now = self.broker.clock.now()
        listed: list[PendingEntry] = []
        for sid, nack in found.pel.since(MIN_ID):
            if len(listed) >= count:
                break
            if consumer is None or nack.consumer == consumer:
                idle = max(0.0, now - nack.delivered_at)
                listed.append(PendingEntry(sid.encode(), nack.consumer, idle, nack.count))
        return listed

    async def destroy_group(self, key: str, group: str) -> bool:
        """Delete ``group`` and its pending entries; True if it existed (False if no stream)."""
        stream = self.broker.stream(key)
        return stream is not None and stream.groups.pop(group, None) is not None

    # ------------------------------------------------------------------ plain reads

    async def wait(self, after: Mapping[str, bytes], timeout: float) -> set[str]:
        """Block up to ``timeout`` (broker clock) until a key has an entry above ``after``.

        Changes no state; returns the keys that have such entries (empty on timeout).
        """
        marks: dict[str, StreamId] = {}
        for key, raw in after.items():
            stream = self.broker.stream(key)
            if raw == b"$":
                marks[key] = stream.last_id if stream is not None else MIN_ID
            else:
                marks[key] = parse_id(raw)
        deadline = self.broker.clock.now() + timeout
        while True:
            woke = {key for key, mark in marks.items() if self._has_after(key, mark)}
            remaining = deadline - self.broker.clock.now()
            if woke or remaining <= 0:
                return woke
            await self.broker.wait_for_append(remaining)

    async def wait_and_read(
        self, after: Mapping[str, bytes], timeout: float, reads: Sequence[ReadRequest]
    ) -> tuple[set[str], list[list[Entry] | Exception]]:
        """:meth:`wait`, then ``reads`` (fenced, as :meth:`exchange` reads them) at once.

        Nothing else runs in between: the broker lives in this event loop, so the reads
        happen in the same step as the wake-up, as Redis runs them right after its
        ``XREAD``.
        """
        woke = await self.wait(after, timeout)
        return woke, self._slots(reads, self._read_one)

    def _has_after(self, key: str, mark: StreamId) -> bool:
        stream = self.broker.stream(key)
        newest = stream.last_entry_id() if stream is not None else None
        return newest is not None and newest > mark

    async def range(
        self, key: str, start: bytes = b"-", end: bytes = b"+", count: int | None = None
    ) -> list[Entry]:
        """Entries of ``key`` with ids in ``[start, end]`` (``(id`` excludes a bound)."""
        low = parse_id(start[1:]).next() if start.startswith(b"(") else parse_id(start)
        if end.startswith(b"("):
            below = parse_id(end[1:])
            if below == MIN_ID:
                return []  # nothing lies below 0-0
            high = below.previous()
        else:
            high = parse_id(end, end=True)
        stream = self.broker.stream(key)
        if stream is None or high < low:
            return []
        return [Entry(sid.encode(), dict(f)) for sid, f in stream.between(low, high, count)]

    def colocated(self, key: str, other: str) -> bool:
        """Whether one commit can touch both keys (see :attr:`colocate`)."""
        return self.colocate(key, other)

    async def read_outbox(self, outbox: str, fence: Fence, count: int) -> list[Entry]:
        """The oldest ``count`` entries of ``outbox``, if ``fence`` still holds.

        Raises:
            Fenced: the lease is gone (counted; nothing is returned).
        """
        refused = self._fenced(fence)
        if refused is not None:
            raise refused
        return await self.range(outbox, count=count)

    async def drop_relayed(self, outbox: str, fence: Fence, ids: Sequence[bytes]) -> int:
        """Delete ``ids`` from ``outbox`` if ``fence`` still holds; how many remain.

        Raises:
            Fenced: the lease is gone (counted; nothing was deleted).
        """
        refused = self._fenced(fence)
        if refused is not None:
            raise refused
        await self.delete_entries(outbox, ids)
        return await self.length(outbox)

    async def length(self, key: str) -> int:
        """Number of entries in ``key`` (0 if missing)."""
        stream = self.broker.stream(key)
        return len(stream) if stream is not None else 0

    # ------------------------------------------------------------------ operators

    async def snapshot(self, probes: Sequence[GroupProbe]) -> list[GroupSnapshot]:
        """Each probed partition's length, ends, group, oldest pending entry and lease."""
        return [self._snapshot(probe) for probe in probes]

    def _snapshot(self, probe: GroupProbe) -> GroupSnapshot:
        stream = self.broker.stream(probe.key)
        holder = self.broker.get_string(probe.lock_key)
        left = self.broker.ttl(probe.lock_key) if holder is not None else None
        if stream is None:
            return GroupSnapshot(0, None, None, None, None, holder, left)
        first, last = stream.first_entry_id(), stream.last_entry_id()
        group = stream.groups.get(probe.group)
        info = oldest = None
        deliveries, idle = 0, None
        if group is not None:
            info = GroupInfo(
                probe.group,
                len(group.consumers),
                len(group.pel),
                group.last_delivered.encode(),
                lag=stream.count_after(group.last_delivered),
            )
            for sid, nack in group.pel.since(MIN_ID):
                oldest, deliveries = sid.encode(), nack.count
                idle = max(0.0, self.broker.clock.now() - nack.delivered_at)
                break
        return GroupSnapshot(
            len(stream),
            first.encode() if first is not None else None,
            last.encode() if last is not None else None,
            info,
            oldest,
            holder,
            left,
            deliveries,
            idle,
        )

    async def peek(self, keys: Sequence[str]) -> list[KeyPeek]:
        """The value and time to live of each key."""
        peeks: list[KeyPeek] = []
        for key in keys:
            try:
                value = self.broker.get_string(key)
            except BackendProtocolError:  # another type: no plain value
                value = None
            ttl = self.broker.ttl(key)
            peeks.append(KeyPeek(value, None if ttl is None or ttl == float("inf") else ttl))
        return peeks

    async def move_group(
        self, key: str, group: str, after: bytes, lock_key: str | None = None
    ) -> None:
        """Restart ``group`` after ``after`` with no pending entries; drop the lease."""
        stream = self.broker.stream(key, create=True)
        assert stream is not None
        mark = stream.last_id if after == b"$" else parse_id(after)
        if lock_key is not None:
            self.broker.delete([lock_key])
        stream.groups[group] = Group(last_delivered=mark)

    async def count(self, key: str, start: bytes, end: bytes) -> int:
        """How many entries of ``key`` have ids in ``[start, end]``."""
        return len(await self.range(key, start, end))

    async def delete_entries(self, key: str, ids: Sequence[bytes]) -> int:
        """Delete the entries ``ids`` of ``key``; how many were there."""
        sids = [parse_id(raw) for raw in ids]
        stream = self.broker.stream(key)
        if stream is None:
            return 0
        return sum(1 for sid in sids if stream.remove(sid))
