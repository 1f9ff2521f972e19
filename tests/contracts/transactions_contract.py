"""The contract of idempotent appends and effectively-once commits (``StreamLog.append``
with idempotency keys, ``StreamLog.commit``).

Bind it with a ``Test*`` subclass providing ``make_log``, ``make_locks``, ``make_kv`` and
``advance`` (see :mod:`contracts`).

Example:
    >>> issubclass(TransactionsContract, object)
    True
"""

from __future__ import annotations

import pytest

from runnel.domain.model import Entry
from runnel.errors import BackpressureError, Fenced
from runnel.ports import AckRequest, Append, Cap, Commit, Fence, ReadRequest, StateChange
from tests.contracts import Advance, LogUnderTest, MakeKV, MakeLocks, MakeLog, key_space, read_slots


def fields(n: int) -> dict[bytes, bytes]:
    """The fields of the ``n``-th test entry."""
    return {b"n": str(n).encode()}


async def owned_input(
    log: LogUnderTest, locks_maker: MakeLocks, k: object, count: int = 2
) -> tuple[list[bytes], Fence]:
    """``count`` entries of ``k("in")`` read by group ``g`` under a fresh lease."""
    assert callable(k)
    locks = await locks_maker()
    await log.ensure_group(k("in"), "g")
    ids = await log.append([Append(k("in"), fields(n)) for n in range(count)])
    lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
    assert lease is not None
    fence = Fence(k("lock"), lease.token, k("fenced"))
    [slot] = await read_slots(log, [ReadRequest(k("in"), "g", "p0", count, fence=fence)])
    assert not isinstance(slot, Exception), slot
    return ids, fence


class TransactionsContract:
    """Idempotent appends and atomic, fenced commits, on every StreamLog adapter."""

    # ----------------------------------------------------------------- idempotent appends

    async def test_a_repeated_idempotency_key_appends_nothing_and_returns_the_first_id(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        first = await log.append([Append(k("s"), fields(1), k("idem-a"))], window=60.0)
        again = await log.append([Append(k("s"), fields(2), k("idem-a"))], window=60.0)
        other = await log.append([Append(k("s"), fields(3), k("idem-b"))], window=60.0)
        assert again == first
        assert other != first
        assert [e.fields for e in await log.range(k("s"))] == [fields(1), fields(3)]

    async def test_a_key_repeated_within_one_batch_is_appended_once(
        self, make_log: MakeLog
    ) -> None:
        log, k = await make_log(), key_space()
        ids = await log.append(
            [
                Append(k("s"), fields(1), k("x")),
                Append(k("s"), fields(2)),
                Append(k("s"), fields(3), k("x")),
            ],
            window=60.0,
        )
        assert ids[0] == ids[2] != ids[1]
        assert await log.length(k("s")) == 2

    async def test_an_idempotency_key_is_forgotten_after_its_window(
        self, make_log: MakeLog, advance: Advance
    ) -> None:
        log, k = await make_log(), key_space()
        first = await log.append([Append(k("s"), fields(1), k("idem"))], window=0.2)
        await advance(0.5)
        second = await log.append([Append(k("s"), fields(1), k("idem"))], window=0.2)
        assert second != first
        assert await log.length(k("s")) == 2

    async def test_repeats_take_no_room_under_a_lossless_cap(self, make_log: MakeLog) -> None:
        log, k = await make_log(), key_space()
        cap = Cap(2, "lossless", k("lost"))
        await log.ensure_group(k("s"), "g")
        ids = await log.append(
            [Append(k("s"), fields(n), k(f"i{n}")) for n in (1, 2)], cap, window=60.0
        )
        # The stream is full of unread entries: a repeat still answers, a new entry is refused.
        assert await log.append([Append(k("s"), fields(2), k("i2"))], cap, 60.0) == ids[1:]
        with pytest.raises(BackpressureError):
            await log.append(
                [Append(k("s"), fields(2), k("i2")), Append(k("s"), fields(3), k("i3"))],
                cap,
                60.0,
            )
        assert await log.length(k("s")) == 2
        # Refused as a whole: i3 was not remembered.
        assert await log.append([Append(k("s"), fields(3), k("i3"))], None, 60.0) != ids

    # ----------------------------------------------------------------- commits

    async def test_a_commit_appends_sets_state_and_acks_in_one_step(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        ids, fence = await owned_input(log, make_locks, k)
        await kv.hash_set(k("state"), {b"old": b"1", b"gone": b"2"})
        out = await log.commit(
            Commit(
                AckRequest(k("in"), "g", ids, fence),
                [Append(k("out"), fields(10)), Append(k("out2"), fields(11))],
                {k("out"): Cap(100, "lossless", k("lost"))},
                StateChange(k("state"), {b"new": b"3"}, [b"gone"]),
            )
        )
        assert out is not None
        assert len(out) == 2
        assert await log.range(k("out")) == [Entry(out[0], fields(10))]
        assert await log.range(k("out2")) == [Entry(out[1], fields(11))]
        assert await kv.hash_get_all(k("state")) == {b"old": b"1", b"new": b"3"}
        assert await log.pending(k("in"), "g") == []

    async def test_a_commit_applied_already_is_not_applied_again(
        self, make_log: MakeLog, make_locks: MakeLocks
    ) -> None:
        log, k = await make_log(), key_space()
        ids, fence = await owned_input(log, make_locks, k)
        commit = Commit(
            AckRequest(k("in"), "g", ids, fence),
            [Append(k("out"), fields(1))],
            state=StateChange(k("state"), {b"n": b"1"}),
        )
        assert await log.commit(commit) is not None
        assert await log.commit(commit) is None  # the retry of a reply that never came
        assert await log.length(k("out")) == 1

    async def test_a_stale_owner_commits_nothing(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        ids, fence = await owned_input(log, make_locks, k)
        stale = Fence(fence.lock_key, b"w0:0", fence.counter_key)
        with pytest.raises(Fenced):
            await log.commit(
                Commit(
                    AckRequest(k("in"), "g", ids, stale),
                    [Append(k("out"), fields(1))],
                    state=StateChange(k("state"), {b"n": b"1"}),
                )
            )
        assert await log.length(k("out")) == 0
        assert await kv.hash_get_all(k("state")) == {}
        assert len(await log.pending(k("in"), "g")) == 2
        assert await kv.get(k("fenced")) == b"1"

    async def test_a_full_output_refuses_the_whole_commit(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        ids, fence = await owned_input(log, make_locks, k)
        await log.ensure_group(k("out"), "downstream")
        await log.append([Append(k("out"), fields(0))])
        with pytest.raises(BackpressureError):
            await log.commit(
                Commit(
                    AckRequest(k("in"), "g", ids, fence),
                    [Append(k("out"), fields(1))],
                    {k("out"): Cap(1, "lossless", k("lost"))},
                    StateChange(k("state"), {b"n": b"1"}),
                )
            )
        assert await log.length(k("out")) == 1
        assert await kv.hash_get_all(k("state")) == {}
        assert len(await log.pending(k("in"), "g")) == 2

    async def test_a_commit_with_many_state_fields_and_ids_goes_whole(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        ids, fence = await owned_input(log, make_locks, k, count=1200)
        changes = {b"k%05d" % i: b"%d" % i for i in range(5000)}
        assert (
            await log.commit(
                Commit(AckRequest(k("in"), "g", ids, fence), state=StateChange(k("state"), changes))
            )
            == []
        )
        assert await kv.hash_get_all(k("state")) == changes
        assert await log.pending(k("in"), "g", count=2000) == []

    # ----------------------------------------------------------------- the outbox

    async def test_the_outbox_is_read_oldest_first_and_trimmed_under_the_lease(
        self, make_log: MakeLog, make_locks: MakeLocks
    ) -> None:
        log, k = await make_log(), key_space()
        _, fence = await owned_input(log, make_locks, k)
        added = await log.append([Append(k("outbox"), fields(n)) for n in range(5)])
        first = await log.read_outbox(k("outbox"), fence, 3)
        assert [e.id for e in first] == added[:3]
        assert [e.fields for e in first] == [fields(0), fields(1), fields(2)]
        assert await log.drop_relayed(k("outbox"), fence, added[:3]) == 2
        assert [e.id for e in await log.read_outbox(k("outbox"), fence, 10)] == added[3:]
        assert await log.drop_relayed(k("outbox"), fence, added[3:]) == 0
        assert await log.read_outbox(k("outbox"), fence, 10) == []

    async def test_a_stale_owner_neither_reads_nor_trims_the_outbox(
        self, make_log: MakeLog, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        log, kv, k = await make_log(), await make_kv(), key_space()
        _, fence = await owned_input(log, make_locks, k)
        added = await log.append([Append(k("outbox"), fields(n)) for n in range(2)])
        stale = Fence(fence.lock_key, b"someone-else:0", fence.counter_key)
        with pytest.raises(Fenced):
            await log.read_outbox(k("outbox"), stale, 10)
        with pytest.raises(Fenced):
            await log.drop_relayed(k("outbox"), stale, added)
        assert await log.length(k("outbox")) == 2
        assert await kv.get(k("fenced")) == b"2"
