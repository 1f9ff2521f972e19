"""The cluster key layout and adapters on a real three-primary Redis Cluster.

Partitions spread over the shards with every key of a partition in one slot; a fetch
round over many partitions is one pipeline per node; keys that do not share a slot are
refused in one line; and slots moved between primaries while a worker runs lose and
reorder nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections import Counter
from typing import Any

import pytest
from redis.asyncio.cluster import ClusterNode

from runnel import App
from runnel.adapters.redis.cluster import ClusterStreamLog, slot_of
from runnel.errors import BackendProtocolError
from runnel.ports import Append, Fence, ReadRequest
from tests.integration.engine.apps import ordering
from tests.integration.engine.apps.common import Tick
from tests.integration.engine.conftest import Spawn
from tests.integration.engine.harness import pending, recorded, results, seqs_per_key, wait_for
from tests.servers import running_server
from tests.topologies import RunningCluster, _cli, command, running_cluster


def _node_of(client: Any, key: str) -> str:
    node = client.nodes_manager.get_node_from_slot(slot_of(key))
    return f"{node.host}:{node.port}"


async def test_every_key_of_a_partition_shares_its_slot_and_partitions_spread_over_every_primary(
    redis_url: str, cluster: RunningCluster, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    stream = app.stream("spread", record=Tick, partition_by="key", partition_count=24)
    assert app.key_layout == "cluster"
    keys = stream.keys
    try:
        await stream.send(*(Tick(key=f"k{i}", seq=i) for i in range(200)))
        client = app.backend.log._cluster  # type: ignore[attr-defined]
        for n in range(24):
            partition = {
                keys.stream(n),
                keys.lock("proc", n),
                keys.epoch("proc", n),
                keys.fenced_counter("proc", n),
                keys.lost_counter(n),
            }
            assert len({slot_of(k) for k in partition}) == 1, partition
        processor = {
            keys.membership("proc"),
            keys.membership_version("proc"),
            keys.control("proc"),
            keys.beat("proc", "x"),
            keys.quarantine("proc"),
        }
        assert len({slot_of(k) for k in processor}) == 1
        owners = {_node_of(client, keys.stream(n)) for n in range(24)}
        assert owners == {f"127.0.0.1:{p}" for p in cluster.primaries()}
        # The partitions hold what was sent, each on its own node.
        total = sum([await app.backend.admin.length(keys.stream(n)) for n in range(24)])
        assert total == 200
    finally:
        await app.close()


async def test_a_fetch_round_over_every_partition_is_one_pipeline_per_node(
    redis_url: str, app_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    stream = app.stream("round", record=Tick, partition_by="key", partition_count=12)
    try:
        await stream.send(*(Tick(key=f"k{i}", seq=i) for i in range(120)))
        log = app.backend.log
        assert isinstance(log, ClusterStreamLog)
        for n in range(12):
            await log.ensure_group(stream.keys.stream(n), "g")
            await log.ensure_group(stream.keys.stream(n), "warm")
        # The first call on a fresh cluster loads the script on every node (NOSCRIPT).
        await log.exchange(
            [], [ReadRequest(stream.keys.stream(n), "warm", "c", 1) for n in range(12)]
        )
        sent: list[tuple[str, int]] = []
        original = ClusterNode.execute_pipeline

        async def counted(node: ClusterNode, commands: Any) -> bool:
            sent.append((node.name, len(commands)))
            return await original(node, commands)

        monkeypatch.setattr(ClusterNode, "execute_pipeline", counted)
        reads = [ReadRequest(stream.keys.stream(n), "g", "c", 100) for n in range(12)]
        _, got = await log.exchange([], reads)
        monkeypatch.setattr(ClusterNode, "execute_pipeline", original)
        assert sum(len(e) for e in got if isinstance(e, list)) == 120
        nodes = [name for name, _ in sent]
        assert len(nodes) == len(set(nodes)) == 3  # one round trip to each primary
        assert sum(n for _, n in sent) == 12  # one script call per partition (slot)
    finally:
        await app.close()


async def test_a_fenced_call_whose_keys_span_slots_is_refused_in_one_line(
    redis_url: str, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    try:
        log = app.backend.log
        stream_key, lock_key = f"{app_name}:s", f"{app_name}:lock"
        assert slot_of(stream_key) != slot_of(lock_key)
        fence = Fence(lock_key, b"me:1", f"{app_name}:fenced")
        with pytest.raises(BackendProtocolError, match="share a hash tag") as caught:
            await log.exchange([], [ReadRequest(stream_key, "g", "c", 1, fence=fence)])
        assert "\n" not in str(caught.value)
    finally:
        await app.close()


def _reshard(cluster: RunningCluster, source: int, target: int, slots: int) -> str:
    ids = {p: command(p, "CLUSTER", "MYID").split("\r\n")[1] for p in (source, target)}
    done = subprocess.run(
        [
            _cli(),
            "--cluster",
            "reshard",
            f"127.0.0.1:{source}",
            "--cluster-from",
            ids[source],
            "--cluster-to",
            ids[target],
            "--cluster-slots",
            str(slots),
            "--cluster-pipeline",
            "50",
            "--cluster-yes",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return f"exit {done.returncode}: {done.stdout[-500:]} {done.stderr[-500:]}"


async def test_slots_moved_between_primaries_under_load_lose_duplicate_and_reorder_nothing(
    spawn: Spawn, app_name: str
) -> None:
    with running_cluster(masters=3) as moving:
        app, ticks = ordering.build(app_name, moving.url)
        client = app.backend.log._cluster  # type: ignore[attr-defined]
        keys = 40
        events = [Tick(key=f"k{i % keys}", seq=i // keys) for i in range(8_000)]
        source, target = moving.primaries()[:2]
        outcome: list[str] = []
        try:
            ids = await ticks.send(*events[:2_000])
            worker = spawn("ordering", url=moving.url, env={"ENGINE_TEST_DELAY": "0.0005"})
            mover = threading.Thread(
                target=lambda: outcome.append(_reshard(moving, source, target, 5000))
            )
            mover.start()
            during = 0  # batches sent while slots were moving
            for start in range(2_000, 8_000, 200):  # the rest while slots move
                ids += await ticks.send(*events[start : start + 200])
                during += mover.is_alive()
                await asyncio.sleep(0.02)
            await asyncio.to_thread(mover.join)
            assert during > 0
            assert outcome, "the reshard thread ended without a result"
            assert outcome[0].startswith("exit 0"), outcome
            print(f"batches sent while slots moved: {during} of 30")
            moving.wait_ok()
            await wait_for(
                lambda: recorded(client, app_name, "seen", 8_000),
                "8k events processed",
                within=120,
                workers=[worker],
            )
            assert await worker.stop() == 0
            seen = await results(client, app_name, "seen")
            assert await pending(client, ticks, "proc") == 0
        finally:
            await app.close()
    sent = Counter((ticks.partition_for(e), i.decode()) for e, i in zip(events, ids, strict=True))
    got = Counter((s["partition"], s["id"]) for s in seen)
    assert got == sent  # nothing lost, nothing twice
    per_key = seqs_per_key(seen)
    assert all(seqs == list(range(8_000 // keys)) for seqs in per_key.values())


async def test_leases_over_many_slots_are_renewed_and_released_slot_by_slot(
    redis_url: str, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    keys = app.stream("leases", record=Tick, partition_by="key", partition_count=12).keys
    try:
        locks = app.backend.locks
        leases = []
        for n in range(12):
            lease = await locks.acquire(keys.lock("p", n), keys.epoch("p", n), "w1", 30)
            assert lease is not None
            leases.append(lease)
        assert len({slot_of(lease.key) for lease in leases}) == 12
        assert await locks.extend(leases, 30) == [True] * 12
        await app.backend.kv.delete(leases[5].key)  # lost (say, expired)
        assert await locks.extend(leases, 30) == [n != 5 for n in range(12)]
        assert await locks.release(leases) == [n != 5 for n in range(12)]
        assert await locks.holder(leases[0].key) is None
    finally:
        await app.close()


async def test_the_doorbell_wakes_for_a_new_entry_in_any_slot(
    redis_url: str, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    stream = app.stream("bell", record=Tick, partition_by="key", partition_count=12)
    try:
        log = app.backend.log
        after = {stream.keys.stream(n): b"0-0" for n in range(12)}
        assert await log.wait(after, 0.2) == set()  # nothing there: the wait times out
        target = stream.keys.stream(7)

        async def ring() -> None:
            await asyncio.sleep(0.1)
            await app.backend.log.append([Append(target, {b"n": b"1"})])

        ringer = asyncio.ensure_future(ring())
        woken = await log.wait(after, 10)
        await ringer
        assert woken == {target}
    finally:
        await app.close()


async def test_a_batch_over_many_partitions_keeps_each_partitions_order(
    redis_url: str, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    stream = app.stream("batch", record=Tick, partition_by="key", partition_count=12)
    try:
        events = [Tick(key=f"k{i % 30}", seq=i) for i in range(600)]
        ids = await stream.send(*events)
        assert len(ids) == 600
        for n in range(12):
            got = await app.backend.log.range(stream.keys.stream(n))
            seqs = [stream.codec.decode(entry.fields).seq for entry in got]
            wanted = [e.seq for e in events if stream.partition_for(e) == n]
            assert seqs == wanted
    finally:
        await app.close()


async def test_idempotent_sends_over_many_slots_return_the_original_ids_and_add_nothing(
    redis_url: str, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    stream = app.stream("idem", record=Tick, partition_by="key", partition_count=12)
    try:
        events = [Tick(key=f"k{i % 30}", seq=i) for i in range(300)]
        first = await stream.send(*events, idempotency_key="batch-1")
        # A repeat after a lost reply, and one with a part of the batch only: nothing new.
        again = await stream.send(*events, idempotency_key="batch-1")
        part = await stream.send(*events[:50], idempotency_key=[f"batch-1:{i}" for i in range(50)])
        assert again == first
        assert part == first[:50]
        lengths = [await app.backend.admin.length(stream.keys.stream(n)) for n in range(12)]
        assert sum(lengths) == 300
        assert len([n for n in lengths if n]) > 6  # the batch spanned many partitions (slots)
        # Each key is in its partition's slot (so one script checks it with the cap).
        for i, event in enumerate(events[:30]):
            n = stream.partition_for(event)
            key = stream.keys.idempotency(f"batch-1:{i}", n)
            assert slot_of(key) == slot_of(stream.keys.stream(n))
            assert await app.backend.kv.get(key) == first[i]
    finally:
        await app.close()


async def test_the_durability_check_asks_every_primary(
    redis_url: str, cluster: RunningCluster, app_name: str
) -> None:
    app = App(name=app_name, redis_url=redis_url)
    try:
        diagnostics = app.backend.diagnostics
        assert diagnostics is not None
        risks = await diagnostics.durability_risks()
        # The test cluster persists nothing: one risk, naming the three primaries.
        assert len(risks) == 1
        assert "appendonly no" in risks[0]
        assert all(f"127.0.0.1:{port}" in risks[0] for port in cluster.primaries())
    finally:
        await app.close()


async def test_a_single_server_url_on_a_cluster_node_says_to_use_a_cluster_url(
    cluster: RunningCluster, app_name: str
) -> None:
    app = App(name=app_name, redis_url=f"redis://127.0.0.1:{cluster.ports[0]}/0")
    stream = app.stream("wrong", record=Tick, partition_by="key", partition_count=8)
    try:
        with pytest.raises(BackendProtocolError, match=r"use|redis\+cluster://") as caught:
            await stream.send(*(Tick(key=f"k{i}", seq=i) for i in range(8)))
        assert "node of a Redis Cluster" in str(caught.value)
        assert "\n" not in str(caught.value)
    finally:
        await app.close()


async def test_a_cluster_url_on_a_plain_server_says_to_use_a_single_server_url(
    app_name: str,
) -> None:
    with running_server() as plain:
        app = App(name=app_name, redis_url=f"redis+cluster://127.0.0.1:{plain.port}")
        stream = app.stream("wrong", record=Tick, partition_by="key", partition_count=2)
        try:
            with pytest.raises(BackendProtocolError, match="not a Redis Cluster node") as caught:
                await stream.send(Tick(key="k", seq=1))
            assert "use a redis:// URL" in str(caught.value)
        finally:
            await app.close()
