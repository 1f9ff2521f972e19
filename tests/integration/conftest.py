"""A real Redis for the integration tests, and a client per test.

``redis_url`` (session scope) is, in order of preference:

1. ``RUNNEL_TEST_REDIS_URL`` when set (a server you run; tests never flush it: every test
   names its own keys, and tests that change server-wide state, such as the script cache,
   ask for ``redis_is_throwaway`` and skip);
2. a throwaway server started from a binary, on a free port bound to 127.0.0.1, without
   persistence, in a temporary directory, stopped at the end: ``redis-server`` on ``PATH``
   unless ``RUNNEL_TEST_REDIS_SERVER`` names another (``redis-stack``, ``valkey`` or a
   path; see ``tests/servers.py``);
3. ``testcontainers``' ``RedisContainer`` where Docker works;
4. otherwise the integration tests are skipped, saying why.

Every test collected under ``tests/integration`` gets the ``integration`` marker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from runnel.adapters.redis.client import make_client
from tests.servers import (
    SERVER_ENV,
    RunningServer,
    ServerUnavailable,
    running_server,
    server_binary,
)

_HERE = Path(__file__).parent


def pytest_report_header(config: pytest.Config) -> str:
    """Which server the integration tests start (or use)."""
    if _configured_url():
        return "runnel integration server: RUNNEL_TEST_REDIS_URL (a server of yours)"
    try:
        return f"runnel integration server: {server_binary().describe()}"
    except ServerUnavailable as exc:
        return f"runnel integration server: none ({exc})"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under ``tests/integration`` as ``integration``."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(["docker", "info"], capture_output=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _configured_url() -> str | None:
    return os.environ.get("RUNNEL_TEST_REDIS_URL") or None


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis server the integration tests may use (see the module docstring)."""
    configured = _configured_url()
    if configured:
        yield configured
        return
    try:
        binary = server_binary()
    except ServerUnavailable as exc:
        if os.environ.get(SERVER_ENV):
            pytest.fail(str(exc), pytrace=False)  # a server was asked for by name: never skip
        binary = None
    if binary is not None:
        try:
            with running_server(binary=binary) as server:
                yield server.url
        except ServerUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
        return
    if _docker_works():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7.0") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    pytest.skip(
        "no Redis for integration tests: set RUNNEL_TEST_REDIS_URL, install redis-server "
        "(apt-get install redis-server), or make Docker available"
    )


@pytest.fixture(scope="session")
def redis_is_throwaway(redis_url: str) -> bool:
    """Whether ``redis_url`` is a server this test session started (and stops at the end).

    Only such a server may have server-wide state changed (``SCRIPT FLUSH``, ``CONFIG
    SET``): a server given by ``RUNNEL_TEST_REDIS_URL`` may be shared with others.
    """
    return _configured_url() is None


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """A fresh client on ``redis_url``, configured as in production (``make_client``)."""
    client = make_client(redis_url, pool_size=8)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def own_server() -> Iterator[RunningServer]:
    """A redis-server of the test's own (``noeviction``), for tests that change its settings,
    pause it or kill its clients."""
    try:
        with running_server(["--maxmemory-policy", "noeviction"]) as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(f"needs a redis-server of its own: {exc}")


@pytest.fixture
async def own_admin(own_server: RunningServer) -> AsyncIterator[Redis]:
    """A plain client of ``own_server``, to set it up and look at what a test wrote."""
    client = Redis(port=own_server.port, socket_timeout=10)
    try:
        yield client
    finally:
        await client.aclose()
