"""The StreamLog contract: Redis Streams semantics every adapter honours.

Bind it with a ``Test*`` subclass providing ``make_log``, ``make_locks``, ``make_kv`` and
``advance`` (see :mod:`contracts`).

Example:
    >>> issubclass(StreamLogContract, object)
    True
"""

from __future__ import annotations

import asyncio

import pytest

from runnel.domain.ids import StreamId
from runnel.domain.model import Entry
from runnel.errors import BackendProtocolError, BackpressureError, Fenced, GroupMissing
from runnel.ports import (
    AckRequest,
    Append,
    Cap,
    DeadLetter,
    Fence,
    GroupInfo,
    ReadRequest,
)
from tests.contracts import (
    Advance,
    LogUnderTest,
    MakeKV,
    MakeLocks,
    MakeLog,
    ack_slots,
    key_space,
    read_slots,
)


def fields(n: int) -> dict[bytes, bytes]:
    """The fields of the ``n``-th test entry."""
    return {b"n": str(n).encode()}


async def append_n(log: LogUnderTest, key: str, count: int, first: int = 1) -> list[bytes]:
    """Append ``count`` numbered entries to ``key`` one call at a time; return their ids."""
    ids: list[bytes] = []
    for n in range(first, first + count):
        ids += await log.append([Append(key, fields(n))])
    return ids


async def read(
    log: LogUnderTest,
    key: str,
    group: str,
    consumer: str = "c1",
    count: int = 10,
    start: bytes = b">",
    fence: Fence | None = None,
) -> list[Entry]:
    """One group read that must succeed."""
    [slot] = await read_slots(log, [ReadRequest(key, group, consumer, count, start, fence)])
    assert not isinstance(slot, Exception), slot
    return slot


async def ack(log: LogUnderTest, key: str, group: str, ids: list[bytes]) -> int:
    """One unfenced acknowledgement that must succeed."""
    [slot] = await ack_slots(log, [AckRequest(key, group, ids)])
    assert not isinstance(slot, Exception), slot
    return slot


def numbers(entries: list[Entry]) -> list[bytes | None]:
    """The ``n`` field of each entry (None where the entry is gone)."""
    return [e.fields.get(b"n") for e in entries]


class StreamLogContract:
    """Behaviour shared by every StreamLog adapter."""

    # ----------------------------------------------------------------- append and range

    async def test_append_returns_strictly_increasing_ids_in_order(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        ids = await log.append([Append(k("s"), fields(n)) for n in (1, 2, 3)])
        ids += await append_n(log, k("s"), 2, first=4)
        assert len(ids) == 5
        assert [StreamId.parse(i) for i in ids] == sorted({StreamId.parse(i) for i in ids})
        entries = await log.range(k("s"))
        assert [e.id for e in entries] == ids
        assert numbers(entries) == [b"1", b"2", b"3", b"4", b"5"]
        assert await log.length(k("s")) == 5

    async def test_append_to_several_keys_in_one_call(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        ids = await log.append(
            [Append(k("a"), fields(1)), Append(k("b"), fields(2)), Append(k("a"), fields(3))]
        )
        assert [e.id for e in await log.range(k("a"))] == [ids[0], ids[2]]
        assert [e.id for e in await log.range(k("b"))] == [ids[1]]

    async def test_range_bounds_exclusive_start_and_count(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        ids = await append_n(log, k("s"), 4)
        assert numbers(await log.range(k("s"), ids[1], ids[2])) == [b"2", b"3"]
        assert numbers(await log.range(k("s"), b"(" + ids[1])) == [b"3", b"4"]
        assert numbers(await log.range(k("s"), count=2)) == [b"1", b"2"]
        assert await log.range(k("missing")) == []
        assert await log.length(k("missing")) == 0

    # ----------------------------------------------------------------- groups and reads

    async def test_ensure_group_creates_the_stream_and_is_idempotent(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        assert await log.ensure_group(k("s"), "g") is True
        assert await log.ensure_group(k("s"), "g") is False
        assert await log.length(k("s")) == 0
        assert await log.groups(k("s")) == [GroupInfo("g", 0, 0, b"0-0", lag=0)]
        assert await log.groups(k("missing")) == []

    async def test_an_entry_goes_to_one_consumer_per_group(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        [id1] = await append_n(log, k("s"), 1)
        assert await read(log, k("s"), "g", "c1") == [Entry(id1, fields(1), 1)]
        assert await read(log, k("s"), "g", "c2") == []
        assert await read(log, k("s"), "g", "c1") == []

    async def test_every_group_sees_every_entry(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g1")
        await log.ensure_group(k("s"), "g2")
        await append_n(log, k("s"), 3)
        assert numbers(await read(log, k("s"), "g1")) == [b"1", b"2", b"3"]
        assert numbers(await read(log, k("s"), "g2")) == [b"1", b"2", b"3"]
        infos = {g.name: g for g in await log.groups(k("s"))}
        assert infos["g1"].pending == infos["g2"].pending == 3

    async def test_groups_tell_what_is_undelivered_and_what_is_pending(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        await log.ensure_group(k("s"), "other")
        await append_n(log, k("s"), 5)
        delivered = await read(log, k("s"), "g", count=3)
        await ack(log, k("s"), "g", [delivered[0].id])
        infos = {g.name: g for g in await log.groups(k("s"))}
        assert (infos["g"].lag, infos["g"].pending) == (2, 2)
        assert (infos["other"].lag, infos["other"].pending) == (5, 0)

    async def test_read_respects_count_and_keeps_order(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 5)
        first = await read(log, k("s"), "g", count=2)
        rest = await read(log, k("s"), "g", count=10)
        assert [e.id for e in first + rest] == ids
        [info] = await log.groups(k("s"))
        assert info.last_delivered_id == ids[-1]
        assert info.consumers == 1

    async def test_group_created_at_end_sees_only_new_entries(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await append_n(log, k("s"), 2)
        assert await log.ensure_group(k("s"), "g", start=b"$") is True
        assert await read(log, k("s"), "g") == []
        await append_n(log, k("s"), 1, first=3)
        assert numbers(await read(log, k("s"), "g")) == [b"3"]

    async def test_one_read_call_serves_several_partitions(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("a"), "g")
        await log.ensure_group(k("b"), "g")
        await append_n(log, k("a"), 2)
        await append_n(log, k("b"), 1, first=3)
        slots = await read_slots(
            log,
            [
                ReadRequest(k("a"), "g", "c", 10),
                ReadRequest(k("nogroup"), "g", "c", 10),
                ReadRequest(k("b"), "g", "c", 10),
            ],
        )
        a, missing, b = slots
        assert not isinstance(a, Exception)
        assert not isinstance(b, Exception)
        assert numbers(a) == [b"1", b"2"]
        assert numbers(b) == [b"3"]
        assert isinstance(missing, GroupMissing)

    async def test_read_of_a_missing_group_on_an_existing_stream_is_nogroup(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        [slot] = await read_slots(log, [ReadRequest(k("s"), "other", "c", 10)])
        assert isinstance(slot, GroupMissing)

    async def test_history_rereads_own_pending_entries_with_delivery_counts(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 2)
        assert [e.delivery_count for e in await read(log, k("s"), "g", "c1")] == [1, 1]
        again = await read(log, k("s"), "g", "c1", start=b"0")
        assert again == [Entry(ids[0], fields(1), 2), Entry(ids[1], fields(2), 2)]
        after_first = await read(log, k("s"), "g", "c1", start=ids[0])
        assert after_first == [Entry(ids[1], fields(2), 3)]
        assert await read(log, k("s"), "g", "c2", start=b"0") == []
        limited = await read(log, k("s"), "g", "c1", start=b"0", count=1)
        assert [e.id for e in limited] == [ids[0]]
        counts = [p.delivery_count for p in await log.pending(k("s"), "g")]
        assert counts == [3, 3]

    async def test_ack_removes_entries_from_the_pending_list(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 3)
        await read(log, k("s"), "g")
        assert await ack(log, k("s"), "g", [ids[0], ids[2]]) == 2
        assert await ack(log, k("s"), "g", [ids[0]]) == 0
        assert [e.id for e in await read(log, k("s"), "g", start=b"0")] == [ids[1]]
        assert [p.id for p in await log.pending(k("s"), "g")] == [ids[1]]
        [info] = await log.groups(k("s"))
        assert info.pending == 1
        assert await log.length(k("s")) == 3

    async def test_ack_of_a_missing_group_counts_nothing(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        [id1] = await append_n(log, k("s"), 1)
        assert await ack(log, k("s"), "nogroup", [id1]) == 0

    async def test_pending_lists_in_id_order_with_consumer_filter(
        self, make_log: MakeLog, advance: Advance
    ) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 3)
        await read(log, k("s"), "g", "c1", count=2)
        await read(log, k("s"), "g", "c2", count=1)
        await advance(0.2)
        every = await log.pending(k("s"), "g")
        assert [(p.id, p.consumer, p.delivery_count) for p in every] == [
            (ids[0], "c1", 1),
            (ids[1], "c1", 1),
            (ids[2], "c2", 1),
        ]
        assert all(0.15 <= p.idle < 30 for p in every)
        assert [p.id for p in await log.pending(k("s"), "g", count=1)] == [ids[0]]
        assert [p.id for p in await log.pending(k("s"), "g", consumer="c2")] == [ids[2]]
        with pytest.raises(GroupMissing):
            await log.pending(k("s"), "nogroup")

    # ----------------------------------------------------------------- fencing

    async def test_stale_fence_is_refused_and_counted(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, locks, kv, k = await make_log(), await make_locks(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 2)
        old = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
        assert old is not None
        stale = Fence(k("lock"), old.token, k("fenced"))
        assert len(await read(log, k("s"), "g", "p0", count=1, fence=stale)) == 1

        assert await locks.release([old]) == [True]
        new = await locks.acquire(k("lock"), k("epoch"), "w2", 30.0)
        assert new is not None

        [read_slot] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=stale)])
        [ack_slot] = await ack_slots(log, [AckRequest(k("s"), "g", [ids[0]], fence=stale)])
        with pytest.raises(Fenced):
            await log.dead_letter(
                DeadLetter(k("s"), "g", ids[0], k("dlq"), {b"x": b"1"}, fence=stale)
            )
        assert isinstance(read_slot, Fenced)
        assert isinstance(ack_slot, Fenced)
        assert await kv.get(k("fenced")) == b"3"
        assert [p.id for p in await log.pending(k("s"), "g")] == [ids[0]]
        assert await log.length(k("dlq")) == 0
        [info] = await log.groups(k("s"))
        assert info.last_delivered_id == ids[0]

        current = Fence(k("lock"), new.token, k("fenced"))
        history = await read(log, k("s"), "g", "p0", start=b"0", fence=current)
        assert [e.id for e in history] == [ids[0]]
        [acked] = await ack_slots(log, [AckRequest(k("s"), "g", [ids[0]], fence=current)])
        assert acked == 1
        assert await kv.get(k("fenced")) == b"3"

    async def test_fence_on_a_missing_lock_is_refused(
        self, make_log: MakeLog, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g")
        fence = Fence(k("lock"), b"w1:1", k("fenced"))
        [slot] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=fence)])
        assert isinstance(slot, Fenced)
        assert await kv.get(k("fenced")) == b"1"

    # ----------------------------------------------------------------- dead letters

    async def test_dead_letter_appends_to_the_sink_and_acks_atomically(
        self, make_log: MakeLog, make_locks: MakeLocks
    ) -> None:
        log, locks, k = await make_log(), await make_locks(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 2)
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
        assert lease is not None
        fence = Fence(k("lock"), lease.token, k("fenced"))
        await read(log, k("s"), "g", "p0", fence=fence)
        letter = {b"data": b"raw", b"error": b"boom"}
        sink_id = await log.dead_letter(
            DeadLetter(k("s"), "g", ids[0], k("dlq"), letter, fence=fence)
        )
        assert await log.range(k("dlq")) == [Entry(sink_id, letter)]
        assert [p.id for p in await log.pending(k("s"), "g")] == [ids[1]]
        unfenced = await log.dead_letter(DeadLetter(k("s"), "g", ids[1], k("dlq"), letter))
        assert [e.id for e in await log.range(k("dlq"))] == [sink_id, unfenced]
        assert await log.pending(k("s"), "g") == []

    async def test_a_dead_letter_that_cannot_be_written_leaves_the_entry_pending(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        # The sink key holds another type: the write fails, and the source entry must
        # stay pending (acknowledging it without its dead letter would lose it).
        log, locks, kv, k = await make_log(), await make_locks(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g")
        [entry] = await append_n(log, k("s"), 1)
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
        assert lease is not None
        fence = Fence(k("lock"), lease.token, k("fenced"))
        await read(log, k("s"), "g", "p0", fence=fence)
        await kv.set(k("dlq"), b"not a stream")
        with pytest.raises(BackendProtocolError, match=r"WRONGTYPE|not a stream"):
            await log.dead_letter(DeadLetter(k("s"), "g", entry, k("dlq"), {b"x": b"1"}, fence))
        assert [p.id for p in await log.pending(k("s"), "g")] == [entry]
        assert await kv.get(k("dlq")) == b"not a stream"
        assert await kv.get(k("fenced")) is None  # a failure, not a refusal

    async def test_an_entry_with_twenty_thousand_fields_is_dead_lettered_whole(
        self, make_log: MakeLog, make_locks: MakeLocks
    ) -> None:
        # More fields than a Lua script can pass on in one call (unpack stops near 8,000).
        log, locks, k = await make_log(), await make_locks(), key_space()
        await log.ensure_group(k("s"), "g")
        [entry] = await append_n(log, k("s"), 1)
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
        assert lease is not None
        fence = Fence(k("lock"), lease.token, k("fenced"))
        await read(log, k("s"), "g", "p0", fence=fence)
        letter = {b"f%05d" % i: b"v%d" % i for i in range(20_000)}
        sink_id = await log.dead_letter(DeadLetter(k("s"), "g", entry, k("dlq"), letter, fence))
        assert await log.range(k("dlq")) == [Entry(sink_id, letter)]
        assert await log.pending(k("s"), "g") == []

    # ----------------------------------------------------------------- caps

    async def test_lossless_cap_refuses_and_writes_nothing(
        self, make_log: MakeLog, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        cap = Cap(2, "lossless", k("lost"))
        await log.ensure_group(k("s"), "auditors")
        ids = await log.append([Append(k("s"), fields(1)), Append(k("s"), fields(2))], cap)
        with pytest.raises(BackpressureError) as refused:
            await log.append([Append(k("other"), fields(0)), Append(k("s"), fields(3))], cap)
        message = str(refused.value)
        assert k("s") in message
        assert ids[0].decode() in message
        assert "auditors" in message
        assert [e.id for e in await log.range(k("s"))] == ids
        assert await log.length(k("other")) == 0
        assert await kv.get(k("lost")) is None

    async def test_lossless_cap_protects_delivered_but_pending_entries(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        cap = Cap(2, "lossless", k("lost"))
        await log.ensure_group(k("s"), "g")
        await log.append([Append(k("s"), fields(1)), Append(k("s"), fields(2))], cap)
        await read(log, k("s"), "g")
        with pytest.raises(BackpressureError):
            await log.append([Append(k("s"), fields(3))], cap)
        assert await log.length(k("s")) == 2

    async def test_lossless_cap_trims_entries_every_group_acked(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        cap = Cap(2, "lossless", k("lost"))
        await log.ensure_group(k("s"), "g1")
        await log.ensure_group(k("s"), "g2")
        ids = await log.append([Append(k("s"), fields(1)), Append(k("s"), fields(2))], cap)
        await read(log, k("s"), "g1", count=1)
        await ack(log, k("s"), "g1", [ids[0]])
        with pytest.raises(BackpressureError, match="g2"):
            await log.append([Append(k("s"), fields(3))], cap)
        await read(log, k("s"), "g2", count=1)
        await ack(log, k("s"), "g2", [ids[0]])
        [id3] = await log.append([Append(k("s"), fields(3))], cap)
        assert [e.id for e in await log.range(k("s"))] == [ids[1], id3]

    async def test_lossless_cap_without_groups_trims_freely(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        cap = Cap(2, "lossless", k("lost"))
        for n in range(1, 6):
            await log.append([Append(k("s"), fields(n))], cap)
        assert numbers(await log.range(k("s"))) == [b"4", b"5"]

    async def test_lossy_cap_trims_exactly_and_counts_unacknowledged(
        self, make_log: MakeLog, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g1")
        await log.ensure_group(k("s"), "g2")
        ids = await append_n(log, k("s"), 3)
        await read(log, k("s"), "g1", count=2)
        await ack(log, k("s"), "g1", [ids[0]])
        await read(log, k("s"), "g2", count=3)
        await ack(log, k("s"), "g2", ids)
        # g1: 1 acked, 2 pending, 3 never delivered; g2 acked everything.
        [id4] = await log.append([Append(k("s"), fields(4))], Cap(1, "lossy", k("lost")))
        assert [e.id for e in await log.range(k("s"))] == [id4]
        assert await kv.get(k("lost")) == b"2"

    async def test_lossy_cap_counts_each_entry_once_across_groups(
        self, make_log: MakeLog, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g1")
        await log.ensure_group(k("s"), "g2")
        await append_n(log, k("s"), 3)
        await log.append([Append(k("s"), fields(4))], Cap(2, "lossy", k("lost")))
        assert numbers(await log.range(k("s"))) == [b"3", b"4"]
        assert await kv.get(k("lost")) == b"2"

    async def test_lossy_cap_does_not_count_acked_entries_between_pending_ones(
        self, make_log: MakeLog, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 3)
        await read(log, k("s"), "g")
        await ack(log, k("s"), "g", [ids[1]])
        await log.append([Append(k("s"), fields(4))], Cap(1, "lossy", k("lost")))
        assert await kv.get(k("lost")) == b"2"

    async def test_entries_trimmed_after_delivery_read_back_empty(
        self, make_log: MakeLog, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 3)
        await read(log, k("s"), "g", count=2)
        await log.append([Append(k("s"), fields(4))], Cap(2, "lossy", k("lost")))
        assert await kv.get(k("lost")) == b"2"
        history = await read(log, k("s"), "g", start=b"0")
        assert [e.id for e in history] == ids[:2]
        assert [dict(e.fields) for e in history] == [{}, {}]
        assert numbers(await read(log, k("s"), "g")) == [b"3", b"4"]

    # ----------------------------------------------------------------- wait

    async def test_wait_returns_keys_that_already_have_newer_entries(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        [a1] = await append_n(log, k("a"), 1)
        [b1] = await append_n(log, k("b"), 1)
        await append_n(log, k("b"), 1, first=2)
        woke = await log.wait({k("a"): a1, k("b"): b1, k("c"): b"0"}, timeout=1.0)
        assert woke == {k("b")}
        assert await log.wait({k("a"): b"0-0"}, timeout=1.0) == {k("a")}

    async def test_wait_wakes_when_data_arrives(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        [last] = await append_n(log, k("s"), 1)
        waiter = asyncio.ensure_future(log.wait({k("s"): last, k("t"): b"0"}, timeout=1.0))
        await asyncio.sleep(0)
        await append_n(log, k("s"), 1, first=2)
        assert await waiter == {k("s")}
        assert await log.length(k("s")) == 2

    async def test_wait_times_out_with_nothing_new(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        [last] = await append_n(log, k("s"), 1)
        assert await log.wait({k("s"): last, k("missing"): b"0"}, timeout=0.2) == set()

    async def test_wait_changes_no_group_state(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        await append_n(log, k("s"), 1)
        assert await log.wait({k("s"): b"0"}, timeout=0.2) == {k("s")}
        assert numbers(await read(log, k("s"), "g")) == [b"1"]

    async def test_wait_and_read_reads_as_it_wakes(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        await log.ensure_group(k("t"), "g")
        [last] = await append_n(log, k("s"), 1)
        assert numbers(await read(log, k("s"), "g", "p0")) == [b"1"]
        reads = [ReadRequest(k("s"), "g", "p0", 10), ReadRequest(k("t"), "g", "p1", 10)]
        waiter = asyncio.ensure_future(log.wait_and_read({k("s"): last, k("t"): b"0"}, 5.0, reads))
        await asyncio.sleep(0)
        await log.append([Append(k("s"), fields(2)), Append(k("s"), fields(3))])
        woken, results = await waiter
        assert woken == {k("s")}
        if results is None:
            return  # this backend reads in rounds only: nothing was read
        first, second = results
        assert not isinstance(first, Exception)
        assert not isinstance(second, Exception)
        assert [numbers(first), second] == [[b"2", b"3"], []]
        assert [p.id for p in await log.pending(k("s"), "g")] == [last, first[0].id, first[1].id]

    async def test_wait_and_read_that_times_out_still_reads(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        [first] = await append_n(log, k("s"), 1)
        reads = [ReadRequest(k("s"), "g", "p0", 10)]
        woken, results = await log.wait_and_read({k("s"): first}, 0.2, reads)
        assert woken == set()
        if results is not None:
            [slot] = results
            assert not isinstance(slot, Exception)
            assert numbers(slot) == [b"1"]  # never delivered: the read finds it anyway
        woken, results = await log.wait_and_read({k("s"): first}, 0.2, reads)
        assert woken == set()
        assert results is None or results == [[]]

    async def test_wait_and_read_is_fenced_when_it_reads(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, locks, kv, k = await make_log(), await make_locks(), await make_kv(), key_space()
        await log.ensure_group(k("s"), "g")
        old = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
        assert old is not None
        stale = Fence(k("lock"), old.token, k("fenced"))
        reads = [ReadRequest(k("s"), "g", "p0", 10, fence=stale)]
        waiter = asyncio.ensure_future(log.wait_and_read({k("s"): b"0-0"}, 5.0, reads))
        await asyncio.sleep(0)
        # The lease changes hands while the wait blocks: the read that follows is refused.
        assert await locks.release([old]) == [True]
        assert await locks.acquire(k("lock"), k("epoch"), "w2", 30.0) is not None
        await append_n(log, k("s"), 1)
        woken, results = await waiter
        assert woken == {k("s")}
        if results is None:
            assert await log.pending(k("s"), "g") == []
            return
        [slot] = results
        assert isinstance(slot, Fenced)
        assert await kv.get(k("fenced")) == b"1"
        assert await log.pending(k("s"), "g") == []

    # ----------------------------------------------------------------- administration

    async def test_a_group_created_again_at_an_id_delivers_what_follows_it(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        ids = await append_n(log, k("s"), 3)
        await read(log, k("s"), "g", "c1")
        assert await log.destroy_group(k("s"), "g") is True
        assert await log.ensure_group(k("s"), "g", ids[0]) is True
        assert [e.id for e in await read(log, k("s"), "g", "c2")] == ids[1:]
        owners = [(p.consumer, p.delivery_count) for p in await log.pending(k("s"), "g")]
        assert owners == [("c2", 1), ("c2", 1)]

    async def test_destroy_group_forgets_it(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        await log.ensure_group(k("s"), "g")
        await append_n(log, k("s"), 1)
        await read(log, k("s"), "g")
        assert await log.destroy_group(k("s"), "g") is True
        assert await log.destroy_group(k("s"), "g") is False
        assert await log.destroy_group(k("missing"), "g") is False
        assert await log.groups(k("s")) == []
        [slot] = await read_slots(log, [ReadRequest(k("s"), "g", "c1", 10)])
        assert isinstance(slot, GroupMissing)
        assert await log.ensure_group(k("s"), "g") is True
        assert await log.pending(k("s"), "g") == []
