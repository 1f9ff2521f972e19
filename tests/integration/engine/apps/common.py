"""What the test apps share: configuration from the environment and a results recorder.

Processors record what they did by ``RPUSH``-ing JSON objects to lists in the same Redis
(``results:{app}:{kind}``): the server orders the pushes of every process, so the test can
count each event (lost, duplicated, out of order) without racing on a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from redis import exceptions as rex
from redis.asyncio import Redis

from runnel import App, Record
from tests.topologies import client_for

APP_ENV = "ENGINE_TEST_APP"
RETRY_ENV = "ENGINE_TEST_RESULTS_RETRY"
UNAVAILABLE = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ReadOnlyError,
    rex.ClusterDownError,
    rex.TryAgainError,
    rex.MasterDownError,
)
"""What a failover makes a result push fail with, for a while."""


class Tick(Record):
    """The event most test apps process: a key (the partition key) and a sequence number."""

    key: str
    seq: int


def app_name() -> str:
    """The app name the test chose for this worker (``ENGINE_TEST_APP``)."""
    return os.environ.get(APP_ENV, "tunconfigured")


def env_float(name: str, default: float) -> float:
    """A float from the environment (test knobs such as a per-event delay)."""
    raw = os.environ.get(name)
    return default if raw is None or raw == "" else float(raw)


def results_key(app: str, kind: str) -> str:
    """The Redis list a test app appends its ``kind`` results to."""
    return f"results:{app}:{kind}"


def poison_key(app: str) -> str:
    """A Redis set of ``key:seq`` strings the test apps' processors fail on."""
    return f"results:{app}:poison"


def by_number(key: object) -> int:
    """A hasher routing key ``k<n>`` to partition ``n`` (modulo the partition count)."""
    return int(str(key)[1:])


class Results:
    """Appends results of one App to Redis; the client is made on first use, in the
    worker's own event loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._client: Redis | None = None

    @property
    def client(self) -> Redis:
        """A client on the app's backend URL (read when first needed: after CLI options);
        a cluster client on a Redis Cluster."""
        if self._client is None:
            self._client = client_for(self.app.settings.redis_url)
        return self._client

    async def add(self, kind: str, **fields: Any) -> None:
        """Append one result of ``kind``; ``pid`` names the process that did it.

        With ``ENGINE_TEST_RESULTS_RETRY`` (seconds), a push that fails because Redis is
        unavailable (a failover) is tried again until then: a push whose reply was lost
        may then be recorded twice, which the tests count as a duplicate.
        """
        fields["pid"] = os.getpid()
        key, value = results_key(self.app.name, kind), json.dumps(fields)
        deadline = time.monotonic() + env_float(RETRY_ENV, 0.0)
        while True:
            try:
                await self.client.rpush(key, value)
                return
            except UNAVAILABLE:
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.1)

    async def poisoned(self, tick: Tick) -> bool:
        """Whether the test marked ``tick`` as one to fail on."""
        member = f"{tick.key}:{tick.seq}"
        return bool(await self.client.sismember(poison_key(self.app.name), member))
