"""Faults of the worker processes: SIGKILL, a kill loop, SIGSTOP past the lease with user
code inside an ``await``, a rolling SIGTERM restart; and two loads that are not faults but
stress a worker: a slow hot key and large events."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest

from tests.integration.engine.apps.audited import Load
from tests.integration.engine.harness import WorkerProcess
from tests.integration.engine.test_observability_processes import scrape, total

from . import audit
from .audit import Fault
from .conftest import Faults
from .guarantees import assert_guarantees
from .scenario import Scenario, refused_acks

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

KILLS = 5
KILL_EVERY = 4.0  # seconds of load between two kills

SLOW_KEY = "slow"
SLOW_DELAY = 0.6  # seconds a slow event's user code awaits
STOP_KEY = "pause"

HOT_KEY = "hot"
HOT_SHARE = 0.1  # of all events
HOT_DELAY = 0.05  # 30 a second, 50 ms each: 1.5 s of work a second for one partition

LARGE_RATE = 20.0  # events a second
LARGE_BACKLOG = 96  # events sent before the workers start: 8 a partition, a full prefetch
LARGE_DELAY = 0.1  # seconds of awaited work per event
MB = 2**20


async def test_sigkill_of_one_worker(faults: Faults) -> None:
    redis = await faults.server()
    async with faults.scenario("sigkill one worker", redis) as s:
        victim, *_ = await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        fault = await s.kill(victim)
        await s.wait_recovered(fault)
        await s.load_for(3)
        row = await s.finish()
    assert_guarantees(row)


async def test_kill_loop(faults: Faults) -> None:
    rng = random.Random(1717)  # the same victims every run
    redis = await faults.server()
    async with faults.scenario("kill loop", redis) as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        for _ in range(KILLS):
            await s.kill(rng.choice(s.live))
            s.spawn()  # a supervisor restarts it at once
            await s.load_for(KILL_EVERY)
        await s.wait_balanced()
        await s.load_for(2)
        row = await s.finish()
    assert_guarantees(row)


async def test_sigstop_past_the_lease_while_user_code_awaits_a_slow_call(
    faults: Faults,
) -> None:
    redis = await faults.server()
    env = {"ENGINE_TEST_SLOW_KEYS": SLOW_KEY, "ENGINE_TEST_SLOW_DELAY": str(SLOW_DELAY)}
    async with faults.scenario("sigstop, awaiting a slow call", redis, env=env) as s:
        await s.start_workers(3)
        s.start_load(hot_key=SLOW_KEY, hot_share=1 / 300)  # one slow event a second
        await s.load_for(3)

        # Stop the worker the moment one of its slow events has reached user code: it is
        # inside the awaited call, with most of it still to go.
        inflight: dict[str, Any] = {}

        async def slow_event_in_flight() -> bool:
            finished = {(d["seq"], d["pid"]) for d in await s.done() if d["key"] == SLOW_KEY}
            for b in reversed(await s.began()):
                fresh = time.time() - b["began"] < SLOW_DELAY / 3
                if fresh and (b["seq"], b["pid"]) not in finished:
                    inflight.update(b)
                    return True
            return False

        await s.wait_for(slow_event_in_flight, "a slow event in user code", 30)
        (victim,) = [w for w in s.live if w.pid == inflight["pid"]]
        stopped_at = time.time()
        victim.send_signal(signal.SIGSTOP)
        continued_at = await _resume_once_moved_on(s, victim, inflight, stopped_at)
        row = await s.finish()
    await _record_stale_owner(s, row, victim, inflight, stopped_at, continued_at)
    assert_guarantees(row)
    _assert_stale_acks_refused(s, row, victim)


async def test_sigstop_past_the_lease_with_an_await_done_at_resume(faults: Faults) -> None:
    redis = await faults.server()
    async with faults.scenario(
        "sigstop, await done at resume", redis, env={"ENGINE_TEST_STOP_KEY": STOP_KEY}
    ) as s:
        await s.start_workers(3)
        # The first STOP_KEY event (after a second of load) stops its worker inside an await:
        # the app does it, at the one point a test cannot hit from outside. The await is
        # complete when the worker runs again.
        s.start_load(hot_key=STOP_KEY, hot_share=1 / 300)
        inflight: dict[str, Any] = {}

        async def stopped() -> bool:
            began = [b for b in await s.began() if b["key"] == STOP_KEY]
            if began and any(w.pid == began[0]["pid"] and w.stopped() for w in s.live):
                inflight.update(began[0])
                return True
            return False

        await s.wait_for(stopped, "a worker stopped inside an await", 30)
        (victim,) = [w for w in s.live if w.pid == inflight["pid"]]
        stopped_at = float(inflight["began"])
        continued_at = await _resume_once_moved_on(s, victim, inflight, stopped_at)
        row = await s.finish()
    stale = await _record_stale_owner(s, row, victim, inflight, stopped_at, continued_at)
    assert_guarantees(row)
    _assert_stale_acks_refused(s, row, victim)
    # Precondition of the scenario: the stale owner did finish its in-flight event late.
    assert stale, f"the in-flight event was not finished after the resume: {row.notes}"


async def test_sigstop_past_the_lease_with_an_await_done_at_resume_and_an_ownership_check(
    faults: Faults,
) -> None:
    # The same stop inside an await, but the processor calls events.ensure_owned() before
    # its side effect (the "done" record): the check on the monotonic clock refuses it.
    redis = await faults.server()
    env = {"ENGINE_TEST_STOP_KEY": STOP_KEY, "ENGINE_TEST_ENSURE_OWNED": "1"}
    async with faults.scenario("sigstop, await done at resume, ensure_owned", redis, env=env) as s:
        await s.start_workers(3, http=True)
        s.start_load(hot_key=STOP_KEY, hot_share=1 / 300)
        inflight: dict[str, Any] = {}

        async def stopped() -> bool:
            began = [b for b in await s.began() if b["key"] == STOP_KEY]
            if began and any(w.pid == began[0]["pid"] and w.stopped() for w in s.live):
                inflight.update(began[0])
                return True
            return False

        await s.wait_for(stopped, "a worker stopped inside an await", 30)
        (victim,) = [w for w in s.live if w.pid == inflight["pid"]]
        stopped_at = float(inflight["began"])
        continued_at = await _resume_once_moved_on(s, victim, inflight, stopped_at)
        # The refusal is counted where an operator sees it: the resumed worker's /metrics.
        port = victim.http_port
        assert port is not None

        async def counted() -> bool:
            scraped = await scrape(port)
            return total(scraped, "runnel_lease_expired_errors_total") >= 1

        await s.wait_for(counted, "the resumed worker's /metrics to count LeaseExpired", 30)
        expired = total(await scrape(port), "runnel_lease_expired_errors_total")
        others = [w.http_port for w in s.live if w is not victim and w.http_port is not None]
        elsewhere = [total(await scrape(p), "runnel_lease_expired_errors_total") for p in others]
        row = await s.finish()
    stale = await _record_stale_owner(s, row, victim, inflight, stopped_at, continued_at)
    assert_guarantees(row)
    assert expired >= 1
    assert elsewhere == [0.0] * len(others)  # only the stale owner ever raised it
    assert stale == [], f"a side effect landed after the new owner's: {row.notes}"
    assert row.notes["in-flight event"] == "cancelled"
    assert row.notes["late hand-outs under an old lease"] == 0
    assert any("may have a new owner" in m for m in victim.messages()), victim.tail()


async def _resume_once_moved_on(
    s: Scenario, victim: WorkerProcess, inflight: dict[str, Any], stopped_at: float
) -> float:
    """Keep ``victim`` stopped until the others processed every partition and the new owner
    of the in-flight event's key got past it; SIGCONT; let the workers settle. Returns when
    it was continued."""
    key = inflight["key"]
    try:
        await s.wait_recovered(Fault("sigstop", stopped_at, stopped_at))

        async def moved_on() -> bool:
            return any(
                d["key"] == key and d["seq"] > inflight["seq"] and d["pid"] != victim.pid
                for d in await s.done()
            )

        await s.wait_for(moved_on, "the new owner past the event in flight", 30)
    finally:
        continued_at = time.time()
        victim.send_signal(signal.SIGCONT)
    s.record(Fault("sigstop", stopped_at, continued_at))
    await s.load_for(3)
    await s.wait_balanced()
    return continued_at


async def _record_stale_owner(
    s: Scenario,
    row: audit.Row,
    victim: WorkerProcess,
    inflight: dict[str, Any],
    stopped_at: float,
    continued_at: float,
) -> list[dict[str, Any]]:
    """Note what the stale owner did after the resume; the events it finished late."""
    records = await s.done()
    mine = [d for d in records if d["pid"] == victim.pid]
    old_leases = {(d["partition"], d["epoch"]) for d in mine if d["began"] <= stopped_at}
    # Finished by the stale owner after the resume, when another worker had already
    # processed that partition: a side effect landing on top of newer ones.
    stale = [
        d
        for d in mine
        if d["began"] <= stopped_at
        and d["done"] >= continued_at
        and any(
            o["pid"] != victim.pid
            and o["partition"] == d["partition"]
            and stopped_at < o["began"] < d["done"]
            for o in records
        )
    ]
    # Handed to user code after the resume under a lease held before the pause.
    late = [
        d for d in mine if d["began"] >= continued_at and (d["partition"], d["epoch"]) in old_leases
    ]
    finished = any(d["key"] == inflight["key"] and d["seq"] == inflight["seq"] for d in mine)
    row.notes["stale finishes"] = len(stale)
    row.notes["stale finish after resume s"] = [round(d["done"] - continued_at, 3) for d in stale]
    # How long after the new owner had finished the same event.
    row.notes["stale finish after the new owner's s"] = [
        round(d["done"] - min(o["done"] for o in records if _same(o, d) and o is not d), 3)
        for d in stale
        if any(_same(o, d) and o is not d for o in records)
    ]
    row.notes["in-flight event"] = "finished after the resume" if finished else "cancelled"
    row.notes["late hand-outs under an old lease"] = len(late)
    row.notes["victim acks refused"] = sum(refused_acks(victim))
    return stale


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["key"] == b["key"] and a["seq"] == b["seq"])


def _assert_stale_acks_refused(s: Scenario, row: audit.Row, victim: WorkerProcess) -> None:
    """The fence refused the stale owner's acknowledgements of what it finished late, and
    nobody else's."""
    assert sum(refused_acks(victim)) >= row.notes["stale finishes"], victim.tail()
    assert all(refused_acks(w) == [] for w in s.workers if w is not victim)


async def test_rolling_restart_with_sigterm(faults: Faults) -> None:
    redis = await faults.server()
    async with faults.scenario("rolling restart (sigterm)", redis) as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        for worker in list(s.live):
            await s.terminate(worker)
            s.spawn()
            await s.wait_balanced()
            await s.load_for(2)
        row = await s.finish()
    assert_guarantees(row, graceful=True)


async def test_a_slow_hot_key(faults: Faults) -> None:
    redis = await faults.server()
    env = {"ENGINE_TEST_SLOW_KEYS": HOT_KEY, "ENGINE_TEST_SLOW_DELAY": str(HOT_DELAY)}
    async with faults.scenario("slow hot key", redis, env=env) as s:
        await s.start_workers(3)
        # A tenth of the events, each taking HOT_DELAY: more work than one partition can do.
        s.start_load(hot_key=HOT_KEY, hot_share=HOT_SHARE)
        await s.load_for(8)
        row = await s.finish()
    sent_at = {(a.key, a.seq): a.at for a in s.attempts if a.ok}
    hot = s.stream.partition_for(Load(key=HOT_KEY, seq=0))
    latency: dict[str, list[float]] = {"hot key": [], "its partition": [], "other partitions": []}
    for d in audit.in_delivery_order(await s.done()):
        group = (
            "hot key"
            if d["key"] == HOT_KEY
            else "its partition"
            if d["partition"] == hot
            else "other partitions"
        )
        latency[group].append(d["began"] - sent_at[(d["key"], d["seq"])])
    for group, values in latency.items():
        p50, p99 = audit.percentile(values, 0.5), audit.percentile(values, 0.99)
        row.notes[f"latency {group} p50/p99 s"] = [round(p50 or 0, 3), round(p99 or 0, 3)]
    assert_guarantees(row, graceful=True)


async def test_large_events(faults: Faults) -> None:
    rng = random.Random(4)
    sizes: list[int] = []

    def pad(_: int) -> int:
        sizes.append(rng.randint(MB, 4 * MB))
        return sizes[-1]

    redis = await faults.server()
    env = {"ENGINE_TEST_DELAY": str(LARGE_DELAY)}
    async with faults.scenario("large events 1-4 MB", redis, env=env, keys_per_partition=1) as s:
        # A backlog on every partition first, so every prefetch buffer fills at once.
        producer = s.start_load(rate=LARGE_RATE, pad=pad)
        await s.wait_for(lambda: producer.sent >= LARGE_BACKLOG, "a backlog of large events", 120)
        await s.start_workers(3)
        await s.load_for(4)
        row = await s.finish()
    row.notes["events MB"] = round(sum(sizes) / MB)
    row.notes["largest MB"] = round(max(sizes) / MB, 1)
    assert_guarantees(row, graceful=True)
