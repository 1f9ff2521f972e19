"""The container: the URL scheme picks the adapters, memory brokers are shared by name,
and overridden providers (a pre-built Redis client, a serializer) are what an App uses."""

from __future__ import annotations

from typing import Any

import pytest
from dependency_injector import providers
from fakeredis import FakeAsyncRedis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from runnel import App, Record
from runnel.adapters.compressors import GzipCompressor
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.adapters.redis.keyvalue import RedisKeyValue
from runnel.adapters.redis.locks import RedisPartitionLocks
from runnel.adapters.redis.streams import RedisStreamLog
from runnel.adapters.serializers import JSONSerializer
from runnel.container import Container
from runnel.settings import Settings
from tests.kit import ReversedJSON, unique


class Order(Record):
    order_id: int


# --------------------------------------------------------------------------- URL scheme


@pytest.mark.parametrize(
    ("url", "connection_class", "where"),
    [
        # Nothing listens on these: building the adapters must not connect.
        ("redis://127.0.0.1:1/0", Connection, {"host": "127.0.0.1", "port": 1}),
        ("rediss://cache.invalid:6380", SSLConnection, {"host": "cache.invalid", "port": 6380}),
        ("unix:///nonexistent/redis.sock?db=2", UnixDomainSocketConnection, {"db": 2}),
        ("REDIS://127.0.0.1:1", Connection, {"port": 1}),
    ],
)
def test_redis_urls_select_the_redis_adapters_without_connecting(
    url: str, connection_class: type[Connection], where: dict[str, object]
) -> None:
    container = Container(settings=Settings(redis_url=url, default_pool_size=5))

    backend = container.backend()

    assert container.kind() == "redis"
    assert isinstance(backend.log, RedisStreamLog)
    assert isinstance(backend.locks, RedisPartitionLocks)
    assert isinstance(backend.kv, RedisKeyValue)
    pool = container.redis_client().connection_pool
    assert pool.connection_class is connection_class
    assert pool.max_connections == 5
    assert {k: pool.connection_kwargs[k] for k in where} == where


@pytest.mark.parametrize("url", ["memory://", "memory://x", "MEMORY://upper"])
def test_memory_urls_select_the_memory_adapters(url: str) -> None:
    container = Container(settings=Settings(redis_url=url))

    backend = container.backend()

    assert container.kind() == "memory"
    assert isinstance(backend.log, MemoryStreamLog)
    assert isinstance(backend.locks, MemoryPartitionLocks)
    assert isinstance(backend.kv, MemoryKeyValue)
    assert backend.log.broker is backend.kv.broker


def test_the_container_gives_one_backend_per_container() -> None:
    container = Container(settings=Settings(redis_url=f"memory://{unique()}"))

    assert container.backend() is container.backend()


# --------------------------------------------------------------------------- memory brokers


async def test_two_apps_on_the_same_memory_url_share_one_broker() -> None:
    broker = unique()
    producer = App(name="shop", redis_url=f"memory://{broker}")
    consumer = App(name="shop", redis_url=f"memory://{broker}")
    sent = producer.stream("orders", record=Order, partition_by="order_id", partition_count=1)
    seen = consumer.stream("orders", record=Order, partition_by="order_id", partition_count=1)

    await sent.send(Order(order_id=1))

    assert isinstance(producer.backend.log, MemoryStreamLog)
    assert isinstance(consumer.backend.log, MemoryStreamLog)
    assert producer.backend.log.broker is consumer.backend.log.broker
    (entry,) = await consumer.backend.log.range(seen.keys.stream(0))
    assert seen.codec.decode(entry.fields) == Order(order_id=1)


async def test_apps_on_different_memory_urls_do_not_share() -> None:
    first = App(name="shop", redis_url=f"memory://{unique()}")
    second = App(name="shop", redis_url=f"memory://{unique()}")
    a = first.stream("orders", record=Order, partition_by="order_id", partition_count=1)
    b = second.stream("orders", record=Order, partition_by="order_id", partition_count=1)

    await a.send(Order(order_id=1))

    assert await first.backend.admin.length(a.keys.stream(0)) == 1
    assert await second.backend.admin.length(b.keys.stream(0)) == 0


# --------------------------------------------------------------------------- overrides


async def test_a_pre_built_redis_client_is_what_the_app_talks_to() -> None:
    client = FakeAsyncRedis()
    container = Container(settings=Settings(redis_url="redis://127.0.0.1:1/0"))
    container.redis_client.override(providers.Object(client))
    app = App(name=unique(), container=container)
    orders = app.stream("orders", record=Order, partition_by="order_id", partition_count=1)

    await orders.send(Order(order_id=7))

    assert await client.xlen(f"__strm:{app.name}.orders.0") == 1
    assert await client.hget(f"__meta:{app.name}.orders", "partition_count") == b"1"


async def test_an_overridden_serializer_is_what_app_stream_uses() -> None:
    container = Container(settings=Settings(redis_url=f"memory://{unique()}"))
    container.serializer.override(providers.Singleton(ReversedJSON))
    app = App(name=unique(), container=container)
    orders = app.stream("orders", record=Order, partition_by="order_id", partition_count=1)

    await orders.send(Order(order_id=7))

    assert isinstance(orders.serializer, ReversedJSON)
    (entry,) = await app.backend.log.range(orders.keys.stream(0))
    assert entry.fields == {b"data": b'#!reversed-json\n}7:"di_redro"{'}
    meta = await app.backend.kv.hash_get_all(orders.keys.meta())
    assert meta[b"codec"] == b"reversed-json"


def test_a_stream_argument_beats_the_containers_serializer() -> None:
    container = Container(settings=Settings(redis_url=f"memory://{unique()}"))
    container.serializer.override(providers.Singleton(ReversedJSON))
    app = App(name=unique(), container=container)

    orders = app.stream(
        "orders", record=Order, partition_by="order_id", serializer=JSONSerializer()
    )

    assert orders.codec.name == "json"


def test_the_default_compressor_setting_reaches_the_stream() -> None:
    app = App(name=unique(), redis_url="memory://", default_compressor="gzip")

    orders = app.stream("orders", record=Order, partition_by="order_id")

    assert isinstance(orders.compressor, GzipCompressor)
    assert orders.codec.name == "json+gzip"


def test_app_kwargs_refine_the_given_containers_settings() -> None:
    url = f"memory://{unique()}"
    container = Container(settings=Settings(redis_url=url, default_pool_size=3))

    app = App(name=unique(), container=container, default_partition_count=5)

    assert app.settings.redis_url == url
    assert app.settings.default_pool_size == 3
    assert app.settings.default_partition_count == 5
    assert container.settings() is app.settings
    assert isinstance(app.backend.log, MemoryStreamLog)


async def test_the_module_docstring_recipe_works() -> None:
    my_redis_client = FakeAsyncRedis()
    MsgpackSerializer = ReversedJSON  # the docstring's name for a user serializer

    # --- the recipe of runnel.container's docstring, verbatim
    container = Container(settings=Settings(redis_url="redis://cache:6379/2"))
    container.redis_client.override(providers.Object(my_redis_client))
    container.serializer.override(providers.Singleton(MsgpackSerializer))
    app = App(name="shop", container=container)
    # ---

    orders = app.stream("orders", record=Order, partition_by="order_id", partition_count=1)
    await orders.send(Order(order_id=1))

    assert app.settings.redis_url == "redis://cache:6379/2"
    assert orders.codec.name == "reversed-json"
    entries: Any = await my_redis_client.xrange("__strm:shop.orders.0")
    assert [fields for _, fields in entries] == [{b"data": b'#!reversed-json\n}1:"di_redro"{'}]


async def test_closing_an_app_closes_the_redis_client_the_container_built() -> None:
    client = FakeAsyncRedis()
    closed: list[bool] = []
    real_aclose = client.aclose

    async def aclose() -> None:
        closed.append(True)
        await real_aclose()

    client.aclose = aclose  # type: ignore[method-assign,assignment]  # observing the close
    container = Container(settings=Settings(redis_url="redis://cache:6379/2"))
    container.redis_client.override(providers.Object(client))
    app = App(name=unique(), container=container)
    orders = app.stream("orders", record=Order, partition_by="order_id", partition_count=1)
    await orders.send(Order(order_id=1))

    await app.close()
    await app.close()  # idempotent: nothing was built since, so nothing is closed again

    assert closed == [True]


async def test_closing_a_memory_app_leaves_its_broker_to_the_next_app() -> None:
    url = f"memory://{unique()}"
    first = App(name="shop", redis_url=url)
    orders = first.stream("orders", record=Order, partition_by="order_id", partition_count=1)
    await orders.send(Order(order_id=1))
    await first.close()

    second = App(name="shop", redis_url=url)
    again = second.stream("orders", record=Order, partition_by="order_id", partition_count=1)
    assert await second.backend.admin.length(again.keys.stream(0)) == 1
