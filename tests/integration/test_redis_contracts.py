"""The port contracts, bound to the Redis adapters on a real server.

Each test gets its own client; the suites name their keys per test, so nothing is flushed.
``advance`` really sleeps: Redis expires keys and measures idle time on its own clock.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from runnel.adapters.redis.keyvalue import RedisKeyValue
from runnel.adapters.redis.locks import RedisPartitionLocks
from runnel.adapters.redis.membership import RedisMembership
from runnel.adapters.redis.streams import RedisStreamLog
from runnel.ports import KeyValue, Membership, PartitionLocks
from tests.contracts import Advance, LogUnderTest, MakeKV, MakeLocks, MakeLog, MakeMembership
from tests.contracts.keyvalue_contract import KeyValueContract
from tests.contracts.locks_contract import LocksContract
from tests.contracts.membership_contract import MembershipContract
from tests.contracts.streamlog_contract import StreamLogContract


class RedisBinding:
    """Fixtures shared by the three bindings: adapters on the test's client."""

    @pytest.fixture
    def make_log(self, redis_client: Redis) -> MakeLog:
        async def make() -> LogUnderTest:
            return RedisStreamLog(redis_client)

        return make

    @pytest.fixture
    def make_locks(self, redis_client: Redis) -> MakeLocks:
        async def make() -> PartitionLocks:
            return RedisPartitionLocks(redis_client)

        return make

    @pytest.fixture
    def make_kv(self, redis_client: Redis) -> MakeKV:
        async def make() -> KeyValue:
            return RedisKeyValue(redis_client)

        return make

    @pytest.fixture
    def make_membership(self, redis_client: Redis) -> MakeMembership:
        async def make() -> Membership:
            return RedisMembership(redis_client)

        return make

    @pytest.fixture
    def advance(self) -> Advance:
        return asyncio.sleep


class TestRedisStreamLog(RedisBinding, StreamLogContract):
    """StreamLog contract on Redis."""


class TestRedisPartitionLocks(RedisBinding, LocksContract):
    """PartitionLocks contract on Redis."""


class TestRedisKeyValue(RedisBinding, KeyValueContract):
    """KeyValue contract on Redis."""


class TestRedisMembership(RedisBinding, MembershipContract):
    """Membership contract on Redis."""
