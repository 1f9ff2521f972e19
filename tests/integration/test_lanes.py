"""Kept connections for hot calls (``runnel.adapters.redis._lanes``), on a real server.

Sends and fetch rounds run on a few connections kept out of the pool and written to
directly. These tests pin down what that must not change: concurrent calls never share a
connection, a connection the server closed while idle is replaced before a request is
written on it (the send succeeds, once), and a call cancelled half-way leaves nothing for a
later call to read by mistake.
"""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from runnel import App, Record, Stream
from runnel.adapters.redis._lanes import KEPT, lanes_of
from tests.servers import RunningServer


class Item(Record):
    key: str
    n: int


def _app(url: str, partitions: int = 1) -> tuple[App, Stream[Item]]:
    name = f"ln{uuid4().hex[:8]}"
    app = App(name=name, redis_url=url, default_partition_count=partitions, metrics=True)
    return app, app.stream("items", record=Item, partition_by="key")


def _client_of(app: App) -> Redis:
    client: Redis = app.backend.log._client  # type: ignore[attr-defined]  # the Redis log's
    return client


async def _app_connections(own_admin: Redis, name: str) -> list[int]:
    """The ids of the server's client connections that are not ``own_admin``'s own."""
    mine = await own_admin.client_id()
    return [int(c["id"]) for c in await own_admin.client_list() if int(c["id"]) != mine]


async def test_sequential_sends_use_one_kept_connection(
    own_server: RunningServer, own_admin: Redis
) -> None:
    app, items = _app(own_server.url)
    try:
        ids = [(await items.send(Item(key="a", n=n)))[0] for n in range(50)]
        assert lanes_of(_client_of(app)).kept() == 1
        entries: Any = await own_admin.xrange(items.keys.stream(0))
        assert [e[0] for e in entries] == ids
    finally:
        await app.close()


async def test_concurrent_sends_never_share_a_connection(
    own_server: RunningServer, own_admin: Redis
) -> None:
    app, items = _app(own_server.url, partitions=4)
    try:
        await items.send(Item(key="warm", n=-1))
        results = await asyncio.gather(*(items.send(Item(key=f"k{n}", n=n)) for n in range(200)))
        # Every call read its own reply: each returned id is the entry holding its record.
        for n, (entry_id,) in enumerate(results):
            partition = items.partition_for(Item(key=f"k{n}", n=n))
            found: Any = await own_admin.xrange(items.keys.stream(partition), entry_id, entry_id)
            assert len(found) == 1
            assert b'"n":%d' % n in found[0][1][b"data"]
        assert lanes_of(_client_of(app)).kept() <= KEPT
    finally:
        await app.close()


async def test_a_kept_connection_closed_by_the_server_is_replaced_before_the_next_send(
    own_server: RunningServer, own_admin: Redis
) -> None:
    app, items = _app(own_server.url)
    key = items.keys.stream(0)
    try:
        await items.send(Item(key="a", n=1))
        before = await _app_connections(own_admin, app.name)
        for client_id in before:
            await own_admin.client_kill_filter(_id=str(client_id))
        # The send must go out on a new connection and succeed, written exactly once.
        (entry_id,) = await items.send(Item(key="a", n=2))
        assert await own_admin.xlen(key) == 2
        entries: Any = await own_admin.xrange(key)
        assert entries[-1][0] == entry_id
        assert not set(await _app_connections(own_admin, app.name)) & set(before)
        errors = app.metrics_registry.get_sample_value(
            "runnel_send_errors_total",
            {"app": app.name, "stream": "items", "error": "OutcomeUnknown"},
        )
        assert errors is None
    finally:
        await app.close()


async def test_a_call_cancelled_mid_reply_leaves_nothing_for_the_next_call(
    own_server: RunningServer, own_admin: Redis
) -> None:
    app, items = _app(own_server.url)
    key = items.keys.stream(0)
    try:
        await items.send(Item(key="a", n=1))
        await own_admin.client_pause(1500, all=False)
        with pytest.raises(TimeoutError):
            # Written, then cancelled while Redis holds it: its reply comes later.
            await asyncio.wait_for(items.send(Item(key="a", n=2)), 0.3)
        await own_admin.client_unpause()
        (entry_id,) = await items.send(Item(key="a", n=3))
        found: Any = await own_admin.xrange(key, entry_id, entry_id)
        assert b'"n":3' in found[0][1][b"data"]  # its own reply, not the cancelled call's
    finally:
        await app.close()
