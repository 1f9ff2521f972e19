"""``redis_wait_replicas``: sends wait until replicas hold their events.

On a primary with one replica, found through the Sentinels: waiting for one replica
succeeds and the replica has the events when the send returns; waiting for two fails
with NotReplicated after the timeout, naming how many confirmed, the events being on
the primary, and counted in ``runnel_sends_not_replicated_total``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from runnel import App, Events
from runnel.adapters.redis.replicated import ReplicatedStreamLog
from runnel.errors import NotReplicated
from runnel.runtime.worker import Worker
from tests.integration.engine.apps.common import Tick
from tests.topologies import RunningSentinels


async def test_a_send_waiting_for_one_replica_returns_once_the_replica_has_it(
    sentinels: RunningSentinels, app_name: str
) -> None:
    app = App(name=app_name, redis_url=sentinels.url, redis_wait_replicas=1)
    stream = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    replica = Redis(port=sentinels.replicas[0].port)
    try:
        assert isinstance(app.backend.log, ReplicatedStreamLog)
        for round_ in range(20):
            await stream.send(*(Tick(key=f"k{i}", seq=round_) for i in range(10)))
            # No waiting here: the send returned, so the replica already holds it.
            held = sum([await replica.xlen(stream.keys.stream(n)) for n in range(2)])
            assert held == 10 * (round_ + 1)
    finally:
        await app.close()
        await replica.aclose()


async def test_a_send_waiting_for_more_replicas_than_there_are_fails_naming_the_count(
    sentinels: RunningSentinels, app_name: str, client: Any
) -> None:
    app = App(
        name=app_name,
        redis_url=sentinels.url,
        redis_wait_replicas=2,
        redis_wait_timeout=0.2,
        metrics=True,
    )
    stream = app.stream("ticks", record=Tick, partition_by="key", partition_count=1)
    try:
        with pytest.raises(NotReplicated, match="1 of the 2 replicas") as caught:
            await stream.send(Tick(key="k", seq=1))
        assert caught.value.replicas == 1
        assert "\n" not in str(caught.value)
        assert await client.xlen(stream.keys.stream(0)) == 1  # on the primary all the same
        counted = app.metrics_registry.get_sample_value(
            "runnel_sends_not_replicated_total", {"app": app_name, "stream": "ticks"}
        )
        assert counted == 1
    finally:
        await app.close()


async def test_a_workers_fetch_rounds_short_of_replicas_are_counted_and_its_work_done(
    sentinels: RunningSentinels, app_name: str
) -> None:
    app = App(
        name=app_name,
        redis_url=sentinels.url,
        redis_wait_replicas=2,  # one replica exists: every round falls short
        redis_wait_timeout=0.05,
        default_join_delay=0,
        metrics=True,
    )
    stream = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    seen: list[int] = []

    @app.processor(stream)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)

    def short_rounds() -> float:
        found = app.metrics_registry.get_sample_value(
            "runnel_worker_writes_not_replicated_total",
            {"app": app_name, "write": "fetch_round"},
        )
        return found or 0.0

    with pytest.raises(NotReplicated):  # the send is short of replicas too (and written)
        await stream.send(*(Tick(key=f"k{i}", seq=i) for i in range(10)))
    worker = Worker(app.plan(), install_signals=False)
    running = asyncio.create_task(worker.run())
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while len(seen) < 10 or short_rounds() == 0:
            assert asyncio.get_running_loop().time() < deadline, (seen, short_rounds())
            assert not running.done()
            await asyncio.sleep(0.05)
        assert sorted(seen) == list(range(10))  # the rounds did their work all the same
    finally:
        worker.request_stop()
        await asyncio.wait_for(running, 30)
        await app.close()
