"""Fixtures for end-to-end engine tests: real ``runnel worker`` processes on a real Redis.

Every test gets its own app name (``t<hex>``), so its keys and results are its own. Workers
started through ``spawn`` are always killed at teardown, whatever the test did.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from uuid import uuid4

import pytest
from redis.asyncio import Redis

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
        env: Mapping[str, str] | None = None,
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    """Whether something answers a PING on ``port`` (``-NOAUTH`` counts: it is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


@pytest.fixture
def password_redis_url() -> Iterator[str]:
    """The URL, password included, of a throwaway redis-server started with
    ``--requirepass`` (skipped when no redis-server binary is installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server binary to start a password-protected server")
    password = f"pw-{uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="runnel-redis-auth-") as workdir:
        port = _free_port()
        command = [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            str(Path(workdir) / "redis.log"),
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"password-protected redis-server did not start on {port}")
                time.sleep(0.05)
            yield f"redis://:{password}@127.0.0.1:{port}/0"
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()
                process.wait()
