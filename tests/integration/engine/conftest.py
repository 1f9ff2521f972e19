"""Fixtures for end-to-end engine tests: real ``runnel worker`` processes on a real Redis.

Every test gets its own app name (``t<hex>``), so its keys and results are its own. Workers
started through ``spawn`` are always killed at teardown, whatever the test did.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from tests.servers import ServerUnavailable, running_server, server_binary

from .harness import APPS, WorkerProcess, process_env

Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def app_name() -> str:
    """A fresh app name for this test."""
    return f"t{uuid4().hex[:8]}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """A plain redis-py client on the test server (to read results, plant entries, inspect)."""
    redis = Redis.from_url(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
def spawn(redis_url: str, app_name: str, tmp_path: Path) -> Iterator[Spawn]:
    """Start ``runnel worker apps.<module>:app`` processes; all are killed at teardown.

    Call it as ``spawn("ordering", processors=["proc"], env={...}, redis_url=...)``.
    """
    started: list[WorkerProcess] = []

    def start(
        module: str,
        processors: Sequence[str] | None = None,
        env: Mapping[str, str | None] | None = None,
        url: str | None = None,
        name: str | None = None,
    ) -> WorkerProcess:
        target = url or redis_url
        argv = [
            "-m",
            "runnel",
            "worker",
            f"{APPS}.{module}:app",
            "--redis-url",
            target,
        ]
        if processors is not None:
            argv += ["--processors", ",".join(processors)]
        worker = WorkerProcess(
            [sys.executable, *argv],
            process_env(name or app_name, target, env),
            tmp_path,
            f"{module}-{len(started)}",
        )
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


@pytest.fixture
def password_redis_url() -> Iterator[str]:
    """The URL, password included, of a throwaway redis-server started with
    ``--requirepass`` (skipped when no redis-server binary is installed)."""
    try:
        binary = server_binary()
    except ServerUnavailable as exc:
        pytest.skip(f"no server binary to start a password-protected server: {exc}")
    password = f"pw-{uuid4().hex}"
    with running_server(["--requirepass", password], binary=binary) as server:
        yield f"redis://:{password}@127.0.0.1:{server.port}/0"
