"""MemoryPartitionLocks: expiring locks with fencing epochs on a :class:`MemoryBroker`.

Locks are strings in the broker's keyspace holding ``b"<owner>:<epoch>"``, with an expiry
judged on the broker's clock; epochs are counters seeded from wall-clock milliseconds when
missing (so they keep growing across a reset of the store), as the Redis scripts do.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> locks = MemoryPartitionLocks(MemoryBroker(SimulatedClock()))
    >>> lease = asyncio.run(locks.acquire("lock", "epoch", "w1", ttl=10.0))
    >>> lease.token == f"w1:{lease.epoch}".encode()
    True
"""

from __future__ import annotations

from collections.abc import Sequence

from runnel.adapters.memory.broker import MemoryBroker
from runnel.ports import Lease


class MemoryPartitionLocks:
    """The PartitionLocks port in a broker's keyspace (see the module's example)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    async def acquire(self, key: str, epoch_key: str, owner: str, ttl: float) -> Lease | None:
        """Take ``key`` if free, incrementing ``epoch_key``; None if someone holds it."""
        if self.broker.exists(key):
            return None
        if not self.broker.exists(epoch_key):
            self.broker.set_string(epoch_key, str(self.broker.wall_ms()).encode())
        epoch = self.broker.incr(epoch_key)
        token = f"{owner}:{epoch}".encode()
        self.broker.set_string(key, token, ttl=ttl)
        return Lease(key, token, epoch)

    async def extend(self, leases: Sequence[Lease], ttl: float) -> list[bool]:
        """Renew each lease still held with its token; never re-acquires a lost one."""
        return [self._held(lease) and self.broker.expire(lease.key, ttl) for lease in leases]

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        """Delete each lock still held with its token; True where it was."""
        return [self._held(lease) and self.broker.delete([lease.key]) == 1 for lease in leases]

    async def holder(self, key: str) -> bytes | None:
        """The token currently holding ``key``, if any."""
        return self.broker.get_string(key)

    async def expires_in(self, key: str) -> float | None:
        """Seconds until the lock at ``key`` expires; None if it is free."""
        return self.broker.ttl(key)

    def force_release(self, key: str) -> bool:
        """Test helper, not part of the port: drop the lock at ``key`` whoever holds it."""
        return self.broker.delete([key]) == 1

    def _held(self, lease: Lease) -> bool:
        return self.broker.get_string(lease.key) == lease.token
