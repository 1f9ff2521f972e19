"""Connections kept out of the pool for the hot calls: sends and fetch rounds.

Checking a connection out of redis-py's ``BlockingConnectionPool`` and back in takes two
locks, a condition and its observability hooks; writing a request through
``send_packed_command`` wraps the write in ``asyncio.wait_for`` (a task of its own) when
the client has a socket timeout. Together that is more than a local round trip costs.
A one-record send, or a fetch round, pays it on every call.

:class:`Lanes` keeps a few connections checked out of the pool for good and hands them to
one call at a time, without locks (the event loop runs one task at a time). When every
kept connection is busy, a call takes one from the pool as before. :func:`write` puts a
small request straight on the transport: the kernel takes it at once, so there is nothing
to wait for, and the reply is read under the connection's socket timeout as usual.

What a failure means is unchanged:

- a connection closed before the request left fails the write (nothing was sent);
- a failure while reading the reply means the request left (its outcome is unknown);
- a call cancelled or failed half-way closes its connection, which reconnects on its
  next use, so no stray reply is ever read by a later call.

Connections are kept only when the pool has room to spare (see :func:`lanes_of`); they
are closed with the client like any other (``aclose`` closes connections in use too).

Example:
    >>> from redis.asyncio import BlockingConnectionPool, Redis
    >>> pool = BlockingConnectionPool(max_connections=16)
    >>> lanes_of(Redis(connection_pool=pool)).limit
    2
    >>> lanes_of(Redis(connection_pool=BlockingConnectionPool(max_connections=4))).limit
    0
"""

from __future__ import annotations

import asyncio
import sys
import weakref
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

KEPT: Final = 2
"""Connections a client keeps out of its pool for hot calls (two fetch rounds in flight)."""

SPARE: Final = 6
"""Pool connections that must stay for everything else before any is kept."""

DIRECT_BYTES: Final = 64 * 1024
"""Requests up to this size are written straight to the transport; larger ones go through
redis-py's own write (which waits for the kernel under the socket timeout)."""


class Lanes:
    """A few pooled connections, kept for one hot call at a time each.

    Attributes:
        limit: how many connections may be kept (0: every call uses the pool).
    """

    __slots__ = ("__weakref__", "_free", "_kept", "_pool", "limit")

    def __init__(self, pool: Any, limit: int) -> None:
        self._pool = pool
        self.limit = limit
        self._free: list[Any] = []
        self._kept: set[int] = set()

    async def take(self) -> Any:
        """A connection for one call: a kept one when free, else one from the pool."""
        free = self._free
        if free:
            return free.pop()
        conn = await self._pool.get_connection()
        if len(self._kept) < self.limit:
            self._kept.add(id(conn))
        return conn

    async def give(self, conn: Any) -> None:
        """Hand ``conn`` back after its call (to the lanes if kept, else to the pool)."""
        if id(conn) in self._kept:
            self._free.append(conn)
        else:
            await self._pool.release(conn)

    def kept(self) -> int:
        """How many connections are kept now (free or in a call)."""
        return len(self._kept)


_LANES: weakref.WeakKeyDictionary[Redis, Lanes] = weakref.WeakKeyDictionary()


def lanes_of(client: Redis) -> Lanes:
    """The lanes of ``client`` (made on first use).

    A pool of ``pool_size`` connections keeps :data:`KEPT` of them for hot calls only when
    at least :data:`SPARE` more remain; a smaller pool keeps none, so no other call can
    ever wait for a connection a lane holds.
    """
    lanes = _LANES.get(client)
    if lanes is None:
        pool = client.connection_pool
        size = getattr(pool, "max_connections", 0) or 0
        lanes = _LANES[client] = Lanes(pool, KEPT if size >= KEPT + SPARE else 0)
    return lanes


async def write(conn: Any, payload: bytes, reconnect: bool = True) -> None:
    """Send ``payload`` on ``conn``: straight to the transport when it is small and the
    connection is up and needs no health check, else through redis-py.

    A connection the server closed while idle is connected afresh first, unless
    ``reconnect`` is false (the request belongs to a session begun earlier on this
    connection, such as a ``WATCH``): then the call fails as the connection did.

    Raises:
        redis.exceptions.ConnectionError: the connection was closed before the request
            left (nothing was sent); it is closed on our side too.
        redis.exceptions.TimeoutError: the kernel did not take the request in time.
    """
    writer, reader = _streams(conn)
    if writer is not None and (writer.transport.is_closing() or _stale(reader)):
        # Closed by the server while it was idle (or left with unread bytes): connect
        # afresh, as the pool does when it hands out such a connection.
        await conn.disconnect(nowait=True)
    if not conn.is_connected:
        if not reconnect:
            raise RedisConnectionError("Connection closed by the server before write")
        # connect(), not a bare reconnect: a Sentinel connection asks for the primary anew.
        await conn.connect()
        writer, reader = _streams(conn)
    if writer is None or len(payload) > DIRECT_BYTES or _health_check_due(conn):
        await conn.send_packed_command(payload)
        return
    try:
        writer.write(payload)
    except (OSError, RuntimeError) as exc:
        await conn.disconnect(nowait=True)
        raise RedisConnectionError(f"Error while writing to socket: {exc!r}") from exc
    transport = writer.transport
    if transport.is_closing():
        # The write failed at once (the peer had gone): nothing reached the server.
        await conn.disconnect(nowait=True)
        raise RedisConnectionError("Connection closed by the server while writing")
    if transport.get_write_buffer_size():
        # The kernel did not take it all: wait for it as redis-py would.
        try:
            await _drain(writer, conn.socket_timeout)
        except asyncio.TimeoutError:
            await conn.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await conn.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc!r}") from exc


async def _drain(writer: Any, timeout: float | None) -> None:
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            await writer.drain()
    else:  # pragma: no cover - Python 3.10
        await asyncio.wait_for(writer.drain(), timeout)


def _streams(conn: Any) -> tuple[asyncio.StreamWriter | None, asyncio.StreamReader | None]:
    """The connection's asyncio streams, or (None, None) when it has none of that kind
    (not connected, or a test double): redis-py then writes."""
    writer = getattr(conn, "_writer", None)
    reader = getattr(conn, "_reader", None)
    if type(writer) is asyncio.StreamWriter and type(reader) is asyncio.StreamReader:
        return writer, reader
    return None, None


def _stale(reader: asyncio.StreamReader | None) -> bool:
    """Whether the server closed the connection, or left bytes no call asked for."""
    if reader is None:
        return False
    return (
        reader.at_eof() or reader.exception() is not None or bool(getattr(reader, "_buffer", b""))
    )


def _health_check_due(conn: Any) -> bool:
    interval = getattr(conn, "health_check_interval", 0)
    if not interval:
        return False
    due: float = getattr(conn, "next_health_check", 0.0)
    return asyncio.get_running_loop().time() > due
