"""The port contracts, bound to the Redis adapters on a real server.

Each test gets its own client; the suites name their keys per test, so nothing is flushed.
``advance`` really sleeps: Redis expires keys and measures idle time on its own clock.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tests.contracts import Advance
from tests.contracts.bindings import Adapters, Bound, redis_adapters
from tests.contracts.keyvalue_contract import KeyValueContract
from tests.contracts.locks_contract import LocksContract
from tests.contracts.membership_contract import MembershipContract
from tests.contracts.streamadmin_contract import StreamAdminContract
from tests.contracts.streamlog_contract import StreamLogContract
from tests.contracts.transactions_contract import TransactionsContract


@pytest.fixture
def adapters(redis_client: Redis) -> Adapters:
    return redis_adapters(redis_client)


@pytest.fixture
def advance() -> Advance:
    return asyncio.sleep


class TestRedisStreamLog(Bound, StreamLogContract):
    """StreamLog contract on Redis."""


class TestRedisTransactions(Bound, TransactionsContract):
    """Idempotent appends and effectively-once commits on the redis backend."""


class TestRedisPartitionLocks(Bound, LocksContract):
    """PartitionLocks contract on Redis."""


class TestRedisKeyValue(Bound, KeyValueContract):
    """KeyValue contract on Redis."""


class TestRedisMembership(Bound, MembershipContract):
    """Membership contract on Redis."""


class TestRedisStreamAdmin(Bound, StreamAdminContract):
    """StreamAdmin contract on Redis."""
