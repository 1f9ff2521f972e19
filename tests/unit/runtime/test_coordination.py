"""Membership, rebalancing, leases and fencing across several in-process workers.

Every test runs on the memory backend and a simulated clock: "seconds" below are
simulated, and the whole module runs in a few real seconds.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest

from runnel import App, Events, Stream, context
from runnel.domain.membership import decode
from runnel.testing import HarnessFactory

from .conftest import Tick, exclusive, executor, holders, start_owning, stop_all

FAST = {
    "default_lock_expiry": 2.0,
    "default_heartbeat_interval": 0.5,
    "default_assignment_sleep": 0.5,
    "default_read_timeout": 200,
    "default_grace_period": 2.0,
    "default_partition_count": 8,
}


Seen = list[tuple[str, str, int]]


def app_with_log(
    make_app: Callable[..., App], work: float = 0.01, **settings: Any
) -> tuple[App, Stream[Tick], Seen]:
    """An app whose processor records (worker, key, seq) of every event it handles."""
    app = make_app(**{**FAST, **settings})
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    seen: Seen = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append((context.worker_id.get(), tick.key, tick.seq))
            await asyncio.sleep(work)  # simulated time, under the harness

    return app, ticks, seen


def first_deliveries(seen: Seen) -> dict[str, list[int]]:
    """Per key, the sequence numbers in the order they were first processed."""
    first: dict[str, list[int]] = defaultdict(list)
    delivered: set[tuple[str, int]] = set()
    for _, key, seq in seen:
        if (key, seq) not in delivered:
            delivered.add((key, seq))
            first[key].append(seq)
    return first


def assert_complete_and_ordered(seen: Seen, count: int) -> None:
    first = first_deliveries(seen)
    delivered = sum(len(v) for v in first.values())
    assert delivered == count, f"lost {count - delivered} event(s)"
    for key, seqs in first.items():
        assert seqs == sorted(seqs), f"key {key} reordered"


async def test_workers_split_partitions_evenly_and_exclusively(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, _ = app_with_log(make_app)
    async with runnel_harness(app) as h:
        workers = await start_owning(h, "w1", "w2", "w3", partitions=8)
        await h.advance(3)
        assert exclusive(h)
        assert sorted(len(executor(vw).feeds) for vw in workers) == [2, 3, 3]
        members = decode(await app.backend.kv.get(ticks.keys.membership("proc")))
        assert sorted(len(m.partitions) for m in members.values()) == [2, 3, 3]
        for vw in workers:
            assert members[executor(vw).id].partitions == frozenset(executor(vw).feeds)
            assert members[executor(vw).id].worker == vw.name
        await stop_all(h)
        assert decode(await app.backend.kv.get(ticks.keys.membership("proc"))) == {}
        for number in range(8):
            assert await app.backend.locks.holder(ticks.keys.lock("proc", number)) is None


async def test_every_membership_change_is_versioned_and_announced(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, _ = app_with_log(make_app)
    async with runnel_harness(app) as h:
        w1, _ = await start_owning(h, "w1", "w2", partitions=8)
        await w1.stop()
        await h.run_until(lambda: len(holders(h)) == 8)
        notes = await app.backend.log.range(ticks.keys.control("proc"))
        changes = [n.fields for n in notes if n.fields[b"type"] != b"released"]
        assert [c[b"type"] for c in changes] == [b"join", b"join", b"leave"]
        assert [int(c[b"version"]) for c in changes] == [1, 2, 3]
        assert await app.backend.kv.get(ticks.keys.membership_version("proc")) == b"3"
        released = [n.fields for n in notes if n.fields[b"type"] == b"released"]
        # w1 handed back half when w2 joined, then the rest when it left: 8 in all.
        assert sum(len(r[b"partitions"].split(b",")) for r in released) == 8


async def test_a_join_moves_only_the_partitions_balance_requires(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, _, _ = app_with_log(make_app)
    async with runnel_harness(app) as h:
        w1 = await h.start("w1", balanced=False)
        w2 = await h.start("w2", balanced=False)
        await h.run_until(lambda: len(executor(w1).feeds) == len(executor(w2).feeds) == 4)
        before = {vw.name: frozenset(executor(vw).feeds) for vw in (w1, w2)}
        w3 = await h.start("w3", balanced=False)
        await h.run_until(lambda: len(holders(h)) == 8 and len(executor(w3).feeds) == 2)
        await h.advance(2)
        after = {vw.name: frozenset(executor(vw).feeds) for vw in (w1, w2)}
        assert after["w1"] <= before["w1"]
        assert after["w2"] <= before["w2"]
        assert len(before["w1"] - after["w1"]) + len(before["w2"] - after["w2"]) == 2
        # w1 took all 8 alone, handed 4 to w2, then 1 more went from each to w3: no other moves.
        assert executor(w1).coordinator.acquired == 8
        assert executor(w2).coordinator.acquired == 4
        assert executor(w3).coordinator.acquired == 2


async def test_joins_and_graceful_leaves_under_load_process_everything_exactly_once(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, seen = app_with_log(make_app)
    total = 0

    async def send(n: int) -> None:
        nonlocal total
        await ticks.send(*[Tick(key=f"k{(total + i) % 20}", seq=total + i) for i in range(n)])
        total += n

    async with runnel_harness(app) as h:
        w1 = await h.start("w1", balanced=False)
        await send(200)
        await h.advance(0.5)
        w2 = await h.start("w2", balanced=False)
        await send(200)
        await h.advance(0.5)
        await h.start("w3", balanced=False)
        await send(200)
        await h.advance(0.5)
        assert await w1.stop() == 0
        await send(200)
        await h.advance(0.5)
        assert await w2.stop() == 0
        await send(200)
        await h.run_until(lambda: len(seen) >= total)
        await h.advance(2)
        await stop_all(h)
    assert len(seen) == total  # exactly once: no duplicates
    assert_complete_and_ordered(seen, total)
    assert {w for w, _, _ in seen} == {"w1", "w2", "w3"}


async def test_a_crashed_workers_partitions_are_processed_again_within_three_seconds(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, seen = app_with_log(make_app, default_heartbeat_interval=1.0)
    async with runnel_harness(app) as h:
        w1 = await h.start("w1", balanced=False)
        w2 = await h.start("w2", balanced=False)
        await h.run_until(lambda: len(executor(w1).feeds) == len(executor(w2).feeds) == 4)
        lost = sorted(executor(w2).feeds)
        await ticks.send(*[Tick(key=f"k{i % 16}", seq=i) for i in range(800)])
        await h.run_until(lambda: len(seen) >= 100)
        crashed_at = h.now
        await w2.kill()
        seen_before = len(seen)

        def w1_processes_the_lost_partitions() -> bool:
            return set(lost) <= set(executor(w1).feeds) and len(seen) > seen_before

        await h.run_until(w1_processes_the_lost_partitions)
        recovered_in = h.now - crashed_at
        assert recovered_in <= 3.0, f"recovery took {recovered_in:.2f}s"
        assert executor(w1).coordinator.reaped == 1
        await h.run_until(lambda: len({(k, s) for _, k, s in seen}) >= 800)
    assert_complete_and_ordered(seen, 800)


async def test_a_replacement_started_while_the_dead_lease_lives_waits_and_never_fails(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, seen = app_with_log(make_app, default_lock_expiry=10.0)
    async with runnel_harness(app) as h:
        (w1,) = await start_owning(h, "w1", partitions=8)
        await ticks.send(*[Tick(key=f"k{i % 8}", seq=i) for i in range(80)])
        await h.run_until(lambda: len(seen) >= 10)
        await w1.kill()
        crashed_at = h.now
        replacement = await h.start("w2", balanced=False)
        await h.run_until(lambda: len(holders(h)) == 8, timeout=30)
        took = h.now - crashed_at
        assert took <= 10.5, f"took {took:.2f}s with a 10s lease"
        assert replacement.state == "running"
        assert executor(replacement).coordinator.attempts == {}
        await h.run_until(lambda: len({(k, s) for _, k, s in seen}) >= 80)
    assert_complete_and_ordered(seen, 80)


async def test_a_cut_off_worker_stops_at_its_lease_deadline_and_its_late_acks_are_refused(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, seen = app_with_log(make_app, default_partition_count=1, default_prefetch_count=50)
    async with runnel_harness(app) as h:
        (w1,) = await start_owning(h, "w1", partitions=1)
        await ticks.send(*[Tick(key="k", seq=i) for i in range(300)])
        await h.run_until(lambda: len(seen) >= 20)
        deadline_before_cut = executor(w1).feeds[0].deadline
        w1.pause()  # no renewal, no acknowledgement reaches the backend from now on
        await h.start("w2", balanced=False)
        await h.run_until(lambda: holders(h).get(0) == ["w2"], timeout=30)
        taken_at = h.now
        assert taken_at >= deadline_before_cut  # nobody took over before w1's lease lapsed
        by_w1 = [s for w, _, s in seen if w == "w1"]
        w1.resume()  # its queued acknowledgements now arrive, too late
        await h.run_until(lambda: len({s for _, _, s in seen}) >= 300)
        await h.advance(3)
        assert executor(w1).acker.refused > 0
        assert [s for w, _, s in seen if w == "w1"] == by_w1  # w1 processed nothing more
        fenced = await app.backend.kv.get(ticks.keys.fenced("proc"))
        assert fenced is not None
        assert int(fenced) > 0
    assert_complete_and_ordered(seen, 300)


async def test_in_flight_work_is_cancelled_when_the_lease_may_have_expired(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, seen = app_with_log(make_app, work=30.0, default_partition_count=1)
    async with runnel_harness(app) as h:
        (w1,) = await start_owning(h, "w1", partitions=1)
        await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1))
        await h.run_until(lambda: len(seen) == 1)
        w1.pause()
        cut_at = h.now
        await h.run_until(lambda: not executor(w1).feeds)
        stopped_after = h.now - cut_at
        # Within one lease (2s) of the cut, the 30s event was abandoned, not finished.
        assert stopped_after <= 2.0
        assert executor(w1).consumers == {}
        w1.resume()
        await h.run_until(lambda: len(seen) >= 3, timeout=120)
    assert [s for _, _, s in seen][:2] == [0, 0]  # redelivered: at least once, in order


async def test_a_member_reaped_during_a_pause_joins_again_and_gets_partitions(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    app, ticks, _ = app_with_log(make_app)
    async with runnel_harness(app) as h:
        w1, w2 = await start_owning(h, "w1", "w2", partitions=8)
        w1.pause()
        await h.run_until(
            lambda: executor(w1).id not in executor(w2).coordinator.members and len(holders(h)) == 8
        )
        assert executor(w2).coordinator.reaped == 1
        w1.resume()
        await h.run_until(lambda: len(executor(w1).feeds) == len(executor(w2).feeds) == 4)
        assert exclusive(h)
        assert executor(w1).coordinator.joins == 2
        members = decode(await app.backend.kv.get(ticks.keys.membership("proc")))
        assert set(members) == {executor(w1).id, executor(w2).id}


async def test_a_lease_that_frees_itself_right_after_a_failed_attempt_is_taken_at_once(
    make_app: Callable[..., App], runnel_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, ticks, _ = app_with_log(make_app, default_partition_count=1, default_lock_expiry=10.0)
    async with runnel_harness(app) as h:
        locks = app.backend.locks
        ghost = await locks.acquire(
            ticks.keys.lock("proc", 0), ticks.keys.epoch("proc", 0), "ghost", 0.3
        )
        assert ghost is not None
        asked: list[float | None] = []
        real = locks.expires_in

        async def racing_expiry(key: str) -> float | None:
            left = await real(key)
            asked.append(left)
            await h.clock.sleep(left or 0)  # the lease runs out while we ask about it
            return await real(key)

        monkeypatch.setattr(locks, "expires_in", racing_expiry)  # a race, staged
        started = h.now
        w1 = await h.start("w1", balanced=False)
        await h.run_until(lambda: 0 in executor(w1).feeds, timeout=10)
        assert asked  # the first attempt found the ghost's lease
        # Taken as soon as it was found free, not one assignment_sleep (0.5 s) later.
        assert h.now - started < 0.3 + 0.1


@pytest.mark.parametrize("offset", [0.0, 0.05, 0.13, 0.26, 0.41])
async def test_workers_stopping_together_leave_no_member_behind(
    make_app: Callable[..., App], runnel_harness: HarnessFactory, offset: float
) -> None:
    app, ticks, seen = app_with_log(make_app, work=0.001)
    async with runnel_harness(app) as h:
        workers = await start_owning(h, "w1", "w2", "w3", partitions=8)
        await h.run_until(lambda: exclusive(h))
        await ticks.send(*[Tick(key=f"k{i % 11}", seq=i) for i in range(300)])
        await h.advance(offset)  # stop at different points of the heartbeat cycle
        began = h.now
        codes = await asyncio.gather(*(vw.stop() for vw in workers))
        assert codes == [0, 0, 0]
        # Each drain is short: nobody waits for a lease to expire or a grace period to end.
        assert h.now - began < FAST["default_lock_expiry"]
        assert decode(await app.backend.kv.get(ticks.keys.membership("proc"))) == {}
        for number in range(8):
            assert await app.backend.locks.holder(ticks.keys.lock("proc", number)) is None
    assert len(seen) == len(set(seen))  # a graceful stop processes nothing twice


@pytest.mark.parametrize("kind", ["join", "rejoin"])
async def test_a_stop_during_a_membership_write_in_flight_leaves_no_member_behind(
    make_app: Callable[..., App],
    runnel_harness: HarnessFactory,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """A join's compare-and-set whose reply is still on its way when the stop begins is
    waited for, and the leave then takes the member out again: no ghost stays behind."""
    app, ticks, _ = app_with_log(make_app)
    async with runnel_harness(app) as h:
        port = app.backend.membership
        real_update = port.update
        in_flight: list[bool] = []
        slow = kind == "join"

        async def update(*args: Any, **kwargs: Any) -> Any:
            write = await real_update(*args, **kwargs)
            if slow and not in_flight:
                in_flight.append(True)
                await h.clock.sleep(0.3)  # written, but the reply is still on its way back
            return write

        monkeypatch.setattr(port, "update", update)
        key = ticks.keys.membership("proc")
        w1 = await h.start("w1", balanced=False)
        if kind == "rejoin":
            await h.run_until(lambda: executor(w1).coordinator.joined.is_set())
            await app.backend.kv.delete(key)  # as if reaped during a pause: it joins again
            slow = True
        await h.run_until(lambda: bool(in_flight))
        assert await w1.stop() == 0
        assert decode(await app.backend.kv.get(key)) == {}
        for number in range(8):
            assert await app.backend.locks.holder(ticks.keys.lock("proc", number)) is None


@pytest.mark.parametrize("cut", ["all", "one"])
@pytest.mark.parametrize("offset", [0.0, 0.3, 0.6, 0.95])
async def test_live_workers_keep_leases_and_membership_through_a_7s_stall_of_the_backend(
    make_app: Callable[..., App], runnel_harness: HarnessFactory, offset: float, cut: str
) -> None:
    # Default lease timings (lock_expiry 10 s, heartbeat 1 s): every worker is cut off at
    # once, as in a Redis stall (DEBUG SLEEP, CLIENT PAUSE), or one alone (its network, a
    # pause), starting at various points of the renewal cycle; 7 s is within the
    # documented tolerance (lock_expiry - margin - one tick = 7.75 s), so no lease is lost
    # and nobody is reaped afterwards.
    app, ticks, seen = app_with_log(
        make_app, default_lock_expiry=10.0, default_heartbeat_interval=1.0
    )
    async with runnel_harness(app) as h:
        workers = await start_owning(h, "w1", "w2", "w3", partitions=8)
        await ticks.send(*[Tick(key=f"k{i % 8}", seq=i) for i in range(40)])
        await h.run_until(lambda: len(seen) >= 40)
        await h.advance(offset)
        before = {vw.name: {n: f.epoch for n, f in executor(vw).feeds.items()} for vw in workers}
        cut_off = workers if cut == "all" else workers[:1]
        for vw in cut_off:
            vw.pause()
        await h.advance(7.0)
        for vw in cut_off:
            vw.resume()
        await ticks.send(*[Tick(key=f"k{i % 8}", seq=i) for i in range(40, 80)])
        await h.run_until(lambda: len(seen) >= 80)
        await h.advance(5)  # several membership checks after the stall
        after = {vw.name: {n: f.epoch for n, f in executor(vw).feeds.items()} for vw in workers}
        assert after == before
        assert [executor(vw).lost for vw in workers] == [0, 0, 0]
        assert [executor(vw).coordinator.reaped for vw in workers] == [0, 0, 0]
    assert_complete_and_ordered(seen, 80)


async def test_a_dead_worker_is_noticed_by_its_closed_connection_and_replaced_within_3s(
    make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    # Default lease timings (lock_expiry 10 s): without the closed connection, its
    # partitions would wait about 10 s for the leases to expire.
    app, ticks, seen = app_with_log(
        make_app, default_lock_expiry=10.0, default_heartbeat_interval=1.0
    )
    async with runnel_harness(app) as h:
        w1, w2, w3 = await start_owning(h, "w1", "w2", "w3", partitions=8)
        await ticks.send(*[Tick(key=f"k{i % 8}", seq=i) for i in range(40)])
        await h.run_until(lambda: len(seen) >= 40)
        theirs = {n: f.epoch for n, f in executor(w1).feeds.items()}
        assert theirs, "precondition: the victim owns partitions"
        await w1.kill()
        killed_at = h.now
        await h.run_until(lambda: all(n in holders(h) for n in theirs), timeout=30)
        took = h.now - killed_at
        assert took <= 3.0, f"took {took:.2f}s with a 10s lease"
        for number, epoch in theirs.items():
            (owner,) = holders(h)[number]
            assert executor(h.workers[owner]).feeds[number].epoch > epoch  # fenced
        assert executor(w2).coordinator.gone_found + executor(w3).coordinator.gone_found == 1
        await ticks.send(*[Tick(key=f"k{i % 8}", seq=i) for i in range(40, 80)])
        await h.run_until(lambda: len({(k, s) for _, k, s in seen}) >= 80)
    assert_complete_and_ordered(seen, 80)
