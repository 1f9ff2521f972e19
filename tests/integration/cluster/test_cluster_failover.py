"""A cluster primary killed under load: its replica takes over and the worker follows.

Three primaries, each with a replica. Once the worker is processing, the primary holding
most of the stream's partitions is killed (SIGKILL) while a sender sends and the worker
processes; every event is counted as in the Sentinel failover test: acknowledged sends
never processed (lost to asynchronous replication), events processed twice (their
acknowledgements lost the same way), keys whose first deliveries came out of order.
Every event sent after the replica took over must be processed exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from runnel.adapters.redis.cluster import slot_of
from runnel.errors import BackendError
from tests.integration.engine.apps import ordering
from tests.integration.engine.apps.common import Tick
from tests.integration.engine.conftest import Spawn
from tests.integration.engine.harness import pending, recorded, results, wait_for
from tests.integration.sentinel.test_failover import BATCH, KEYS, _count
from tests.servers import ServerUnavailable
from tests.topologies import client_for, running_cluster

REPORT = Path(os.environ.get("RUNNEL_CLUSTER_FAILOVER_REPORT", ".faults/cluster-failover.json"))


async def test_a_killed_cluster_primary_is_replaced_and_every_later_event_is_processed_once(
    spawn: Spawn, app_name: str
) -> None:
    with running_cluster(masters=3, replicas=1) as cluster:
        app, ticks = ordering.build(app_name, cluster.url)
        client = client_for(cluster.url)
        sent: dict[tuple[str, int], int] = {}
        after: set[tuple[str, int]] = set()
        failed = 0
        seq = 0
        try:
            await client.initialize()
            owners = Counter(
                client.nodes_manager.get_node_from_slot(slot_of(ticks.keys.stream(n))).port
                for n in range(ticks.partition_count)
            )
            victim = owners.most_common(1)[0][0]
            worker = spawn(
                "ordering",
                url=cluster.url,
                env={"ENGINE_TEST_DELAY": "0.001", "ENGINE_TEST_RESULTS_RETRY": "30"},
            )
            killed = False
            batch = 0
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and len(after) < 2_000:
                events = [
                    Tick(key=f"k{(seq + i) % KEYS}", seq=(seq + i) // KEYS) for i in range(BATCH)
                ]
                seq += BATCH
                replaced = killed and victim not in cluster.primaries() and _ok(cluster)
                try:
                    await ticks.send(*events)
                except BackendError:
                    failed += 1
                    await asyncio.sleep(0.05)
                else:
                    for e in events:
                        sent[(e.key, e.seq)] = batch
                        if replaced:
                            after.add((e.key, e.seq))
                batch += 1
                if batch >= 100 and not killed and await recorded(client, app_name, "seen"):
                    process = cluster.node(victim).process
                    process.kill()
                    process.wait()
                    killed = True
                await asyncio.sleep(0.005)
            assert len(after) >= 2_000, "the sender did not reach the promoted replica"

            async def caught_up() -> bool:
                seen = await results(client, app_name, "seen")
                done = {(s["key"], s["seq"]) for s in seen}
                return after <= done and await pending(client, ticks, "proc") == 0

            await wait_for(
                caught_up, "every event sent after the failover", within=90, workers=[worker]
            )
            assert await worker.stop() == 0
            seen = await results(client, app_name, "seen")
        finally:
            await app.close()
            await client.aclose()
    counts = _count(sent, seen)
    late = [s for s in seen if (s["key"], s["seq"]) in after]
    later = _count(dict.fromkeys(after, 0), late)
    counts.update(failed_sends=failed * BATCH, after_failover=len(after))
    counts.update(after_failover_lost=later["lost"], after_failover_duplicated=later["duplicated"])
    _write(counts)
    print(f"cluster failover: {counts}")
    assert later["lost"] == 0
    assert later["duplicated"] == 0
    assert later["reordered"] == 0


def _ok(cluster: Any) -> bool:
    try:
        cluster.wait_ok(seconds=0)
    except ServerUnavailable:  # not ok yet
        return False
    return True


def _write(counts: dict[str, int]) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(counts, indent=2))
