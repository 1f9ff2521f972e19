"""Workers and senders on a Sentinel-managed primary, and a failover under load.

Once the worker is processing, the failover test kills the primary (SIGKILL) while a
sender sends and the worker processes, and counts every event: acknowledged sends that
were never processed (lost: replication is asynchronous, so what the replica had not
received when the primary died is gone), events processed twice (duplicated:
acknowledgements lost the same way, or a result recorded twice because its push was
retried) and keys whose first deliveries came out of order. Every event sent after the
failover must be processed exactly once: the worker and the sender follow the new
primary by themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from runnel.errors import BackendError
from tests.integration.engine.apps import ordering
from tests.integration.engine.apps.common import Tick
from tests.integration.engine.conftest import Spawn
from tests.integration.engine.harness import pending, recorded, results, wait_for
from tests.integration.engine.test_worker_processes import (
    test_ten_thousand_keyed_events_are_each_processed_once_in_per_key_order,
)
from tests.servers import stop_process
from tests.topologies import RunningSentinels

__all__ = ["test_ten_thousand_keyed_events_are_each_processed_once_in_per_key_order"]

REPORT = Path(os.environ.get("RUNNEL_FAILOVER_REPORT", ".faults/failover.json"))
KEYS = 20
BATCH = 20


def _count(sent: dict[tuple[str, int], int], seen: list[dict[str, Any]]) -> dict[str, int]:
    """Lost, duplicated and reordered events of ``seen`` against the acknowledged sends."""
    times = Counter((s["key"], s["seq"]) for s in seen)
    lost = sum(1 for event in sent if times[event] == 0)
    duplicated = sum(n - 1 for n in times.values() if n > 1)
    firsts: dict[str, list[int]] = {}
    done: set[tuple[str, int]] = set()
    for s in seen:
        event = (s["key"], s["seq"])
        if event not in done:
            done.add(event)
            firsts.setdefault(s["key"], []).append(s["seq"])
    reordered = sum(1 for seqs in firsts.values() for a, b in itertools.pairwise(seqs) if b < a)
    return {
        "acknowledged": len(sent),
        "processed": len(times),
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
    }


async def test_a_failover_under_load_is_followed_and_every_later_event_is_processed_once(
    spawn: Spawn, app_name: str, sentinels: RunningSentinels, client: Any
) -> None:
    url = sentinels.url
    app, ticks = ordering.build(app_name, url)
    old = sentinels.current_primary()
    sent: dict[tuple[str, int], int] = {}  # acknowledged sends -> batch number
    failed_batches = 0
    seq = 0
    after_failover: set[tuple[str, int]] = set()
    try:
        worker = spawn(
            "ordering",
            url=url,
            env={"ENGINE_TEST_DELAY": "0.001", "ENGINE_TEST_RESULTS_RETRY": "30"},
        )
        killed_at = None
        batch = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            events = [Tick(key=f"k{(seq + i) % KEYS}", seq=(seq + i) // KEYS) for i in range(BATCH)]
            seq += BATCH
            moved = killed_at is not None and sentinels.current_primary() != old
            try:
                await ticks.send(*events)
            except BackendError:
                failed_batches += 1  # unknown outcome: not counted as sent
                await asyncio.sleep(0.05)
            else:
                for e in events:
                    sent[(e.key, e.seq)] = batch
                    if moved:
                        after_failover.add((e.key, e.seq))
            batch += 1
            if batch >= 100 and killed_at is None and await recorded(client, app_name, "seen"):
                stop_process_now(sentinels)
                killed_at = time.monotonic()
            if len(after_failover) >= 2_000:
                break
            await asyncio.sleep(0.005)
        assert len(after_failover) >= 2_000, "the sender did not reach the new primary"
        assert sentinels.current_primary() != old

        async def caught_up() -> bool:
            seen = await results(client, app_name, "seen")
            done = {(s["key"], s["seq"]) for s in seen}
            return after_failover <= done and await pending(client, ticks, "proc") == 0

        await wait_for(
            caught_up, "every event sent after the failover", within=90, workers=[worker]
        )
        assert await worker.stop() == 0
        seen = await results(client, app_name, "seen")
    finally:
        await app.close()
    counts = _count(sent, seen)
    later = _count(
        dict.fromkeys(after_failover, 0),
        [s for s in seen if (s["key"], s["seq"]) in after_failover],
    )
    counts["failed_sends"] = failed_batches * BATCH
    counts["after_failover"] = len(after_failover)
    counts["after_failover_lost"] = later["lost"]
    counts["after_failover_duplicated"] = later["duplicated"]
    _write_report(counts)
    print(f"failover: {counts}")
    assert later["lost"] == 0
    assert later["duplicated"] == 0
    assert later["reordered"] == 0


def _write_report(counts: dict[str, int]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(counts, indent=2))


def stop_process_now(sentinels: RunningSentinels) -> None:
    """SIGKILL the primary (no shutdown save, no goodbye to the replica)."""
    process = sentinels.primary.process
    process.kill()
    process.wait()
    stop_process(process)
