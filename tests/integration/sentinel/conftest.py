"""A primary, a replica and three Sentinels on loopback, fresh for each test.

``redis_url`` here is the ``redis+sentinel://`` URL of the three Sentinels and the
service, and ``client`` the primary's client as the Sentinels name it: the engine's
end-to-end tests imported into this folder run unchanged on a Sentinel-managed primary.
A test may fail the primary over; its servers are stopped at its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.integration.engine.conftest import app_name, spawn  # noqa: F401  # fixtures
from tests.servers import ServerUnavailable
from tests.topologies import RunningSentinels, client_for, running_sentinels


@pytest.fixture
def sentinels() -> Iterator[RunningSentinels]:
    """A primary with one replica, watched by three Sentinels (quorum 2)."""
    try:
        with running_sentinels(replicas=1, sentinels=3) as found:
            yield found
    except ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def redis_url(sentinels: RunningSentinels) -> str:
    """``redis+sentinel://`` naming the three Sentinels and the service."""
    return sentinels.url


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    """The primary's client, found through the Sentinels."""
    found = client_for(redis_url)
    try:
        yield found
    finally:
        await found.aclose()
