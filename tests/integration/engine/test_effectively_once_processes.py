"""Effectively-once processing with real ``runnel worker`` processes and real signals.

The pipeline (``apps/totals.py``): orders -> per-customer totals in keyed state -> a stream
of updated totals. Workers are SIGKILLed and SIGSTOPped past their lease while they
process; every order must still have exactly one committed output, every total must be
the exact running sum, each customer's outputs must come in order, and the committed
state must hold each customer's exact total. A sender killed mid-send and run again with
the same idempotency key must leave no duplicate entries.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from .apps import totals as totals_app
from .conftest import Spawn
from .harness import REPO, WorkerProcess, entries, pending, process_env, runnel, wait_for

KILL_LOOP_ROUNDS = 6


@dataclass
class Audit:
    """What the output stream and the state hold, checked against the orders sent."""

    inputs: int
    committed: int
    duplicates: int
    missing: int
    wrong_totals: int
    out_of_order: int
    state_exact: bool

    def line(self) -> str:
        return json.dumps(self.__dict__)


def orders(count: int, customers: int = 24) -> list[totals_app.Order]:
    return [
        totals_app.Order(customer=f"c{i % customers}", seq=i // customers, amount=1 + i % 9)
        for i in range(count)
    ]


async def audit(
    client: Redis, app_name: str, sent: list[totals_app.Order], redis_url: str
) -> Audit:
    """Read every committed output and the state hashes, and count what is wrong (the
    keys named in the layout of ``redis_url``: one server, or Redis Cluster)."""
    _, orders_stream, totals = totals_app.build(app_name, redis_url)
    outputs: list[totals_app.Total] = []
    for n in range(totals.partition_count):
        outputs += [totals.codec.decode(f) for _, f in await entries(client, totals.keys.stream(n))]
    seen: dict[tuple[str, int], int] = defaultdict(int)
    for t in outputs:
        seen[(t.customer, t.seq)] += 1
    expected_total: dict[tuple[str, int], int] = {}
    running: dict[str, int] = defaultdict(int)
    for order in sorted(sent, key=lambda o: o.seq):
        running[order.customer] += order.amount
        expected_total[(order.customer, order.seq)] = running[order.customer]
    by_customer: dict[str, list[int]] = defaultdict(list)
    for t in outputs:
        by_customer[t.customer].append(t.seq)
    state: dict[str, int] = {}
    for n in range(totals_app.PARTITIONS):
        raw = await client.hgetall(orders_stream.keys.state("running_totals", n))
        state.update({_text(k): int(v) for k, v in raw.items()})
    return Audit(
        inputs=len(sent),
        committed=len(outputs),
        duplicates=sum(c - 1 for c in seen.values() if c > 1),
        missing=sum(1 for k in expected_total if k not in seen),
        wrong_totals=sum(1 for t in outputs if expected_total.get((t.customer, t.seq)) != t.total),
        out_of_order=sum(1 for seqs in by_customer.values() if seqs != sorted(seqs)),
        state_exact=state == dict(running),
    )


async def send_orders(app_name: str, redis_url: str, sent: list[totals_app.Order]) -> None:
    app, stream, _ = totals_app.build(app_name, redis_url)
    try:
        for i in range(0, len(sent), 50):
            await stream.send(*sent[i : i + 50])
    finally:
        await app.close()


async def drained(client: Redis, app_name: str, count: int, redis_url: str) -> bool:
    _, stream, totals = totals_app.build(app_name, redis_url)
    if await pending(client, stream, "running_totals"):
        return False
    total = 0
    for n in range(totals.partition_count):
        total += int(await client.xlen(totals.keys.stream(n)))
    return total >= count


def assert_exact(result: Audit) -> None:
    assert result.committed == result.inputs, result.line()
    assert result.duplicates == 0, result.line()
    assert result.missing == 0, result.line()
    assert result.wrong_totals == 0, result.line()
    assert result.out_of_order == 0, result.line()
    assert result.state_exact, result.line()


async def test_sigkill_and_sigstop_past_the_lease_leave_exactly_one_output_per_order(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    env = {"ENGINE_TEST_DELAY": "0.01"}
    workers = [spawn("totals", env=env) for _ in range(3)]
    await wait_for(
        lambda: sum(len(w.acquired("orders")) for w in workers) >= 8,
        "the partitions acquired",
        workers=workers,
    )
    sent = orders(1200)
    sender = asyncio.create_task(send_orders(app_name, redis_url, sent))
    await wait_for(
        lambda: _outputs(client, app_name, 200, redis_url), "200 outputs", workers=workers
    )
    workers[0].send_signal(signal.SIGKILL)
    replacement = spawn("totals", env=env)
    await wait_for(
        lambda: _outputs(client, app_name, 500, redis_url), "500 outputs", workers=workers[1:]
    )
    stopped = workers[1]
    stopped.send_signal(signal.SIGSTOP)  # past the lease (2 s): its partitions move
    await wait_for(lambda: stopped.stopped(), "the worker stopped")
    await asyncio.sleep(4.0)  # the fault itself lasts this long: the lease runs out
    stopped.send_signal(signal.SIGCONT)  # its late commits must be refused by the fence
    await sender
    await wait_for(
        lambda: drained(client, app_name, len(sent), redis_url),
        "every order committed",
        within=90,
        workers=[workers[2], replacement],
    )
    result = await audit(client, app_name, sent, redis_url)
    print(f"effectively-once sigkill+sigstop: {result.line()}")
    assert_exact(result)
    # What an operator sees: `runnel state` lists the same exact totals.
    shown = runnel(
        "state",
        "tests.integration.engine.apps.totals:running_totals",
        "--redis-url",
        redis_url,
        env=process_env(app_name, redis_url),
    )
    assert shown.returncode == 0, shown.stderr
    listed = {(r := json.loads(line))["key"]: r["value"] for line in shown.stdout.splitlines()}
    expected: dict[str, int] = defaultdict(int)
    for order in sent:
        expected[order.customer] += order.amount
    assert listed == expected


async def _outputs(client: Redis, app_name: str, at_least: int, redis_url: str) -> bool:
    _, _, totals = totals_app.build(app_name, redis_url)
    total = 0
    for n in range(totals.partition_count):
        total += int(await client.xlen(totals.keys.stream(n)))
    return total >= at_least


@pytest.mark.slow
async def test_a_kill_loop_leaves_exactly_one_output_per_order(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    env = {"ENGINE_TEST_DELAY": "0.005"}
    live: list[WorkerProcess] = [spawn("totals", env=env) for _ in range(3)]
    sent = orders(6000, customers=64)
    sender = asyncio.create_task(send_orders(app_name, redis_url, sent))
    for round_ in range(KILL_LOOP_ROUNDS):
        goal = 700 * (round_ + 1)
        await wait_for(
            functools.partial(_outputs, client, app_name, goal, redis_url),
            f"{goal} outputs",
            within=60,
            workers=live,
        )
        victim = live.pop(round_ % len(live))
        victim.send_signal(signal.SIGKILL)
        live.append(spawn("totals", env=env))
    await sender
    await wait_for(
        lambda: drained(client, app_name, len(sent), redis_url),
        "every order committed",
        120,
        workers=live,
    )
    result = await audit(client, app_name, sent, redis_url)
    print(f"effectively-once kill loop ({KILL_LOOP_ROUNDS} SIGKILLs): {result.line()}")
    assert_exact(result)


async def test_a_sender_killed_mid_send_and_run_again_with_its_key_leaves_no_duplicates(
    client: Redis, app_name: str, redis_url: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps({"customer": f"c{i % 7}", "seq": i // 7, "amount": 1}) for i in range(20_000)
    ]
    source = tmp_path / "orders.jsonl"
    source.write_text("\n".join(lines) + "\n")
    argv = [
        sys.executable,
        "-m",
        "runnel",
        "sendmany",
        "tests.integration.engine.apps.totals:orders",
        str(source),
        "--chunk-size",
        "50",
        "--idempotency-key",
        "import-1",
        "--redis-url",
        redis_url,
    ]
    env = process_env(app_name, redis_url)
    first = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_for(
            lambda: _stored(client, app_name, redis_url, at_least=1000), "a part of the file sent"
        )
        first.send_signal(signal.SIGKILL)
    finally:
        await asyncio.wait_for(first.wait(), 30)
    partly = await _count(client, app_name, redis_url)
    assert 0 < partly < len(lines), "the sender must die mid-send for this test to mean anything"
    again = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await asyncio.wait_for(again.communicate(), 300)
    assert again.returncode == 0, errors.decode()
    stored = await _all_stored(client, app_name, redis_url)
    keys = [(o["customer"], o["seq"]) for o in stored]
    print(
        f"idempotent resend: {len(lines)} lines, {partly} stored before the kill, "
        f"{len(keys)} stored after the rerun, {len(keys) - len(set(keys))} duplicates"
    )
    assert len(keys) == len(set(keys)) == len(lines)


async def _count(client: Redis, app_name: str, redis_url: str) -> int:
    _, orders_stream, _ = totals_app.build(app_name, redis_url)
    return sum(
        [int(await client.xlen(orders_stream.keys.stream(n))) for n in range(totals_app.PARTITIONS)]
    )


async def _stored(client: Redis, app_name: str, redis_url: str, at_least: int) -> bool:
    return await _count(client, app_name, redis_url) >= at_least


async def _all_stored(client: Redis, app_name: str, redis_url: str) -> list[dict[str, Any]]:
    _, orders_stream, _ = totals_app.build(app_name, redis_url)
    found: list[dict[str, Any]] = []
    for n in range(totals_app.PARTITIONS):
        for _, fields in await entries(client, orders_stream.keys.stream(n)):
            found.append(orders_stream.codec.decode(fields).model_dump())
    return found


def _text(value: bytes | str) -> str:
    # Our client does not decode responses; redis-py's types allow str as well.
    return value.decode() if isinstance(value, bytes) else value
