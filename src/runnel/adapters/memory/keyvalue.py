"""MemoryKeyValue: the KeyValue port on a :class:`MemoryBroker`.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> kv = MemoryKeyValue(MemoryBroker(SimulatedClock()))
    >>> asyncio.run(kv.hash_set_missing("h", {b"a": b"1"}))
    {b'a': b'1'}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runnel.adapters.memory.broker import MemoryBroker


class MemoryKeyValue:
    """Strings with expiry and hashes in a broker's keyspace (see the module's example)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    async def get(self, key: str) -> bytes | None:
        """The string at ``key``, or None if missing or expired."""
        return self.broker.get_string(key)

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``, expiring after ``ttl`` seconds when given (else never)."""
        self.broker.set_string(key, value, ttl)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        """Set ``key`` to ``value`` only if it holds ``expected`` (None: is missing)."""
        if self.broker.get_string(key) != expected:
            return False
        self.broker.set_string(key, value)
        return True

    async def exists(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key holds a live value."""
        return [self.broker.exists(key) for key in keys]

    async def hash_get_all(self, key: str) -> dict[bytes, bytes]:
        """Every field of the hash at ``key`` (empty if missing)."""
        return dict(self.broker.hash(key) or {})

    async def hash_set(self, key: str, mapping: Mapping[bytes, bytes]) -> None:
        """Set the fields of ``mapping`` in the hash at ``key``."""
        if mapping:
            stored = self.broker.hash(key, create=True)
            assert stored is not None
            stored.update(mapping)

    async def hash_set_missing(
        self, key: str, mapping: Mapping[bytes, bytes]
    ) -> dict[bytes, bytes]:
        """Set the fields of ``mapping`` that ``key`` lacks, atomically; return the whole hash."""
        stored = self.broker.hash(key, create=bool(mapping))
        if stored is None:
            return {}
        for name, value in mapping.items():
            stored.setdefault(name, value)
        return dict(stored)

    async def hash_delete(self, key: str, *fields: bytes) -> int:
        """Delete ``fields`` from the hash at ``key``; return how many existed."""
        stored = self.broker.hash(key)
        if stored is None:
            return 0
        gone = sum(1 for name in fields if stored.pop(name, None) is not None)
        self.broker.drop_if_empty(key)
        return gone

    async def delete(self, *keys: str) -> int:
        """Delete keys of any type; return how many existed."""
        return self.broker.delete(keys)
