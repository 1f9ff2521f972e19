"""Redis Cluster and Sentinel, without a server: URLs, the cluster key layout, the
container's choice of client and adapters, and moving an App between layouts."""

from __future__ import annotations

import re

import pytest
from redis.asyncio.cluster import RedisCluster

from runnel import App, Record
from runnel.adapters.memory.broker import MemoryBroker
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.adapters.redis._url import parse_hosts_url
from runnel.adapters.redis.cluster import (
    ClusterKeyValue,
    ClusterPartitionLocks,
    ClusterStreamLog,
    slot_of,
)
from runnel.adapters.redis.replicated import ReplicatedStreamLog
from runnel.adapters.redis.streams import RedisStreamLog
from runnel.container import key_layout
from runnel.domain.keys import Keys, leader_epoch_key, leader_key
from runnel.errors import Misconfigured
from runnel.ports import Append, Cap
from runnel.settings import Settings


class Tick(Record):
    key: str
    seq: int


def test_the_single_layout_is_unchanged() -> None:
    keys = Keys("shop", "orders")
    assert keys.stream(3) == "__strm:shop.orders.3"
    assert keys.meta() == "__meta:shop.orders"
    assert keys.lost() == keys.lost_counter(5) == "__lost:shop.orders"
    assert keys.lock("p", 3) == "__lock:shop.orders.p.3"
    assert keys.epoch("p", 3) == "__epoch:shop.orders.p.3"
    assert keys.fenced("p") == keys.fenced_counter("p", 3) == "__fenc:shop.orders.p"
    assert keys.membership("p") == "__memb:shop.orders.p"
    assert keys.membership_version("p") == "__mver:shop.orders.p"
    assert keys.control("p") == "__ctrl:shop.orders.p"
    assert keys.beat("p", "w1") == "__beat:shop.orders.p.w1"
    assert keys.quarantine("p") == "__quar:shop.orders.p"
    assert leader_key("shop") == "__lead:shop"
    assert leader_epoch_key("shop") == "__lepoch:shop"


def test_the_cluster_layout_puts_each_partition_in_one_slot_and_spreads_partitions() -> None:
    keys = Keys("shop", "orders", "cluster")
    for n in range(64):
        together = [
            keys.stream(n),
            keys.lock("p", n),
            keys.epoch("p", n),
            keys.fenced_counter("p", n),
            keys.lost_counter(n),
        ]
        assert len({slot_of(k) for k in together}) == 1
    processor = [
        keys.membership("p"),
        keys.membership_version("p"),
        keys.control("p"),
        keys.beat("p", "w1"),
        keys.quarantine("p"),
        keys.fenced("p"),
    ]
    assert len({slot_of(k) for k in processor}) == 1
    assert slot_of(leader_key("shop", "cluster")) == slot_of(leader_epoch_key("shop", "cluster"))
    # 64 partitions fall in 64 different slots, in each third of the slot range.
    slots = {slot_of(keys.stream(n)) for n in range(64)}
    assert len(slots) == 64
    assert {s * 3 // 16384 for s in slots} == {0, 1, 2}


@pytest.mark.parametrize(
    ("url", "hosts", "service", "single"),
    [
        ("redis+cluster://a:7000,b:7001", (("a", 7000), ("b", 7001)), "", "redis://a:7000/0"),
        ("redis+cluster://a", (("a", 6379),), "", "redis://a:6379/0"),
        (
            "rediss+cluster://u:pw@a:7000/0?ssl_cert_reqs=required",
            (("a", 7000),),
            "",
            "rediss://u:pw@a:7000/0?ssl_cert_reqs=required",
        ),
        (
            "redis+sentinel://s1,s2:26380/main?db=3",
            (("s1", 26379), ("s2", 26380)),
            "main",
            "redis://s1:26379/3",
        ),
    ],
)
def test_multi_host_urls_are_taken_apart(
    url: str, hosts: tuple[tuple[str, int], ...], service: str, single: str
) -> None:
    parsed = parse_hosts_url(url)
    assert (parsed.hosts, parsed.service, parsed.single) == (hosts, service, single)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+sentinel://s1:26379", "needs the primary's service name"),
        ("redis+cluster://a:7000/2", "only database 0"),
        ("redis+cluster://a:7000?db=1", "only db 0"),
        ("redis+cluster://a:7000,,b:7001", "empty host"),
        ("redis+cluster://a:notaport", "cannot use Redis URL"),
        ("redis+cluster://a:7000?ssl_ca_cert=/x", "unknown Redis URL option 'ssl_ca_cert'"),
        ("redis+cluster://a:7000?ssl_ca_certs=/x", "needs a rediss:// (TLS) URL"),
        ("redis+mesh://a:7000", "expected redis+cluster:// or redis+sentinel://"),
    ],
)
def test_a_bad_multi_host_url_is_one_line_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(Misconfigured, match=re.escape(problem)) as e:
        parse_hosts_url(url)
    assert "\n" not in str(e.value)


def test_a_password_in_a_bad_url_is_never_shown() -> None:
    with pytest.raises(Misconfigured) as caught:
        parse_hosts_url("redis+sentinel://user:s3cret@s1:26379")
    assert "s3cret" not in str(caught.value)


def test_settings_take_the_new_schemes_and_the_layout_follows_the_url() -> None:
    for url in ("redis+cluster://a:1", "rediss+cluster://a:1", "redis+sentinel://a/m"):
        assert Settings(redis_url=url).redis_url == url
    assert key_layout("redis+cluster://a:1") == key_layout("REDISS+CLUSTER://a:1") == "cluster"
    assert key_layout("redis+sentinel://a/m") == key_layout("redis://a") == "single"


def test_the_container_builds_the_cluster_adapters_for_a_cluster_url() -> None:
    app = App(name="scale", redis_url="redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
    backend = app.backend  # no I/O: clients connect on first use
    assert isinstance(backend.log, ClusterStreamLog)
    assert isinstance(backend.locks, ClusterPartitionLocks)
    assert isinstance(backend.kv, ClusterKeyValue)
    assert isinstance(app.container.redis_client(), RedisCluster)


def test_the_container_builds_a_sentinel_client_and_the_single_server_adapters() -> None:
    app = App(name="scale", redis_url="redis+sentinel://127.0.0.1:26379/main")
    assert type(app.backend.log) is RedisStreamLog
    assert app.container.redis_client().connection_pool.service_name == "main"  # type: ignore[attr-defined]


def test_waiting_for_replicas_wraps_the_stream_log_and_is_refused_on_a_cluster() -> None:
    app = App(name="scale", redis_url="redis://127.0.0.1:1", redis_wait_replicas=1)
    assert isinstance(app.backend.log, ReplicatedStreamLog)
    clustered = App(name="scale", redis_url="redis+cluster://127.0.0.1:1", redis_wait_replicas=1)
    with pytest.raises(Misconfigured, match="not supported on Redis Cluster"):
        clustered.backend  # noqa: B018


def test_reconfiguring_the_url_renames_every_stream_key_and_the_processors_follow() -> None:
    app = App(name="scale", redis_url="memory://scale-relayout")
    ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=4)

    @app.processor(ticks)
    async def proc(events: object) -> None: ...

    assert ticks.partition_key_name(1) == "__strm:scale.ticks.1"
    app.reconfigure(redis_url="redis+cluster://127.0.0.1:7000")
    assert app.key_layout == "cluster"
    assert ticks.partition_key_name(1) == "__strm:{scale.ticks.1}"
    assert app.processors["proc"].stream.keys.layout == "cluster"
    app.reconfigure(redis_url="redis://127.0.0.1:1")
    assert ticks.keys.stream(1) == "__strm:scale.ticks.1"
    assert app.processors["proc"].stream.partition_keys[1] == "__strm:scale.ticks.1"
    app.reconfigure(redis_url="redis+cluster://127.0.0.1:7000")
    assert app.plan().key_layout == "cluster"


async def test_the_memory_log_counts_lossy_trims_per_partition_when_asked() -> None:
    broker = MemoryBroker(SimulatedClock())
    log = MemoryStreamLog(broker)
    await log.ensure_group("s0", "g")
    await log.ensure_group("s1", "g")
    cap = Cap(2, "lossy", "lost", {"s0": "lost0", "s1": "lost1"})
    await log.append([Append(k, {b"n": b"1"}) for k in ("s0", "s0", "s0", "s1")], cap)
    await log.append([Append("s1", {b"n": b"1"}) for _ in range(4)], cap)
    kv = MemoryKeyValue(broker)
    assert (await kv.get("lost0"), await kv.get("lost1"), await kv.get("lost")) == (
        b"1",
        b"3",
        None,
    )
