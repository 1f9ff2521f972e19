"""RedisPartitionLocks: the :class:`~runnel.ports.PartitionLocks` port on Redis strings.

A lock is a string ``"<owner>:<epoch>"`` with a TTL. Its epoch comes from ``INCR`` on an
epoch counter inside the acquire script, seeded from the server clock when missing, so a
newer owner always has a larger epoch (a fencing token external stores can check).
Extend and release act only where the lock still holds the lease's token, each in one
script call for any number of leases; extend never re-takes a lock that is gone.

Example:
    >>> from redis.asyncio import Redis
    >>> locks = RedisPartitionLocks(Redis())   # no I/O until the first call
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from runnel.adapters.redis import _replies
from runnel.adapters.redis._errors import translated
from runnel.adapters.redis._scripts import Arg, register
from runnel.ports import Lease


def _ttl_ms(ttl: float) -> int:
    # PX needs a positive integer; a lock shorter than 1 ms would be meaningless anyway.
    return max(1, round(ttl * 1000))


class RedisPartitionLocks:
    """Expiring locks with fencing epochs on Redis.

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=False``.

    Example:
        >>> from redis.asyncio import Redis
        >>> RedisPartitionLocks(Redis())._acquire.sha == RedisPartitionLocks(Redis())._acquire.sha
        True
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._acquire = register(client, "acquire")
        self._extend = register(client, "extend")
        self._release = register(client, "release")

    async def acquire(self, key: str, epoch_key: str, owner: str, ttl: float) -> Lease | None:
        """Take ``key`` for ``ttl`` seconds if free, with the next epoch; None if held."""
        with translated():
            raw = await self._acquire(keys=[key, epoch_key], args=[owner, _ttl_ms(ttl)])
        epoch = _replies.epoch(raw)
        if epoch is None:
            return None
        return Lease(key=key, token=f"{owner}:{epoch}".encode(), epoch=epoch)

    async def extend(self, leases: Sequence[Lease], ttl: float) -> list[bool]:
        """Renew each lease still held with its token to ``ttl`` seconds from now."""
        if not leases:
            return []
        args: list[Arg] = [_ttl_ms(ttl), *(lease.token for lease in leases)]
        with translated():
            raw = await self._extend(keys=[lease.key for lease in leases], args=args)
        return _replies.flags(raw, len(leases))

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        """Delete each lock still held with its lease's token; True where it was."""
        if not leases:
            return []
        args: list[Arg] = [lease.token for lease in leases]
        with translated():
            raw = await self._release(keys=[lease.key for lease in leases], args=args)
        return _replies.flags(raw, len(leases))

    async def holder(self, key: str) -> bytes | None:
        """The token currently holding ``key``, if any."""
        with translated():
            return _replies.optional_bytes(await self._client.get(key))

    async def expires_in(self, key: str) -> float | None:
        """Seconds until the lock at ``key`` expires (PTTL); None if it is free."""
        with translated():
            ms = _replies.as_int(await self._client.pttl(key))
        # -2: no such key; -1: no expiry (never set by us, but then it never frees itself).
        if ms == -2:
            return None
        return float("inf") if ms == -1 else ms / 1000.0
