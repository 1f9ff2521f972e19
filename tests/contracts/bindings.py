"""Binding the contract suites to an adapter family, from one fixture.

A binding module provides two fixtures, ``adapters`` (the family's four ports on one
backend, fresh for each test) and ``advance``, and binds each suite by subclassing it with
:class:`Bound`::

    class TestMemoryStreamLog(Bound, StreamLogContract): ...

Example:
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> adapters = memory_adapters(MemoryBroker(SimulatedClock()))
    >>> type(adapters.log()).__name__, type(adapters.kv()).__name__
    ('MemoryStreamLog', 'MemoryKeyValue')
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import pytest

from runnel.adapters.memory.broker import MemoryBroker
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.adapters.memory.membership import MemoryMembership
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.ports import KeyValue, Membership, PartitionLocks
from tests.contracts import LogUnderTest, MakeKV, MakeLocks, MakeLog, MakeMembership

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")
B = TypeVar("B")


@dataclass(frozen=True)
class Adapters:
    """One adapter family's ports, each made fresh on one shared backend."""

    log: Callable[[], LogUnderTest]
    locks: Callable[[], PartitionLocks]
    kv: Callable[[], KeyValue]
    membership: Callable[[], Membership]


def memory_adapters(broker: MemoryBroker) -> Adapters:
    """The memory adapters on ``broker``."""
    return _on(broker, MemoryStreamLog, MemoryPartitionLocks, MemoryKeyValue, MemoryMembership)


def redis_adapters(client: Redis) -> Adapters:
    """The Redis adapters on ``client`` (a real server's, or fakeredis')."""
    from runnel.adapters.redis.keyvalue import RedisKeyValue
    from runnel.adapters.redis.locks import RedisPartitionLocks
    from runnel.adapters.redis.membership import RedisMembership
    from runnel.adapters.redis.streams import RedisStreamLog

    return _on(client, RedisStreamLog, RedisPartitionLocks, RedisKeyValue, RedisMembership)


def _on(
    backend: B,
    log: Callable[[B], LogUnderTest],
    locks: Callable[[B], PartitionLocks],
    kv: Callable[[B], KeyValue],
    membership: Callable[[B], Membership],
) -> Adapters:
    return Adapters(
        log=lambda: log(backend),
        locks=lambda: locks(backend),
        kv=lambda: kv(backend),
        membership=lambda: membership(backend),
    )


def _factory(build: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def make() -> T:
        return build()

    return make


class Bound:
    """The suites' ``make_*`` fixtures, from the binding module's ``adapters`` fixture."""

    @pytest.fixture
    def make_log(self, adapters: Adapters) -> MakeLog:
        return _factory(adapters.log)

    @pytest.fixture
    def make_locks(self, adapters: Adapters) -> MakeLocks:
        return _factory(adapters.locks)

    @pytest.fixture
    def make_kv(self, adapters: Adapters) -> MakeKV:
        return _factory(adapters.kv)

    @pytest.fixture
    def make_membership(self, adapters: Adapters) -> MakeMembership:
        return _factory(adapters.membership)
