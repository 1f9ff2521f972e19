"""Worker presence on Redis: one named connection per worker, seen with ``CLIENT LIST``.

A worker opens a connection of its own named after it (``CLIENT SETNAME`` as it
connects) and PINGs on it every half tick, which also opens it again at once after it was
closed (a ``CLIENT KILL``, a Redis restart). When the worker's process dies, the operating system
closes the connection and Redis drops it from ``CLIENT LIST`` at once; its peers see
that within a tick. Listing connections needs ``CLIENT LIST`` (``+client|list``), naming
them ``CLIENT SETNAME`` (``+client|setname``); without them :meth:`RedisPresence.present`
answers None and workers fall back to heartbeat expiry.

Example:
    >>> from redis.asyncio import Redis
    >>> RedisPresence(Redis())._client is not None   # no I/O until used
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from runnel.adapters.redis._errors import refused_permission, translated
from runnel.errors import BackendError, PermissionDenied

log = logging.getLogger(__name__)

CLOSE_WAIT = 1.0
"""Seconds closing the presence connection may take when the worker stops."""


class RedisPresence:
    """The Presence capability on a Redis client's server (see the module docstring)."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._refused = False

    async def hold(self, name: str, every: float) -> None:
        """Keep a connection named ``name`` open, PINGing it every ``every`` seconds."""
        source = self._client.connection_pool
        pool = BlockingConnectionPool(
            connection_class=source.connection_class,
            max_connections=1,
            **{**source.connection_kwargs, "client_name": name},
        )
        client = Redis.from_pool(pool)
        try:
            while True:
                try:
                    # translated() also restores a cancellation redis-py may swallow
                    # while it tidies a connection: this loop must end when cancelled.
                    with translated():
                        try:
                            await client.ping()
                        except RedisError as exc:
                            if refused_permission(exc):
                                raise
                            await client.ping()  # at once, on a new connection
                except PermissionDenied:
                    if not self._refused:
                        self._refused = True
                        log.warning(
                            "the Redis user may not name its connection (CLIENT SETNAME): "
                            "a dead worker is noticed when its heartbeat expires, not at once "
                            "(grant +client|setname and +client|list, see docs/security.md)"
                        )
                except BackendError:
                    pass  # unreachable for now: the heartbeat reports that; try again
                await asyncio.sleep(every)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.aclose(), CLOSE_WAIT)

    async def present(self, names: Collection[str]) -> set[str] | None:
        """Which of ``names`` have a connection now (None: ``CLIENT LIST`` refused)."""
        if not names:
            return set()
        try:
            with translated():
                raw: Any = await self._client.client_list(_type="normal")
        except PermissionDenied:
            if not self._refused:
                self._refused = True
                log.warning(
                    "the Redis user may not list connections (CLIENT LIST): a dead worker is "
                    "noticed when its heartbeat expires, not at once (grant +client|list and "
                    "+client|setname, see docs/security.md)"
                )
            return None
        except BackendError:
            return None
        found = set()
        for client in raw:
            value = client.get("name") or client.get(b"name") or b""
            found.add(value.decode() if isinstance(value, bytes) else str(value))
        return {n for n in names if n in found}
