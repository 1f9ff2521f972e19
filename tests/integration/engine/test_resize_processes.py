"""Growing a stream online with ``runnel stream resize`` while real workers and a sender run.

Two ``runnel worker`` processes process a 4-partition stream; a sender process, started
before the resize, keeps sending rounds of keyed ticks (numbered per key). Mid-stream the
stream grows to 8 partitions through the CLI. Every tick sent must be processed exactly
once, and every key in send order: lost, duplicated and reordered are all 0.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from .apps.resizing import stop_key
from .conftest import Spawn
from .harness import WorkerProcess, count, process_env, results, runnel, wait_for

pytestmark = pytest.mark.integration

APP = "tests.integration.engine.apps.resizing"


def order_report(seen: list[dict[str, Any]], rounds: int, keys: int) -> dict[str, int]:
    """Sent, lost, duplicated and reordered ticks (a tick handled before an earlier one of
    its key counts as reordered)."""
    handled = Counter((r["key"], r["seq"]) for r in seen)
    sent = {(f"k{k}", s) for k in range(keys) for s in range(rounds)}
    last: dict[str, int] = {}
    reordered = 0
    for r in seen:
        if r["seq"] < last.get(r["key"], -1):
            reordered += 1
        last[r["key"]] = max(r["seq"], last.get(r["key"], -1))
    return {
        "sent": len(sent),
        "lost": len(sent - handled.keys()),
        "duplicated": sum(n - 1 for n in handled.values() if n > 1),
        "reordered": reordered,
        "unexpected": len(handled.keys() - sent),
    }


async def test_growing_a_stream_mid_stream_loses_duplicates_and_reorders_nothing(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str, tmp_path: Path
) -> None:
    env = process_env(app_name, redis_url, {"ENGINE_TEST_DELAY": "0.005"})
    workers = [spawn("resizing", env={"ENGINE_TEST_DELAY": "0.005"}) for _ in range(2)]
    sender = WorkerProcess(
        [sys.executable, "-m", APP],
        {**env, "ENGINE_TEST_KEYS": "16", "ENGINE_TEST_SEND_PAUSE": "0.01"},
        tmp_path,
        "sender",
    )
    try:
        await wait_for(
            lambda: _at_least(client, app_name, "seen", 300),
            "300 ticks processed before the resize",
            within=30,
            workers=workers,
        )
        done = runnel(
            "stream", "resize", f"{APP}:app", "ticks", "--partitions", "8", "--yes", env=env
        )
        assert done.returncode == 0, done.stderr
        assert "grew stream ticks from 4 to 8 partitions" in done.stdout
        await wait_for(
            lambda: _sender_routes_with(client, app_name, 8),
            "the sender started before the resize to route with 8 partitions",
            within=20,
            workers=workers,
        )
        await wait_for(
            lambda: _in_new_partitions(client, app_name, 100),
            "100 ticks processed from the new partitions",
            within=30,
            workers=workers,
        )
    finally:
        await client.set(stop_key(app_name), b"1")
    assert await sender.exit_code(within=30) == 0, sender.tail()
    (summary,) = await results(client, app_name, "sent")
    rounds, keys = summary["rounds"], summary["keys"]
    await wait_for(
        lambda: _at_least(client, app_name, "seen", rounds * keys),
        f"all {rounds * keys} ticks processed",
        within=30,
        workers=workers,
    )
    seen = await results(client, app_name, "seen")
    report = order_report(seen, rounds, keys)
    print(f"resize 4 -> 8 under load: {report}")  # the figure for the record (-s)
    assert report == {
        "sent": rounds * keys,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
        "unexpected": 0,
    }
    for worker in workers:
        assert await worker.stop() == 0
    assert {r["partition"] for r in seen} == set(range(8))


async def _at_least(client: Redis, app_name: str, kind: str, n: int) -> bool:
    return await count(client, app_name, kind) >= n


async def _sender_routes_with(client: Redis, app_name: str, partitions: int) -> bool:
    return any(r["partitions"] == partitions for r in await results(client, app_name, "progress"))


async def _in_new_partitions(client: Redis, app_name: str, n: int) -> bool:
    seen = await results(client, app_name, "seen")
    return sum(1 for r in seen if r["partition"] >= 4) >= n
