"""The port contracts, bound to the cluster adapters on the three-primary test cluster.

The suites give every key of a test one hash tag (``tests.contracts.key_space``), so the
keys of a test share a slot, as a partition's keys do in the cluster key layout: the
adapters' behaviour is the contract's. Splitting calls over several slots is checked in
``test_cluster_backend`` and by the engine's scenarios in this folder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from runnel.adapters.redis.cluster import (
    ClusterKeyValue,
    ClusterPartitionLocks,
    ClusterStreamLog,
    RunnelRedisCluster,
    make_cluster_client,
)
from runnel.adapters.redis.membership import RedisMembership
from tests.contracts import Advance
from tests.contracts.bindings import Adapters, Bound
from tests.contracts.keyvalue_contract import KeyValueContract
from tests.contracts.locks_contract import LocksContract
from tests.contracts.membership_contract import MembershipContract
from tests.contracts.streamadmin_contract import StreamAdminContract
from tests.contracts.streamlog_contract import StreamLogContract
from tests.contracts.transactions_contract import TransactionsContract


@pytest.fixture
async def cluster_client(redis_url: str) -> AsyncIterator[RunnelRedisCluster]:
    client = make_cluster_client(redis_url, pool_size=8)
    try:
        yield client  # type: ignore[misc]
    finally:
        await client.aclose()


@pytest.fixture
def adapters(cluster_client: Any) -> Adapters:
    return Adapters(
        log=lambda: ClusterStreamLog(cluster_client),
        locks=lambda: ClusterPartitionLocks(cluster_client),
        kv=lambda: ClusterKeyValue(cluster_client),
        membership=lambda: RedisMembership(cluster_client),
    )


@pytest.fixture
def advance() -> Advance:
    return asyncio.sleep


class TestClusterStreamLog(Bound, StreamLogContract):
    """StreamLog contract on Redis Cluster."""


class TestClusterPartitionLocks(Bound, LocksContract):
    """PartitionLocks contract on Redis Cluster."""


class TestClusterKeyValue(Bound, KeyValueContract):
    """KeyValue contract on Redis Cluster."""


class TestClusterMembership(Bound, MembershipContract):
    """Membership contract on Redis Cluster."""


class TestClusterStreamAdmin(Bound, StreamAdminContract):
    """StreamAdmin contract on a Redis Cluster (each test's keys share one slot)."""


class TestClusterTransactions(Bound, TransactionsContract):
    """Idempotent appends, commits and the outbox on Redis Cluster (each test's keys
    share one slot: the cluster key layout puts a partition's keys in one)."""
