"""The processing engine end to end: real ``runnel worker`` processes on a real redis-server.

Each test runs one of the small apps in ``apps/`` under its own name. Processors record
what they handle by pushing to Redis lists, so every event is counted: lost, duplicated or
out of order. Waits poll a condition with a deadline; assertions are about outcomes.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Sized
from typing import Any

import pytest
from redis.asyncio import Redis

from runnel.errors import BackpressureError

from .apps import batching, deadletters, middleware, ordering, policies
from .apps.common import Tick, poison_key
from .conftest import Spawn
from .harness import (
    APPS,
    count,
    entries,
    equal,
    pending,
    pending_ids,
    process_env,
    recorded,
    results,
    runnel,
    send_and_close,
    seqs_per_key,
    wait_for,
)


async def test_quickstart_worker_processes_an_order_sent_with_the_cli(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    worker = spawn("quickstart", env={"PYTHONUNBUFFERED": None})
    await wait_for(
        lambda: len(worker.acquired("orders")) == 16, "all 16 partitions acquired", workers=[worker]
    )
    payload = '{"order_id": 1, "created_at": "2020-07-21T22:09:37Z", "amount": 99}'
    sent = runnel(
        "send",
        "tests.integration.engine.apps.quickstart:orders",
        payload,
        "--redis-url",
        redis_url,
        env=process_env(app_name, redis_url),
    )
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"sent 1 event to {app_name}.orders partition ")

    await wait_for(
        lambda: recorded(client, app_name, "seen"), "the order processed", workers=[worker]
    )
    # The print shows while the worker runs (stdout is a file here, as under Docker or
    # systemd, where Python would otherwise keep it in its buffer until the process ends).
    await wait_for(
        lambda: worker.stdout().split() == ["99"], "the print on stdout", workers=[worker]
    )
    assert await worker.stop() == 0
    (seen,) = await results(client, app_name, "seen")
    assert seen["order_id"] == 1
    assert seen["amount"] == 99
    assert seen["created_at"] == "2020-07-21T22:09:37+00:00"
    assert seen["pid"] == worker.pid
    assert worker.stdout().split() == ["99"]  # the seed's print(order.amount)


async def test_ten_thousand_keyed_events_are_each_processed_once_in_per_key_order(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    keys = 50
    events = [Tick(key=f"k{i % keys}", seq=i // keys) for i in range(10_000)]
    try:
        ids = await ticks.send(*events[:5_000])
        worker = spawn("ordering")
        for start in range(5_000, 10_000, 500):  # the rest while the worker runs
            ids += await ticks.send(*events[start : start + 500])
        await wait_for(
            lambda: recorded(client, app_name, "seen", 10_000),
            "10k events processed",
            within=60,
            workers=[worker],
        )
    finally:
        await app.close()
    assert await worker.stop() == 0

    seen = await results(client, app_name, "seen")
    assert len(seen) == 10_000
    # Each once (entry ids are unique per partition only, so name events by both).
    sent = Counter((ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True))
    assert Counter((s["partition"], s["id"]) for s in seen) == sent
    assert max(sent.values()) == 1
    per_key = seqs_per_key(seen)
    assert len(per_key) == keys
    assert all(seqs == list(range(10_000 // keys)) for seqs in per_key.values())
    assert {s["partition"] for s in seen} == set(range(ordering.PARTITIONS))
    assert await pending(client, ticks, "proc") == 0


async def poison(client: Redis, app_name: str, *ticks: str) -> None:
    """Make the test apps' processors fail on these ``key:seq`` ticks."""
    await client.sadd(poison_key(app_name), *ticks)


async def test_halt_exits_non_zero_keeping_the_failed_entry_and_a_restart_resumes_there(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app = policies.build(app_name, redis_url)
    stream = app.streams["halt"]
    await poison(client, app_name, "k0:3")
    try:
        ids = await stream.send(*[Tick(key="k0", seq=i) for i in range(6)])
        busy = await stream.send(*[Tick(key="k1", seq=i) for i in range(300)])  # partition 1
    finally:
        await app.close()
    worker = spawn("policies", processors=["halting"])

    assert await worker.exit_code(within=30) == 1
    seen = await results(client, app_name, "seen")
    assert [s["seq"] for s in seen if s["key"] == "k0"] == [0, 1, 2]
    critical = worker.messages("critical")
    assert any("halting worker" in m and "poisoned tick k0:3" in m for m in critical), critical
    errors = [r for r in worker.logs() if r.get("level") == "error"]
    assert any("ValueError: poisoned tick k0:3" in r.get("exception", "") for r in errors)
    # The failed entry stays pending (first in line for the next worker); earlier ones are acked.
    still = await pending_ids(client, stream, "halting", 0)
    assert still[0] == ids[3]
    assert not set(still) & set(ids[:3])
    assert await client.exists(stream.keys.lock("halting", 0)) == 0  # released on the way out
    # The other partition was stopped gracefully: what it processed was acknowledged.
    done_in_1 = {s["id"] for s in seen if s["key"] == "k1"}
    assert not done_in_1 & {i.decode() for i in await pending_ids(client, stream, "halting", 1)}

    # Fix the cause and restart: processing resumes at the failed entry, nothing runs twice.
    await client.delete(poison_key(app_name))
    again = spawn("policies", processors=["halting"])
    await wait_for(lambda: recorded(client, app_name, "seen", 306), "the rest", workers=[again])
    await wait_for(lambda: equal(pending(client, stream, "halting"), 0), "acked", workers=[again])
    assert await again.stop() == 0
    seen = await results(client, app_name, "seen")
    assert [s["seq"] for s in seen if s["key"] == "k0"] == list(range(6))
    assert [s["seq"] for s in seen if s["key"] == "k1"] == list(range(300))
    assert [s["id"] for s in seen if s["key"] == "k1"] == [i.decode() for i in busy]


async def test_quarantine_stops_one_partition_until_cleared_with_the_cli(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app = policies.build(app_name, redis_url)
    stream = app.streams["quarantine"]
    await poison(client, app_name, "k0:2")
    ids = await send_and_close(app, stream, *[Tick(key=f"k{i % 2}", seq=i // 2) for i in range(10)])
    worker = spawn("policies", processors=["quarantining"])
    env = process_env(app_name, redis_url)
    ref = "tests.integration.engine.apps.policies:quarantining"

    async def seqs(key: str) -> list[int]:
        return [s["seq"] for s in await results(client, app_name, "seen") if s["key"] == key]

    async def listed() -> list[dict[str, Any]]:
        shown = runnel("quarantine", "list", ref, "--redis-url", redis_url, env=env)
        assert shown.returncode == 0, shown.stderr
        return [json.loads(line) for line in shown.stdout.splitlines()]

    await wait_for(
        lambda: client.hexists(stream.keys.quarantine("quarantining"), "0"),
        "quarantine",
        workers=[worker],
    )
    await wait_for(lambda: equal(seqs("k1"), [0, 1, 2, 3, 4]), "partition 1 done", workers=[worker])
    (record,) = await listed()
    assert record["partition"] == 0
    assert record["entry_id"] == ids[4].decode()
    assert record["error_type"] == "ValueError"
    assert record["error"] == "poisoned tick k0:2"
    assert await seqs("k0") == [0, 1]
    assert worker.running()

    # The quarantine is durable: a restarted worker leaves the partition alone, not the other.
    assert await worker.stop() == 0
    worker = spawn("policies", processors=["quarantining"])
    await wait_for(
        lambda: "partition quarantine.0 is quarantined: not processing it" in worker.messages(),
        "the quarantine seen on restart",
        workers=[worker],
    )
    app = policies.build(app_name, redis_url)
    await send_and_close(
        app, app.streams["quarantine"], Tick(key="k0", seq=5), Tick(key="k1", seq=5)
    )
    await wait_for(
        lambda: equal(seqs("k1"), list(range(6))), "partition 1 goes on", workers=[worker]
    )
    assert await seqs("k0") == [0, 1]

    # Fix the cause, then clear: the partition resumes from the failed entry, in order.
    await client.delete(poison_key(app_name))
    cleared = runnel("quarantine", "clear", ref, "0", "--redis-url", redis_url, env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.strip() == "cleared the quarantine of quarantining partition 0"
    await wait_for(
        lambda: equal(seqs("k0"), list(range(6))), "partition 0 resumed", workers=[worker]
    )
    assert await listed() == []
    assert await worker.stop() == 0
    assert await seqs("k1") == list(range(6))
    assert await pending(client, stream, "quarantining") == 0


async def test_ignore_acknowledges_the_failed_entries_and_keeps_going(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app = policies.build(app_name, redis_url)
    stream = app.streams["ignore"]
    await poison(client, app_name, "k0:0", "k0:3", "k1:4")
    await send_and_close(app, stream, *[Tick(key=f"k{i % 2}", seq=i // 2) for i in range(12)])
    worker = spawn("policies", processors=["ignoring"])

    await wait_for(
        lambda: recorded(client, app_name, "seen", 9), "9 events processed", workers=[worker]
    )
    await wait_for(
        lambda: equal(pending(client, stream, "ignoring"), 0), "all acked", workers=[worker]
    )
    assert await worker.stop() == 0
    seen = await results(client, app_name, "seen")
    assert [s["seq"] for s in seen if s["key"] == "k0"] == [1, 2, 4, 5]
    assert [s["seq"] for s in seen if s["key"] == "k1"] == [0, 1, 2, 3, 5]
    failures = [m for m in worker.messages("error") if "policy ignore" in m]
    assert len(failures) == 3


async def test_a_failed_and_a_corrupt_entry_are_dead_lettered_with_their_fields_and_error(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = deadletters.build(app_name, redis_url)
    await poison(client, app_name, "k0:1")
    try:
        ids = await ticks.send(*[Tick(key="k0", seq=i) for i in range(3)])
        ids += await ticks.send(Tick(key="k1", seq=0))
    finally:
        await app.close()
    # Garbage written behind runnel's back, straight into partition 1.
    corrupt = await client.xadd(ticks.keys.stream(1), {"data": b"\xff{not json", "extra": "x"})
    assert isinstance(corrupt, bytes)
    worker = spawn("deadletters")
    sink = app.streams["ticks.dead"]

    async def dead() -> list[tuple[bytes, dict[bytes, bytes]]]:
        rows = []
        for n in range(sink.partition_count):
            rows += await entries(client, sink.keys.stream(n))
        return rows

    await wait_for(lambda: equal(_count(dead()), 2), "two dead letters", workers=[worker])
    await wait_for(
        lambda: recorded(client, app_name, "seen", 3), "the rest processed", workers=[worker]
    )
    await wait_for(lambda: equal(pending(client, ticks, "proc"), 0), "all acked", workers=[worker])
    assert await worker.stop() == 0

    assert sorted((s["key"], s["seq"]) for s in await results(client, app_name, "seen")) == [
        ("k0", 0),
        ("k0", 2),
        ("k1", 0),
    ]
    # Entry ids are unique per partition only: name each by (partition, id).
    by_id = {(f[b"__error_partition"], f[b"__error_id"]): f for _, f in await dead()}
    assert set(by_id) == {(b"0", ids[1]), (b"1", corrupt)}
    failed = by_id[b"0", ids[1]]
    assert failed[b"data"] == b'{"key":"k0","seq":1}'
    assert failed[b"__error_type"] == b"KeyError"
    assert b"no such thing as k0:1" in failed[b"__error_message"]
    assert failed[b"__error_stream"] == b"ticks"
    assert failed[b"__error_partition"] == b"0"
    assert failed[b"__error_processor"] == b"proc"
    assert failed[b"__error_time"]
    garbage = by_id[b"1", corrupt]
    assert garbage[b"data"] == b"\xff{not json"  # the raw bytes, kept
    assert garbage[b"extra"] == b"x"
    assert garbage[b"__error_type"] == b"DecodeError"
    # A dead letter from source partition n goes to sink partition n.
    assert [len(await entries(client, sink.keys.stream(n))) for n in range(2)] == [1, 1]


async def _count(rows: Awaitable[Sized]) -> int:
    return len(await rows)


async def test_take_ten_within_one_second_batches_35_events_as_10_10_10_5(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = batching.build(app_name, redis_url)
    worker = spawn("batching")
    await wait_for(lambda: worker.acquired("ticks") == {0}, "partition acquired", workers=[worker])
    try:
        await ticks.send(*[Tick(key="k", seq=i) for i in range(35)])  # all at once
    finally:
        await app.close()
    await wait_for(lambda: recorded(client, app_name, "batch", 4), "four batches", workers=[worker])
    await wait_for(
        lambda: equal(pending(client, ticks, "batches"), 0), "all acked", workers=[worker]
    )
    assert await worker.stop() == 0
    batches = [b["seqs"] for b in await results(client, app_name, "batch")]
    assert [len(b) for b in batches] == [10, 10, 10, 5]
    assert [seq for b in batches for seq in b] == list(range(35))


async def test_middleware_runs_in_order_and_finalises_across_a_failure(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = middleware.build(app_name, redis_url)
    await poison(client, app_name, "k:0")
    await send_and_close(app, ticks, Tick(key="k", seq=0), Tick(key="k", seq=1))
    worker = spawn("middleware")

    async def steps() -> list[str]:
        return [r["step"] for r in await results(client, app_name, "log")]

    await wait_for(lambda: equal(_count(steps()), 14), "both events through", workers=[worker])
    await wait_for(lambda: equal(pending(client, ticks, "proc"), 0), "all acked", workers=[worker])
    assert await worker.stop() == 0
    assert await steps() == [
        "start",
        "a:in",
        "b:in",
        "proc:0",
        "b:exit",  # the failure is thrown into the innermost yield first
        "b:finally",
        "a:exit",
        "a:finally",
        "start",  # the processor restarts only once the chain was finalised
        "a:in",
        "b:in",
        "proc:1",
        "b:finally",  # finishing an item finalises it, innermost first
        "a:finally",
    ]


async def test_a_timer_fires_repeatedly_never_overlaps_and_survives_a_failure(
    spawn: Spawn, client: Redis, app_name: str
) -> None:
    worker = spawn("timers")

    async def steps() -> list[tuple[str, int]]:
        return [(r["step"], r["run"]) for r in await results(client, app_name, "log")]

    async def finished(runs: int) -> bool:
        return ("end", runs) in await steps()

    await wait_for(lambda: finished(6), "six timer runs", workers=[worker])
    assert await worker.stop() == 0
    log = await steps()
    # Runs are numbered in start order; each one ends before the next starts (run 1 raised,
    # run 2 overran its interval), and the timer kept firing after the failure.
    runs = max(run for _, run in log)
    assert runs >= 6
    expected = [("start", 1)]
    for run in range(2, runs + 1):
        expected += [("start", run), ("end", run)]
    # The stop may cancel the last run before it ends; nothing else is missing or extra.
    assert log in (expected, expected[:-1])
    failures = [r for r in worker.logs() if r.get("level") == "error"]
    assert len(failures) == 1
    assert "background task ticker failed" in failures[0]["message"]
    assert "the first run of ticker fails" in failures[0]["exception"]


async def test_leader_only_ticks_are_claimed_once_each_across_two_workers(
    spawn: Spawn, client: Redis, app_name: str
) -> None:
    first = spawn("leaders")
    second = spawn("leaders")
    both = [first, second]
    await wait_for(lambda: recorded(client, app_name, "leader_tick", 6), "six ticks", workers=both)
    await wait_for(
        lambda: recorded(client, app_name, "leader_cron", 2), "two cron runs", workers=both
    )
    ticks = await results(client, app_name, "leader_tick")
    leader = first if ticks[-1]["pid"] == first.pid else second
    follower = second if leader is first else first

    # The leader leaves gracefully: the other worker takes over, still one run per tick.
    assert await leader.stop() == 0
    await wait_for(
        lambda: _any_by(client, app_name, "leader_tick", follower.pid),
        "a tick on the new leader",
        workers=[follower],
    )
    assert await follower.stop() == 0
    for task in ("leader_tick", "leader_cron"):
        slots = Counter(r["slot"] for r in await results(client, app_name, task))
        assert "" not in slots
        assert [s for s, n in slots.items() if n > 1] == [], f"{task} ran a tick twice"
    pids = {r["pid"] for r in await results(client, app_name, "leader_tick")}
    assert follower.pid in pids


async def _any_by(client: Redis, app_name: str, kind: str, pid: int) -> bool:
    return any(r["pid"] == pid for r in await results(client, app_name, kind))


async def test_sigterm_drains_gracefully_and_a_new_worker_finishes_with_zero_duplicates(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    events = [Tick(key=f"k{i % 20}", seq=i // 20) for i in range(300)]
    ids = await send_and_close(app, ticks, *events)
    slow = {"ENGINE_TEST_DELAY": "0.05"}  # ~50 ms of work per event
    first = spawn("ordering", env=slow)
    await wait_for(lambda: recorded(client, app_name, "seen", 60), "60 events", workers=[first])
    first.send_signal(signal.SIGTERM)
    assert await first.exit_code(within=5 + 10) == 0  # grace_period=5, plus start-up slack
    done_by_first = await count(client, app_name, "seen")
    assert 60 <= done_by_first < 300  # it really stopped mid-stream

    second = spawn("ordering", env=slow)
    await wait_for(
        lambda: recorded(client, app_name, "seen", 300),
        "all 300 events",
        within=30,
        workers=[second],
    )
    await wait_for(lambda: equal(pending(client, ticks, "proc"), 0), "all acked", workers=[second])
    assert await second.stop() == 0

    seen = await results(client, app_name, "seen")
    sent = Counter((ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True))
    processed = Counter((s["partition"], s["id"]) for s in seen)
    assert [k for k, n in processed.items() if n > 1] == []  # zero duplicates
    assert processed == sent  # and nothing lost
    assert {s["pid"] for s in seen} == {first.pid, second.pid}
    per_key = seqs_per_key(seen)
    assert all(seqs == list(range(15)) for seqs in per_key.values())
    assert not [m for m in first.messages("warning") if "grace_period" in m]


async def test_a_full_lossless_partition_refuses_sends_and_drops_nothing_unacknowledged(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url, partition_size=50)
    key = ticks.keys.stream(ticks.partition_for(Tick(key="k", seq=0)))
    accepted: list[bytes] = []
    try:
        # No worker yet: nothing is acknowledged, so the cap may trim nothing.
        accepted += await ticks.send(*[Tick(key="k", seq=i) for i in range(45)])
        with pytest.raises(BackpressureError, match=r"lossless cap.*nothing was written"):
            await ticks.send(*[Tick(key="k", seq=45 + i) for i in range(10)])
        assert await client.xlen(key) == 45  # the refused batch left no trace
        accepted += await ticks.send(*[Tick(key="k", seq=45 + i) for i in range(5)])
        with pytest.raises(BackpressureError, match="proc"):
            await ticks.send(Tick(key="k", seq=50))
        assert await client.xlen(key) == 50

        worker = spawn("ordering", env={"ENGINE_TEST_PARTITION_SIZE": "50"})
        await wait_for(
            lambda: recorded(client, app_name, "seen", 50), "50 events", workers=[worker]
        )
        await wait_for(
            lambda: equal(pending(client, ticks, "proc"), 0), "all acked", workers=[worker]
        )
        # Acknowledged entries make room again.
        accepted += await ticks.send(*[Tick(key="k", seq=50 + i) for i in range(20)])
        await wait_for(
            lambda: recorded(client, app_name, "seen", 70), "70 events", workers=[worker]
        )
        await wait_for(
            lambda: equal(pending(client, ticks, "proc"), 0), "all acked", workers=[worker]
        )
    finally:
        await app.close()
    assert await worker.stop() == 0
    seen = await results(client, app_name, "seen")
    assert [s["id"] for s in seen] == [i.decode() for i in accepted]  # all, once, in order
    assert [s["seq"] for s in seen] == list(range(70))
    assert await client.xlen(key) <= 50
    assert await ticks.lost() == 0


async def test_an_unknown_processor_is_refused_listing_the_available_ones(
    app_name: str, redis_url: str
) -> None:
    done = runnel(
        "worker",
        "tests.integration.engine.apps.policies:app",
        "--processors",
        "nope,ignoring",
        "--redis-url",
        redis_url,
        env=process_env(app_name, redis_url),
    )
    assert done.returncode != 0
    assert "unknown processor(s) nope; available: halting, ignoring, quarantining" in done.stderr


async def test_worker_logs_never_show_the_redis_password(
    spawn: Spawn, app_name: str, password_redis_url: str
) -> None:
    password = password_redis_url.split(":")[2].split("@")[0]
    url = password_redis_url
    worker = spawn("ordering", url=url)
    await wait_for(
        lambda: len(worker.acquired("ticks")) == ordering.PARTITIONS, "ready", workers=[worker]
    )
    assert await worker.stop() == 0
    started = [m for m in worker.messages() if "starting" in m]
    assert started
    assert "***@127.0.0.1" in started[0]

    refused = runnel(
        "worker",
        f"{APPS}.ordering:app",
        "--processors",
        "nope",
        "--redis-url",
        url,
        env=process_env(app_name, url),
    )
    assert refused.returncode != 0
    assert "available: proc" in refused.stderr

    wrong = url.replace(password, f"wrong-{password}")
    denied = spawn("ordering", url=wrong)
    assert await denied.exit_code(within=30) == 1
    for text in (
        worker.stderr(),
        worker.stdout(),
        refused.stderr,
        refused.stdout,
        denied.stderr(),
        denied.stdout(),
    ):
        assert password not in text
    # Refused at start-up: one clear line, logged in JSON too, not a traceback.
    assert "invalid username-password pair" in denied.stderr()
    assert "Traceback" not in denied.stderr()
    failed = [r for r in denied.logs() if "worker failed" in str(r.get("message"))]
    assert [r["level"] for r in failed] == ["critical"]


async def test_a_join_and_a_graceful_leave_mid_stream_process_everything_exactly_once(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    events = [Tick(key=f"k{i % 40}", seq=i // 40) for i in range(2_000)]
    work = {"ENGINE_TEST_DELAY": "0.01"}
    try:
        ids = await ticks.send(*events[:1_000])
        first = spawn("ordering", env=work)
        await wait_for(
            lambda: recorded(client, app_name, "seen", 200), "200 events", workers=[first]
        )
        second = spawn("ordering", env=work)  # joins mid-stream
        ids += await ticks.send(*events[1_000:])
        await wait_for(
            lambda: any("starting" in m for m in second.messages()), "the joiner", workers=[second]
        )
        await wait_for(
            lambda: recorded(client, app_name, "seen", 600), "600 events", workers=[first, second]
        )
        assert await first.stop() == 0  # leaves: hands everything to the second
        await wait_for(
            lambda: recorded(client, app_name, "seen", 2_000), "all", within=40, workers=[second]
        )
        await wait_for(lambda: equal(pending(client, ticks, "proc"), 0), "acked", workers=[second])
    finally:
        await app.close()
    assert await second.stop() == 0
    seen = await results(client, app_name, "seen")
    sent = Counter((ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True))
    processed = Counter((s["partition"], s["id"]) for s in seen)
    assert [k for k, n in processed.items() if n > 1] == []
    assert processed == sent
    per_key = seqs_per_key(seen)
    assert all(seqs == list(range(50)) for seqs in per_key.values())
    assert {s["pid"] for s in seen} == {first.pid, second.pid}


async def test_a_killed_workers_partitions_are_processed_by_the_next_without_loss(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    events = [Tick(key=f"k{i % 16}", seq=i // 16) for i in range(480)]
    work = {"ENGINE_TEST_DELAY": "0.02"}
    ids = await send_and_close(app, ticks, *events)
    first = spawn("ordering", env=work)
    await wait_for(lambda: recorded(client, app_name, "seen", 100), "100 events", workers=[first])
    first.send_signal(signal.SIGKILL)
    assert await first.exit_code(within=10) == -signal.SIGKILL
    second = spawn("ordering", env=work)
    await wait_for(
        lambda: equal(pending(client, ticks, "proc"), 0),
        "everything acked",
        within=40,
        workers=[second],
    )
    assert await second.stop() == 0
    seen = await results(client, app_name, "seen")
    sent = {(ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True)}
    processed = Counter((s["partition"], s["id"]) for s in seen)
    assert set(processed) == sent  # at least once: nothing lost
    # Only what the killed worker had in flight or buffered may run twice.
    assert sum(n - 1 for n in processed.values()) <= ordering.PARTITIONS * 9
    per_key = seqs_per_key(seen, first_only=True)
    assert all(seqs == list(range(30)) for seqs in per_key.values())  # first deliveries in order


async def test_an_overrunning_event_is_cancelled_after_the_grace_period_and_stays_pending(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    (entry,) = await send_and_close(app, ticks, Tick(key="k", seq=0))
    worker = spawn("ordering", env={"ENGINE_TEST_DELAY": "600", "RUNNEL_DEFAULT_GRACE_PERIOD": "1"})
    await wait_for(lambda: recorded(client, app_name, "began"), "the event begun", workers=[worker])
    assert await worker.stop(within=15) == 0
    assert any(
        "did not finish its in-flight work within grace_period=1.0s" in m
        for m in worker.messages("warning")
    )
    assert await count(client, app_name, "seen") == 0
    partition = ticks.partition_for(Tick(key="k", seq=0))
    assert await pending_ids(client, ticks, "proc", partition) == [entry]  # redelivered later


async def test_a_second_sigterm_exits_at_once_with_code_130(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    (entry,) = await send_and_close(app, ticks, Tick(key="k", seq=0))
    worker = spawn(
        "ordering", env={"ENGINE_TEST_DELAY": "600", "RUNNEL_DEFAULT_GRACE_PERIOD": "600"}
    )
    await wait_for(lambda: recorded(client, app_name, "began"), "the event begun", workers=[worker])
    worker.send_signal(signal.SIGTERM)
    await wait_for(
        lambda: "received SIGTERM: stopping gracefully" in worker.messages(),
        "the first SIGTERM handled",
        workers=[worker],
    )
    worker.send_signal(signal.SIGTERM)
    assert await worker.exit_code(within=15) == 130
    assert "received SIGTERM again: exiting now" in worker.messages("warning")
    partition = ticks.partition_for(Tick(key="k", seq=0))
    assert await pending_ids(client, ticks, "proc", partition) == [entry]


async def test_a_worker_paused_past_its_leases_loses_nothing_and_reorders_nothing(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    events = [Tick(key=f"k{i % 16}", seq=i // 16) for i in range(480)]
    work = {"ENGINE_TEST_DELAY": "0.03"}
    ids = await send_and_close(app, ticks, *events)
    paused = spawn("ordering", env=work)
    await wait_for(lambda: recorded(client, app_name, "seen", 40), "40 events", workers=[paused])
    other = spawn("ordering", env=work)
    await wait_for(
        lambda: any("starting" in m for m in other.messages()), "started", workers=[other]
    )
    paused.send_signal(signal.SIGSTOP)  # past lock_expiry=2: its leases lapse
    try:
        await wait_for(
            lambda: len(other.acquired("ticks")) == ordering.PARTITIONS,
            "the other worker owning every partition",
            workers=[other],
        )
        await wait_for(
            lambda: recorded(client, app_name, "seen", 200), "200 events", workers=[other]
        )
    finally:
        continued_at = time.time()
        paused.send_signal(signal.SIGCONT)
    both = [other, paused]
    await wait_for(
        lambda: equal(pending(client, ticks, "proc"), 0), "all acked", within=40, workers=both
    )
    await wait_for(lambda: recorded(client, app_name, "seen", 480), "all", workers=both)
    assert await other.stop() == 0
    assert await paused.stop() == 0

    began = await results(client, app_name, "began")
    # Epochs count per partition: a lease is named by both. Times, not the order of the
    # records: a record of an event handed out before the pause can reach Redis after it.
    old_leases = {
        (b["partition"], b["epoch"])
        for b in began
        if b["pid"] == paused.pid and b["at"] < continued_at
    }
    # Fencing: once resumed, the paused worker handed no event to user code under a lease
    # it held before the pause (it may take partitions again, under new leases). The one
    # case the product cannot prevent: the process is single-threaded, so at most one event
    # can be between the lease check and user code when SIGSTOP lands.
    late = [
        b
        for b in began
        if b["pid"] == paused.pid
        and (b["partition"], b["epoch"]) in old_leases
        and b["at"] >= continued_at
    ]
    assert len(late) <= 1, late

    seen = await results(client, app_name, "seen")
    sent = {(ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True)}
    processed = Counter((s["partition"], s["id"]) for s in seen)
    assert set(processed) == sent  # nothing lost
    # Only what the paused worker processed under its old leases (acks refused) ran twice.
    under_old_leases = {
        (s["partition"], s["id"])
        for s in seen
        if s["pid"] == paused.pid and (s["partition"], s["epoch"]) in old_leases
    }
    assert {k for k, n in processed.items() if n > 1} <= under_old_leases
    # Ignoring those repeats, every key was processed in order.
    firsts: dict[str, list[int]] = defaultdict(list)
    for s in seen:
        if s["seq"] not in firsts[s["key"]]:
            firsts[s["key"]].append(s["seq"])
    assert all(seqs == list(range(30)) for seqs in firsts.values())


async def test_a_lone_worker_paused_past_its_leases_resumes_every_partition(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    events = [Tick(key=f"k{i % 16}", seq=i // 16) for i in range(320)]
    ids = await send_and_close(app, ticks, *events)
    worker = spawn("ordering", env={"ENGINE_TEST_DELAY": "0.02"})
    await wait_for(lambda: recorded(client, app_name, "seen", 40), "40 events", workers=[worker])
    worker.send_signal(signal.SIGSTOP)
    try:
        # Frozen until every lease (lock_expiry=2) has lapsed in Redis.
        await wait_for(
            lambda: equal(client.exists(*(ticks.keys.lock("proc", n) for n in range(8))), 0),
            "every lease lapsed",
        )
    finally:
        worker.send_signal(signal.SIGCONT)
    await wait_for(
        lambda: equal(pending(client, ticks, "proc"), 0), "all acked", within=30, workers=[worker]
    )
    await wait_for(lambda: recorded(client, app_name, "seen", 320), "all", workers=[worker])
    assert await worker.stop() == 0
    seen = await results(client, app_name, "seen")
    sent = {(ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True)}
    assert {(s["partition"], s["id"]) for s in seen} == sent


async def test_a_redis_that_lost_its_data_is_reported_and_new_events_are_processed(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    app, ticks = ordering.build(app_name, redis_url)
    try:
        worker = spawn("ordering")
        await ticks.send(*[Tick(key=f"k{i}", seq=0) for i in range(40)])
        await wait_for(
            lambda: recorded(client, app_name, "seen", 40), "the first 40", workers=[worker]
        )
        # As after a restart without persistence: every key of the app is gone at once
        # (streams, groups, leases, epochs, membership, metadata); the results stay.
        gone = [k async for k in client.scan_iter(match=f"__*:{app_name}.*")]
        gone += [k async for k in client.scan_iter(match=f"__lead:{app_name}")]
        assert any(k.startswith(b"__meta:") for k in gone)
        await client.delete(*gone)
        await ticks.send(*[Tick(key=f"k{i}", seq=1) for i in range(40)])
        await wait_for(
            lambda: recorded(client, app_name, "seen", 80),
            "the 40 sent after the reset",
            within=60,
            workers=[worker],
        )
    finally:
        await app.close()
    assert await worker.stop() == 0
    critical = worker.messages("critical")
    assert len(critical) == 1, critical
    assert f"lost the data of stream {app_name}.ticks" in critical[0]
    assert any("writes no append-only file" in m for m in worker.messages("warning"))
    seen = await results(client, app_name, "seen")
    per_key = seqs_per_key(seen)
    assert per_key == {f"k{i}": [0, 1] for i in range(40)}  # each once, in order
    assert await pending(client, ticks, "proc") == 0
