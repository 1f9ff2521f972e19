"""The StreamAdmin contract's operators' calls: snapshot, peek, move_group, count, delete.

Bind it like the others (see :mod:`contracts`): ``make_log``, ``make_locks``, ``make_kv``
and ``advance``.

Example:
    >>> issubclass(StreamAdminContract, object)
    True
"""

from __future__ import annotations

import pytest

from runnel.domain.resize import MARKER_FIELD
from runnel.errors import BackpressureError, Fenced, StreamResized
from runnel.ports import Append, DeadLetter, Fence, GroupProbe, ReadRequest, Routing
from tests.contracts import MakeKV, MakeLocks, MakeLog, key_space, read_slots
from tests.contracts.streamlog_contract import append_n, read


class StreamAdminContract:
    """What operators' tools rely on, on every adapter."""

    async def test_snapshot_of_a_missing_stream_is_empty(self, make_log: MakeLog) -> None:
        log = await make_log()
        k = key_space()
        (snap,) = await log.snapshot([GroupProbe(k("s"), "g", k("lock"))])
        assert (snap.length, snap.first_id, snap.last_id, snap.group) == (0, None, None, None)
        assert (snap.oldest_pending, snap.holder, snap.lease_left) == (None, None, None)

    async def test_snapshot_tells_ends_position_pending_and_lease(
        self, make_log: MakeLog, make_locks: MakeLocks
    ) -> None:
        log, locks = await make_log(), await make_locks()
        k = key_space()
        ids = await append_n(log, k("s"), 5)
        await log.ensure_group(k("s"), "g")
        await read(log, k("s"), "g", "p0", count=2)
        await read(log, k("s"), "g", "p0", count=10, start=b"0")  # delivered twice
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", ttl=30.0)
        assert lease is not None
        snap, other = await log.snapshot(
            [GroupProbe(k("s"), "g", k("lock")), GroupProbe(k("s"), "other", k("free"))]
        )
        assert (snap.length, snap.first_id, snap.last_id) == (5, ids[0], ids[-1])
        assert snap.group is not None
        assert (snap.group.last_delivered_id, snap.group.pending) == (ids[1], 2)
        assert snap.group.lag == 3
        assert snap.oldest_pending == ids[0]
        assert snap.oldest_deliveries == 2
        assert snap.holder == lease.token
        assert snap.lease_left is not None
        assert 0 < snap.lease_left <= 30.0
        assert (other.group, other.holder, other.oldest_pending) == (None, None, None)

    async def test_peek_reads_values_and_expiry(self, make_log: MakeLog, make_kv: MakeKV) -> None:
        log, kv = await make_log(), await make_kv()
        k = key_space()
        await kv.set(k("short"), b"a", ttl=20.0)
        await kv.set(k("forever"), b"b")
        await log.append([Append(k("stream"), {b"n": b"1"})])
        short, forever, missing, stream = await log.peek(
            [k("short"), k("forever"), k("missing"), k("stream")]
        )
        assert short.value == b"a"
        assert short.ttl is not None
        assert 0 < short.ttl <= 20.0
        assert (forever.value, forever.ttl) == (b"b", None)
        assert (missing.value, missing.ttl) == (None, None)
        assert stream.value is None

    async def test_move_group_forgets_pending_and_restarts_after_the_id(
        self, make_log: MakeLog
    ) -> None:
        log = await make_log()
        k = key_space()
        ids = await append_n(log, k("s"), 5)
        await log.ensure_group(k("s"), "g")
        await read(log, k("s"), "g", "p0", count=4)
        await log.move_group(k("s"), "g", ids[0])
        assert await log.pending(k("s"), "g") == []
        again = await read(log, k("s"), "g", "p0", count=10)
        assert [e.id for e in again] == ids[1:]

    async def test_move_group_to_the_end_and_on_a_missing_stream(self, make_log: MakeLog) -> None:
        log = await make_log()
        k = key_space()
        await append_n(log, k("s"), 3)
        await log.ensure_group(k("s"), "g")
        await log.move_group(k("s"), "g", b"$")
        assert await read(log, k("s"), "g", "p0") == []
        (new,) = await append_n(log, k("s"), 1, first=9)
        assert [e.id for e in await read(log, k("s"), "g", "p0")] == [new]
        await log.move_group(k("none"), "g", b"0-0")  # creates the stream and the group
        assert [g.name for g in await log.groups(k("none"))] == ["g"]

    async def test_move_group_fences_out_the_lease_holder(
        self, make_log: MakeLog, make_locks: MakeLocks
    ) -> None:
        log, locks = await make_log(), await make_locks()
        k = key_space()
        await append_n(log, k("s"), 2)
        await log.ensure_group(k("s"), "g")
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", ttl=30.0)
        assert lease is not None
        fence = Fence(lease.key, lease.token, k("fenced"))
        await log.move_group(k("s"), "g", b"0-0", lock_key=k("lock"))
        assert await locks.holder(k("lock")) is None
        (slot,) = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=fence)])
        assert isinstance(slot, Fenced)
        assert await locks.extend([lease], 30.0) == [False]

    async def test_count_and_delete_entries(self, make_log: MakeLog) -> None:
        log = await make_log()
        k = key_space()
        ids = await append_n(log, k("s"), 5)
        assert await log.count(k("s"), b"-", b"+") == 5
        assert await log.count(k("s"), b"(" + ids[0], ids[3]) == 3
        assert await log.count(k("missing"), b"-", b"+") == 0
        assert await log.delete_entries(k("s"), [ids[1], ids[3], b"1-1"]) == 2
        assert [e.id for e in await log.range(k("s"))] == [ids[0], ids[2], ids[4]]
        assert await log.delete_entries(k("missing"), [ids[0]]) == 0

    async def test_a_dead_letter_to_a_full_sink_is_refused_whole(self, make_log: MakeLog) -> None:
        log = await make_log()
        k = key_space()
        (first,) = await append_n(log, k("s"), 1)
        await log.ensure_group(k("s"), "g")
        await read(log, k("s"), "g", "p0")
        await append_n(log, k("sink"), 2)
        letter = DeadLetter(k("s"), "g", first, k("sink"), {b"n": b"1"}, sink_cap=2)
        with pytest.raises(BackpressureError, match="full"):
            await log.dead_letter(letter)
        assert await log.length(k("sink")) == 2
        assert [p.id for p in await log.pending(k("s"), "g")] == [first]  # not acknowledged
        roomy = DeadLetter(k("s"), "g", first, k("sink"), {b"n": b"1"}, sink_cap=3)
        await log.dead_letter(roomy)
        assert await log.length(k("sink")) == 3
        assert await log.pending(k("s"), "g") == []

    async def test_a_switch_marks_the_partition_and_refuses_stale_routing(
        self, make_log: MakeLog
    ) -> None:
        log = await make_log()
        k = key_space()
        routing = {k("s"): k("rsz")}
        (before,) = await log.append([Append(k("s"), {b"n": b"1"})], None, 0.0, Routing(4, routing))
        point = await log.switch(k("s"), k("rsz"), 8)
        assert point > before
        assert await log.switch(k("s"), k("rsz"), 8) == point  # repeated: nothing new
        (marker,) = await log.range(k("s"), b"(" + before)
        assert (marker.id, marker.fields) == (point, {MARKER_FIELD: b"8"})
        with pytest.raises(StreamResized) as refused:
            await log.append([Append(k("s"), {b"n": b"2"})], None, 0.0, Routing(4, routing))
        assert refused.value.count == 8
        assert refused.value.ids == [b""]
        assert await log.length(k("s")) == 2  # nothing written
        (after,) = await log.append([Append(k("s"), {b"n": b"3"})], None, 0.0, Routing(8, routing))
        assert after > point
        assert len(await log.append([Append(k("s"), {b"n": b"4"})])) == 1  # unchecked
