"""The admin API (runnel.admin) on the memory backend, with real workers in simulated time."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from runnel import App, Events, ExceptionPolicy, Record
from runnel.admin import Admin, UnknownName
from runnel.errors import Misconfigured, UnknownProcessor
from runnel.middleware import DeadLetterMiddleware, UndecodableLetter
from runnel.ports import Append
from runnel.testing import Harness


class Order(Record):
    key: str
    seq: int


def by_number(key: object) -> int:
    """Key ``k<n>`` goes to partition ``n``."""
    return int(str(key)[1:])


def shop(
    name: str,
    poison: set[int] | None = None,
    policy: ExceptionPolicy = ExceptionPolicy.HALT,
    seen: list[int] | None = None,
) -> App:
    """Orders on 2 partitions, charged by ``charge`` (failing on ``poison``), audited by
    ``audit`` (IGNORE plus dead letters, failing on multiples of 7), whose dead letters
    ``inspect`` collects through ``records()``."""
    app = App(name=name, redis_url=f"memory://{name}")
    orders = app.stream("orders", record=Order, partition_by="key", partition_count=2,
                        hasher=by_number)  # fmt: skip
    dead = DeadLetterMiddleware(source=orders)
    bad = poison or set()
    charged = seen if seen is not None else []

    @app.processor(orders, exception_policy=policy)
    async def charge(events: Events) -> None:
        async for order in events.records():
            if order.seq in bad:
                raise ValueError(f"cannot charge {order.seq}")
            charged.append(order.seq)

    @app.processor(orders, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead])
    async def audit(events: Events) -> None:
        async for order in events.records():
            if order.seq % 7 == 0:
                raise KeyError(order.seq)

    collected: list[Any] = []
    app.collected = collected  # type: ignore[attr-defined]  # the test reads it back

    @app.processor(dead.sink)
    async def inspect(events: Events) -> None:
        async for letter in events.records():
            collected.append(letter)

    return app


async def send(app: App, *seqs: int, key: str = "k0") -> list[bytes]:
    return await app.streams["orders"].send(*(Order(key=key, seq=s) for s in seqs))


async def test_status_shows_owners_positions_members_and_the_leader() -> None:
    app = shop("ops-status")
    async with Harness(app) as h:
        await h.start("w1")
        await h.start("w2")
        await send(app, 1, 2, 3)
        await send(app, 4, key="k1")
        await h.run_until_idle()
        status = await Admin(app).status()
    assert status.leader is not None
    assert status.leader.worker in ("w1", "w2")
    orders = next(s for s in status.streams if s.name == "orders")
    charge = next(p for p in orders.processors if p.name == "charge")
    assert [(p.number, p.lag, p.pending, p.length) for p in charge.partitions] == [
        (0, 0, 0, 3),
        (1, 0, 0, 1),
    ]
    owners = {p.owner.worker for p in charge.partitions if p.owner is not None}
    assert owners == {"w1", "w2"}
    assert sorted(m.worker for m in charge.members) == ["w1", "w2"]
    assert all(m.alive for m in charge.members)
    audit = next(p for p in orders.processors if p.name == "audit")
    assert audit.dead_letter_stream == "orders.dead"
    assert [p.dead_letters for p in audit.partitions] == [0, 0]
    json.loads(status.model_dump_json())  # stable JSON


async def test_status_of_one_processor_and_an_unknown_one() -> None:
    app = shop("ops-status-one")
    admin = Admin(app)
    status = await admin.status("charge")
    assert [p.name for s in status.streams for p in s.processors] == ["charge"]
    with pytest.raises(UnknownProcessor, match="available: audit, charge, inspect"):
        await admin.status("nope")


async def test_a_dead_member_shows_until_it_is_reaped() -> None:
    app = shop("ops-dead-member")
    async with Harness(app) as h:
        w1 = await h.start("w1", processors=["charge"])
        await h.start("w2", processors=["charge"])
        await w1.kill()
        await h.advance(5.0)  # past three heartbeat ticks, before the lease runs out
        status = await Admin(app).status("charge")
        (charge,) = status.streams[0].processors
        states = {m.worker: m.alive for m in charge.members}
        assert states.get("w2") is True
        if "w1" in states:  # not reaped yet: it shows as dead
            assert states["w1"] is False


async def test_reset_dry_run_changes_nothing_and_says_what_would_move() -> None:
    seen: list[int] = []
    app = shop("ops-reset-dry", seen=seen)
    async with Harness(app) as h:
        await h.start()
        await send(app, 1, 2, 3, 4)
        await h.run_until_idle()
        admin = Admin(app)
        report = await admin.reset("charge", "earliest", dry_run=True)
        assert [(p.partition, p.reread, p.skipped) for p in report.partitions] == [
            (0, 4, 0),
            (1, 0, 0),
        ]
        await h.run_until_idle()
        assert seen == [1, 2, 3, 4]
        status = await admin.status("charge")
        assert status.streams[0].processors[0].partitions[0].lag == 0


async def test_reset_validates_everything_before_touching_anything() -> None:
    app = shop("ops-reset-bad")
    admin = Admin(app)
    await send(app, 1, 2)
    before = (await admin.status("charge")).streams[0].processors[0].partitions
    with pytest.raises(Misconfigured, match="not a reset target"):
        await admin.reset("charge", "garbage")
    with pytest.raises(Misconfigured, match="has no partition 5"):
        await admin.reset("charge", "earliest", partitions=[0, 5])
    with pytest.raises(UnknownProcessor):
        await admin.reset("nope", "earliest")
    after = (await admin.status("charge")).streams[0].processors[0].partitions
    assert before == after


async def test_reset_refuses_held_partitions_unless_forced_then_fences_the_owner() -> None:
    seen: list[int] = []
    app = shop("ops-reset-live", seen=seen)
    async with Harness(app) as h:
        await h.start("w1", processors=["charge"])
        await send(app, 1, 2, 3)
        await h.run_until_idle()
        admin = Admin(app)
        with pytest.raises(Misconfigured, match="held by a live worker"):
            await admin.reset("charge", "earliest", partitions=[0])
        assert seen == [1, 2, 3]
        report = await admin.reset("charge", "earliest", partitions=[0], force=True)
        assert report.partitions[0].held_by is not None
        await h.run_until_idle()
        await send(app, 4)
        await h.run_until_idle()
    assert Counter(seen) == {1: 2, 2: 2, 3: 2, 4: 1}
    assert [s for s in seen if s in (1, 2, 3)][-3:] == [1, 2, 3]


async def test_reset_to_latest_skips_the_backlog_and_to_an_id() -> None:
    seen: list[int] = []
    app = shop("ops-reset-latest", seen=seen)
    admin = Admin(app)
    async with Harness(app) as h:
        ids = await send(app, 1, 2, 3)
        report = await admin.reset("charge", "latest", partitions=[0])
        assert report.partitions[0].skipped == 3
        report = await admin.reset("charge", ids[1].decode(), partitions=[0], dry_run=True)
        assert report.partitions[0].reread == 2
        await admin.reset("charge", ids[1].decode(), partitions=[0])
        await h.start(processors=["charge"])
        await h.run_until_idle()
    assert seen == [2, 3]


async def test_skip_takes_only_the_next_entry_and_is_recorded() -> None:
    seen: list[int] = []
    app = shop("ops-skip", poison={2}, policy=ExceptionPolicy.QUARANTINE, seen=seen)
    async with Harness(app) as h:
        await h.start(processors=["charge"])
        ids = await send(app, 1, 2, 3)
        await h.run_until_idle()
        admin = Admin(app)
        part = (await admin.status("charge")).streams[0].processors[0].partitions[0]
        assert part.quarantine is not None
        assert part.quarantine["entry_id"] == ids[1].decode()
        assert part.oldest_pending_id == ids[1].decode()
        with pytest.raises(Misconfigured, match="is not the next entry"):
            await admin.skip("charge", 0, ids[2].decode())
        with pytest.raises(Misconfigured, match="has no partition 9"):
            await admin.skip("charge", 9, ids[1].decode())
        with pytest.raises(Misconfigured, match="is not an entry id"):
            await admin.skip("charge", 0, "yesterday")
        done = await admin.skip("charge", 0, ids[1].decode(), by="ops@test")
        assert (done.was, done.by, done.quarantine_cleared) == ("acknowledged", "ops@test", True)
        await h.run_until_idle()
        assert seen == [1, 3]
        (record,) = await admin.skips("charge")
        assert (record["entry_id"], record["by"]) == (ids[1].decode(), "ops@test")
        status = await admin.status("charge")
        assert status.streams[0].processors[0].skips == 1


async def test_skip_of_an_undelivered_entry_moves_the_position_past_it() -> None:
    seen: list[int] = []
    app = shop("ops-skip-new", seen=seen)
    admin = Admin(app)
    async with Harness(app) as h:
        ids = await send(app, 1, 2)
        done = await admin.skip("charge", 0, ids[0].decode())
        assert done.was == "never delivered"
        await h.start(processors=["charge"])
        await h.run_until_idle()
    assert seen == [2]


async def test_dead_letters_list_show_replay_once_and_purge() -> None:
    app = shop("ops-dead")
    async with Harness(app) as h:
        await h.start()
        await send(app, 6, 7, 14)
        await send(app, 21, key="k1")
        await h.run_until_idle()
        admin = Admin(app)
        letters = await admin.dead_letters("audit")
        assert sorted(v.record["seq"] for v in letters if v.record) == [7, 14, 21]
        assert {v.error_type for v in letters} == {"KeyError"}
        only = await admin.dead_letters("audit", partition=1)
        assert [v.record for v in only] == [{"key": "k1", "seq": 21}]
        assert await admin.dead_letters("audit", error_type="ValueError") == []
        shown = await admin.dead_letter("audit", letters[0].id)
        assert shown.source_id == letters[0].source_id
        with pytest.raises(UnknownName, match="no DeadLetterMiddleware"):
            await admin.dead_letters("charge")
        report = await admin.replay("audit", letters[:1])
        assert len(report.new_ids) == 1
        assert "end of their source partition" in report.ordering
        again = await admin.replay("audit", letters[:1])
        assert (again.new_ids, again.already_replayed) == ([], [letters[0].id])
        await h.run_until_idle()
        after = await admin.dead_letters("audit")
        assert len(after) == 4  # 7 failed again when replayed: a new letter
        assert after[0].replayed_as == report.new_ids[0]
        assert await admin.purge("audit", after) == 4
        assert await admin.dead_letters("audit") == []


async def test_the_dead_letter_processor_gets_undecodable_letters_and_keeps_going() -> None:
    app = shop("ops-undecodable")
    orders = app.streams["orders"]
    async with Harness(app) as h:
        await h.start(processors=["audit", "inspect"])
        key = orders.partition_key_name(0)
        await orders.append_encoded([Append(key, {b"data": b"\xff not json"})])
        await send(app, 7)
        await h.run_until_idle()
        collected = app.collected  # type: ignore[attr-defined]
        kinds = [type(c).__name__ for c in collected]
        assert sorted(kinds) == ["Order", "UndecodableLetter"]
        bad = next(c for c in collected if isinstance(c, UndecodableLetter))
        assert bad.fields == {b"data": b"\xff not json"}
        assert bad.decode_error.startswith("DecodeError")
        assert bad.failure.source_partition == 0
        assert all(w.alive for w in h.workers.values())
        letters = await Admin(app).dead_letters("audit")
        undecodable = next(v for v in letters if v.record is None)
        assert undecodable.decode_error is not None
        assert undecodable.raw == {"data": repr(b"\xff not json")}


async def test_tail_reads_without_joining_a_group() -> None:
    app = shop("ops-tail")
    admin = Admin(app)
    await send(app, 1, 2)
    await send(app, 3, key="k1")
    seen = [r async for r in admin.tail("orders", start="earliest")]
    assert [(r.partition, r.record["seq"]) for r in seen if r.record] in (
        [(0, 1), (0, 2), (1, 3)],
        [(1, 3), (0, 1), (0, 2)],
        [(0, 1), (1, 3), (0, 2)],
    )
    only = [r async for r in admin.tail("orders", partitions=[1], start="earliest")]
    assert [r.partition for r in only] == [1]
    assert [r async for r in admin.tail("orders")] == []  # only what arrives from now on
    assert [r async for r in admin.tail("orders", start="latest")] == []
    groups = await app.backend.log.groups(app.streams["orders"].partition_key_name(0))
    assert {g.name for g in groups} <= {"charge", "audit"}
    with pytest.raises(UnknownName, match="unknown stream 'nope'"):
        [r async for r in admin.tail("nope")]
    with pytest.raises(Misconfigured, match="has no partition 3"):
        [r async for r in admin.tail("orders", partitions=[3])]
