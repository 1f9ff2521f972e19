"""What a worker says about Redis, against real servers: the cause of lost data
(eviction is named as eviction), loading is not "unreachable", and a worker that never
reached Redis says so without stray warnings about what it never wrote."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from runnel import App, Events, Record
from runnel.adapters.redis._errors import translate
from runnel.adapters.redis.client import make_client
from runnel.adapters.redis.keyvalue import RedisKeyValue
from runnel.errors import BackendError
from runnel.runtime.worker import Worker
from tests.servers import RunningServer, ServerUnavailable, free_port, running_server


class Item(Record):
    key: str


def _server(*args: str) -> Iterator[RunningServer]:
    try:
        with running_server(list(args)) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(f"needs a redis-server of its own: {exc}")


@pytest.fixture
def evicting_server() -> Iterator[RunningServer]:
    yield from _server("--maxmemory-policy", "allkeys-lru", "--appendonly", "yes")


@pytest.fixture
def plain_server() -> Iterator[RunningServer]:
    yield from _server()


async def test_evicted_keys_are_reported_as_eviction(evicting_server: RunningServer) -> None:
    admin = Redis(port=evicting_server.port)
    client = make_client(evicting_server.url, pool_size=2)
    try:
        used = int((await admin.info("memory"))["used_memory"])
        await admin.config_set("maxmemory", used + 512 * 1024)
        for n in range(400):  # about 4 MB: far past the limit
            await admin.set(f"filler:{n}", b"x" * 10_000)
        assert int((await admin.info("stats"))["evicted_keys"]) > 0
        cause = await RedisKeyValue(client).loss_cause()
        assert cause is not None
        assert "evicted" in cause
        assert "allkeys-lru" in cause
        assert "appendonly" not in cause  # persistence is on: not the advice to give
    finally:
        await admin.aclose()
        await client.aclose()


async def test_a_server_without_persistence_is_named_as_the_cause(
    plain_server: RunningServer,
) -> None:
    client = make_client(plain_server.url, pool_size=2)
    try:
        cause = await RedisKeyValue(client).loss_cause()
        assert cause is not None
        assert "appendonly no" in cause
        assert "evicted" not in cause
    finally:
        await client.aclose()


async def test_a_loading_server_is_not_called_unreachable() -> None:
    from redis.exceptions import BusyLoadingError

    error = translate(BusyLoadingError("Redis is loading the dataset in memory"))
    assert "loading" in str(error)
    assert "unreachable" not in str(error)


async def test_a_worker_that_never_reached_redis_stops_without_stray_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = f"dg{uuid4().hex[:8]}"
    app = App(name=name, redis_url=f"redis://127.0.0.1:{free_port()}/0", default_join_delay=0)
    items = app.stream("items", record=Item, partition_by="key")

    @app.processor(items)
    async def proc(events: Events) -> None:
        async for _ in events:
            pass

    caplog.set_level(logging.WARNING, logger="runnel")
    worker = Worker(app.plan(), install_signals=False)
    try:
        with pytest.raises(BackendError, match="unreachable"):
            await worker.run()
    finally:
        await app.close()
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "heartbeat" in m], messages
    assert all(not m.endswith(": ") for m in messages), messages  # every detail given
