"""What ``send`` raises when the connection or the server fails, against real servers.

A send whose request was written and whose reply was lost raises ``OutcomeUnknown`` (and
the entry may well be there); one that never reached Redis raises ``BackendUnavailable``
(nothing written); one refused at ``maxmemory`` raises ``BackendFull`` (nothing written).
A small TCP proxy between the client and a server of the test's own loses the reply of a
script call on demand: the request reaches Redis, the answer never reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from runnel import App, Record, Stream
from runnel.errors import BackendFull, BackendUnavailable, OutcomeUnknown
from runnel.sending import SendFailed, prepare, send_prepared
from tests.servers import RunningServer, free_port


class Item(Record):
    key: str
    n: int


class ReplyLosingProxy:
    """Forwards TCP between clients and ``port``; once armed, a script call's request
    is forwarded and the client's connection closed when the reply comes back."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.armed = False
        self.lost = 0
        self.port = free_port()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target)
        lose_next = asyncio.Event()

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if self.armed and b"EVALSHA" in data.upper():
                    lose_next.set()
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                if lose_next.is_set():
                    self.armed = False
                    self.lost += 1
                    return  # the reply is dropped and the client's connection closed
                client_w.write(data)
                await client_w.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (client_w, server_w):
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _app(url: str) -> tuple[App, Stream[Item]]:
    name = f"so{uuid4().hex[:8]}"
    app = App(name=name, redis_url=url, default_partition_count=1, metrics=True)
    return app, app.stream("items", record=Item, partition_by="key")


def send_errors(app: App, error: str) -> float | None:
    """The scraped ``runnel_send_errors_total`` of ``app``'s stream for one error class."""
    return app.metrics_registry.get_sample_value(
        "runnel_send_errors_total", {"app": app.name, "stream": "items", "error": error}
    )


async def test_a_send_whose_reply_is_lost_raises_outcome_unknown_and_was_written(
    own_server: RunningServer, own_admin: Redis
) -> None:
    proxy = ReplyLosingProxy(own_server.port)
    await proxy.start()
    app, items = _app(f"redis://127.0.0.1:{proxy.port}/0")
    key = items.keys.stream(0)
    try:
        await items.send(Item(key="a", n=1))  # loads the script: the next call is EVALSHA
        proxy.armed = True
        with pytest.raises(OutcomeUnknown, match="may or may not have been written") as caught:
            await items.send(Item(key="a", n=2))
        assert not isinstance(caught.value, BackendUnavailable)  # not "safe to retry"
        assert proxy.lost == 1
        assert await own_admin.xlen(key) == 2  # it was written: a blind retry would duplicate
        assert send_errors(app, "OutcomeUnknown") == 1
        assert send_errors(app, "BackendUnavailable") is None
    finally:
        await app.close()
        await proxy.close()


async def test_a_send_that_never_reached_redis_raises_backend_unavailable(
    own_server: RunningServer, own_admin: Redis
) -> None:
    proxy = ReplyLosingProxy(own_server.port)
    await proxy.start()
    app, items = _app(f"redis://127.0.0.1:{proxy.port}/0")
    key = items.keys.stream(0)
    try:
        await items.send(Item(key="a", n=1))
        await app.close()  # its connections go; the next send must connect again
        await proxy.close()  # ...to nothing
        with pytest.raises(BackendUnavailable) as caught:
            await items.send(Item(key="a", n=2))
        assert not isinstance(caught.value, (OutcomeUnknown, BackendFull))
        assert await own_admin.xlen(key) == 1
        assert send_errors(app, "BackendUnavailable") == 1
    finally:
        await app.close()


async def test_a_send_refused_at_maxmemory_raises_backend_full_and_writes_nothing(
    own_server: RunningServer, own_admin: Redis
) -> None:
    app, items = _app(own_server.url)
    key = items.keys.stream(0)
    try:
        await items.send(Item(key="a", n=1))
        await own_admin.config_set("maxmemory", 1)
        try:
            with pytest.raises(BackendFull, match="out of memory") as caught:
                await items.send(Item(key="a", n=2))
            assert isinstance(caught.value, BackendUnavailable)  # retrying later is safe
            lines = [prepare(items, '{"key": "a", "n": 3}'), prepare(items, '{"key": "a", "n": 4}')]
            with pytest.raises(SendFailed, match="was not written") as failed:
                await send_prepared(items, lines)
            assert isinstance(failed.value.cause, BackendFull)
            assert send_errors(app, "BackendFull") == 2  # the send and the prepared lines
        finally:
            await own_admin.config_set("maxmemory", 0)
        assert await own_admin.xlen(key) == 1
        await items.send(Item(key="a", n=5))  # and it works again once memory is there
        assert await own_admin.xlen(key) == 2
    finally:
        await app.close()
