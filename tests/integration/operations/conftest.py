"""Fixtures for the operations tests: real ``runnel worker`` processes and ``runnel``
commands on a throwaway Redis (the engine tests' harness, with this package's app)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from runnel import App
from tests.integration.engine.harness import WorkerProcess, process_env, runnel

from .apps.shop import build

APP = "tests.integration.operations.apps.shop"

Spawn = Callable[..., WorkerProcess]
Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def app_name() -> str:
    """A fresh app name for this test."""
    return f"o{uuid4().hex[:8]}"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client on the test server (results, raw entries)."""
    redis = Redis.from_url(redis_url)
    try:
        yield redis
    finally:
        await redis.aclose()


@pytest.fixture
async def shop(app_name: str, redis_url: str) -> AsyncIterator[App]:
    """The test's App in this process (to send), closed at the end."""
    app = build(app_name, redis_url)
    try:
        yield app
    finally:
        await app.close()


@pytest.fixture
def env(app_name: str, redis_url: str) -> dict[str, str]:
    """The environment of this test's workers and commands."""
    return process_env(app_name, redis_url)


@pytest.fixture
def cli(env: Mapping[str, str]) -> Cli:
    """Run ``runnel ARGS...`` to completion with the test's environment."""

    def run(*args: str, extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return runnel(*args, env={**env, **(extra or {})})

    return run


@pytest.fixture
def spawn(env: Mapping[str, str], tmp_path: Path) -> Iterator[Spawn]:
    """Start ``runnel worker`` processes of the test's app; all are killed at teardown."""
    started: list[WorkerProcess] = []

    def start(processors: Sequence[str]) -> WorkerProcess:
        argv = [sys.executable, "-m", "runnel", "worker", f"{APP}:app"]
        argv += ["--processors", ",".join(processors)]
        worker = WorkerProcess(argv, env, tmp_path, f"worker-{len(started)}")
        started.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.kill()


def status_of(cli: Cli, processor: str) -> dict[str, Any]:
    """``runnel status --json --processor P``: the processor's part of the report."""
    done = cli("status", APP, "--processor", processor, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (stream,) = report["streams"]
    (proc,) = stream["processors"]
    return {"leader": report["leader"], **proc}
