"""A local three-primary Redis Cluster for the tests in this folder.

``redis_url`` here is the cluster's ``redis+cluster://`` URL, and ``client`` a
``RedisCluster``: the engine's end-to-end tests imported into this folder run unchanged
on the cluster (the cluster key layout, the cluster adapters). The cluster (three
``redis-server --cluster-enabled yes`` on free ports, formed with ``redis-cli --cluster
create``) is started once per session and torn down at the end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.engine.conftest import app_name, spawn  # noqa: F401  # fixtures
from tests.servers import ServerUnavailable
from tests.topologies import RunningCluster, client_for, running_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[RunningCluster]:
    """Three cluster primaries on free ports of 127.0.0.1, formed into one cluster."""
    try:
        with running_cluster(masters=3) as found:
            yield found
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_url(cluster: RunningCluster) -> str:
    """The cluster's ``redis+cluster://`` URL (every node)."""
    return cluster.url


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    """A plain ``RedisCluster`` client (to read results, inspect keys)."""
    found = client_for(redis_url)
    try:
        yield found
    finally:
        await found.aclose()
