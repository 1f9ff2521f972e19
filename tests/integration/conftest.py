"""A real Redis for the integration tests, and a client per test.

``redis_url`` (session scope) is, in order of preference:

1. ``RUNNEL_TEST_REDIS_URL`` when set (a server you run; tests never flush it: every test
   names its own keys, and tests that change server-wide state, such as the script cache,
   ask for ``redis_is_throwaway`` and skip);
2. a throwaway ``redis-server`` started from the binary on ``PATH``, on a free port bound
   to 127.0.0.1, without persistence, in a temporary directory, stopped at the end;
3. ``testcontainers``' ``RedisContainer`` where Docker works;
4. otherwise the integration tests are skipped, saying why.

Every test collected under ``tests/integration`` gets the ``integration`` marker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from runnel.adapters.redis.client import make_client

_HERE = Path(__file__).parent
_STARTUP_SECONDS = 10.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark everything under ``tests/integration`` as ``integration``."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def _redis_server(binary: str) -> Iterator[str]:
    """Run ``binary`` on a free local port until the context exits; yield its URL."""
    with tempfile.TemporaryDirectory(prefix="runnel-redis-") as workdir:
        port = _free_port()
        command = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            str(Path(workdir) / "redis.log"),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + _STARTUP_SECONDS
            while not _answers_ping(port):
                if process.poll() is not None:
                    _, err = process.communicate()
                    pytest.fail(f"redis-server exited with {process.returncode}: {err!r}")
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not answer PING on port {port} in time")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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
    binary = shutil.which("redis-server")
    if binary is not None:
        with _redis_server(binary) as url:
            yield url
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
