"""``redis_wait_replicas`` on fakeredis: a fetch round, commit or dead letter that fewer
replicas confirmed than required is reported to the worker, which counts it in
``runnel_worker_writes_not_replicated_total``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
from dependency_injector import providers
from redis.asyncio import Redis

from runnel import App, Record
from runnel.adapters.memory.metrics import MemoryMetrics
from runnel.adapters.redis.replicated import ReplicatedStreamLog
from runnel.ports import ReadRequest, ReplicaShortfalls
from runnel.runtime.worker import Worker

pytest.importorskip("lupa", reason="fakeredis runs Lua scripts only with lupa installed")


class Tick(Record):
    key: str
    seq: int


class ConfirmedBy(ReplicatedStreamLog):
    """A replicated log whose WAIT answers ``confirmed`` replicas (fakeredis has no WAIT)."""

    def __init__(self, client: Redis, replicas: int, confirmed: int) -> None:
        super().__init__(client, replicas, timeout=0.1)
        self.answer = confirmed

    async def confirmed(self) -> int:
        return self.answer


@pytest.fixture
async def fake_client() -> AsyncIterator[Redis]:
    client = fakeredis.FakeAsyncRedis(
        server=fakeredis.FakeServer(), version=(7, 0), protocol=2, decode_responses=False
    )
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_fetch_round_short_of_replicas_is_reported_and_one_that_is_not_is_silent(
    fake_client: Redis,
) -> None:
    await fake_client.xgroup_create("s", "g", id=b"0", mkstream=True)
    await fake_client.xadd("s", {b"n": b"1"})
    reported: list[str] = []
    short = ConfirmedBy(fake_client, replicas=2, confirmed=1)
    short.on_short = reported.append
    assert isinstance(short, ReplicaShortfalls)
    _, reads = await short.exchange([], [ReadRequest("s", "g", "c", count=10)])
    assert [len(r) for r in reads if isinstance(r, list)] == [1]  # the round did its work
    assert reported == ["fetch_round"]
    enough = ConfirmedBy(fake_client, replicas=1, confirmed=1)
    enough.on_short = reported.append
    await enough.exchange([], [ReadRequest("s", "g", "c", count=10)])
    assert reported == ["fetch_round"]


def test_a_worker_counts_the_writes_its_log_reports_short() -> None:
    app = App(name="shortfalls", redis_url="redis://127.0.0.1:1", redis_wait_replicas=1)
    metrics = MemoryMetrics()
    app.container.metrics.override(providers.Object(metrics))
    ticks = app.stream("ticks", record=Tick, partition_by="key")

    @app.processor(ticks)
    async def proc(events: object) -> None: ...

    log = app.backend.log
    assert isinstance(log, ReplicatedStreamLog)
    Worker(app.plan(), install_signals=False)
    assert log.on_short is not None
    log.on_short("fetch_round")
    log.on_short("fetch_round")
    log.on_short("commit")
    name = "runnel_worker_writes_not_replicated_total"
    assert metrics.value(name, app="shortfalls", write="fetch_round") == 2
    assert metrics.value(name, app="shortfalls", write="commit") == 1
