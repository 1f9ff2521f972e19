"""The HTTP endpoint of real ``runnel worker`` processes: a scrape of /metrics under load
agrees with the events sent, and /readyz follows a Redis outage the test causes."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.servers import (
    RunningServer,
    ServerUnavailable,
    free_port,
    running_server,
    server_binary,
)

from .apps import ordering
from .apps.common import Tick
from .conftest import Spawn
from .harness import recorded, wait_for

Scrape = dict[str, list[tuple[dict[str, str], float]]]


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` of a worker's endpoint: the status (0: no answer) and the body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


async def fetch(port: int, path: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(get, port, path)


async def scrape(port: int) -> Scrape:
    status, body = await fetch(port, "/metrics")
    assert status == 200, body
    out: Scrape = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def total(samples: Scrape, name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


async def status_is(port: int, path: str, expected: int) -> bool:
    return (await fetch(port, path))[0] == expected


async def test_a_scrape_under_load_counts_every_event_sent(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str
) -> None:
    port = free_port()
    worker = spawn("ordering", env={"RUNNEL_HTTP_ADDRESS": f"127.0.0.1:{port}"})
    await wait_for(lambda: status_is(port, "/readyz", 200), "ready", within=30, workers=[worker])
    app, ticks = ordering.build(app_name, redis_url)
    events = [Tick(key=f"k{i % 40}", seq=i // 40) for i in range(4000)]
    try:
        for start in range(0, len(events), 200):  # sent while the worker processes them
            await ticks.send(*events[start : start + 200])
            if start % 1000 == 0:
                assert total(await scrape(port), "runnel_events_processed_total") <= start
    finally:
        await app.close()
    await wait_for(
        lambda: recorded(client, app_name, "seen", len(events)),
        "every event processed",
        within=60,
        workers=[worker],
    )

    async def counted() -> bool:
        return total(await scrape(port), "runnel_events_processed_total") == len(events)

    await wait_for(counted, "the processed counter to reach the events sent", workers=[worker])
    samples = await scrape(port)
    per_partition = {
        labels["partition"]: value
        for labels, value in samples["runnel_events_processed_total"]
        if labels["app"] == app_name and labels["stream"] == "ticks"
    }
    sent = {str(p): 0 for p in range(ordering.PARTITIONS)}
    for event in events:
        sent[str(ticks.partition_for(event))] += 1
    assert per_partition == sent
    assert total(samples, "runnel_events_failed_total") == 0
    assert total(samples, "runnel_partitions_owned") == ordering.PARTITIONS
    assert total(samples, "runnel_leases_gained_total") == ordering.PARTITIONS
    assert total(samples, "runnel_leader") == 1
    iterations = total(samples, "runnel_iteration_duration_seconds_count")
    assert iterations == pytest.approx(len(events), rel=0.2)  # sampled, weighted by stride
    assert total(samples, "process_cpu_seconds_total") > 0

    async def caught_up() -> bool:
        samples = await scrape(port)
        lag = samples.get("runnel_partition_lag", [])
        return len(lag) == ordering.PARTITIONS and total(samples, "runnel_partition_lag") == 0

    await wait_for(caught_up, "the lag of every partition to read 0", workers=[worker])
    status, body = await fetch(port, "/healthz")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    assert await worker.stop() == 0


@pytest.fixture
def own_server() -> Iterator[RunningServer]:
    """A redis-server of this test's own, which the test stops and starts again."""
    try:
        binary = server_binary()
    except ServerUnavailable as exc:
        pytest.skip(f"no server binary: {exc}")
    with running_server(binary=binary) as server:
        yield server


async def test_readiness_fails_while_redis_is_down_and_returns_after(
    spawn: Spawn, app_name: str, own_server: RunningServer
) -> None:
    port = free_port()
    url = own_server.url
    worker = spawn("ordering", url=url, env={"RUNNEL_HTTP_ADDRESS": f"127.0.0.1:{port}"})
    await wait_for(lambda: status_is(port, "/readyz", 200), "ready", within=30, workers=[worker])

    own_server.process.terminate()
    own_server.process.wait(timeout=15)

    await wait_for(
        lambda: status_is(port, "/readyz", 503), "not ready while Redis is down", workers=[worker]
    )
    _, body = await fetch(port, "/readyz")
    failing = [c["name"] for c in json.loads(body)["checks"] if not c["ok"]]
    assert "backend" in failing
    assert await status_is(port, "/healthz", 200)  # alive: a restart would not help

    with running_server(binary=own_server.binary, port=own_server.port):
        await wait_for(
            lambda: status_is(port, "/readyz", 200),
            "ready again once Redis is back",
            within=60,
            workers=[worker],
        )
        samples = await scrape(port)
        assert total(samples, "runnel_reconnects_total") >= 1
        assert total(samples, "runnel_backend_errors_total") >= 1
        assert total(samples, "runnel_backend_reachable") == 1

        async def reset_counted() -> bool:
            return total(await scrape(port), "runnel_store_resets_total") >= 1

        # The server came back empty (no persistence): the worker noticed the reset.
        await wait_for(reset_counted, "the store reset counted", workers=[worker])
        assert await worker.stop() == 0


# Default lease timings (lock_expiry 10 s): the closed connection is noticed long before
# the victim's heartbeat expires, and the counter says which of the two it was.
DEFAULT_LEASES: dict[str, str | None] = {
    "RUNNEL_DEFAULT_LOCK_EXPIRY": None,
    "RUNNEL_DEFAULT_ASSIGNMENT_SLEEP": None,
    "RUNNEL_DEFAULT_HEARTBEAT_INTERVAL": None,
}


def reaped(samples: Scrape, app_name: str, reason: str) -> float:
    return sum(
        value
        for labels, value in samples.get("runnel_partitions_reaped_total", [])
        if labels["app"] == app_name and labels["reason"] == reason
    )


async def test_a_killed_workers_partitions_are_counted_as_reaped_by_its_closed_connection(
    spawn: Spawn, app_name: str
) -> None:
    port = free_port()
    survivor = spawn("ordering", env={**DEFAULT_LEASES, "RUNNEL_HTTP_ADDRESS": f"127.0.0.1:{port}"})
    await wait_for(lambda: status_is(port, "/readyz", 200), "ready", within=30, workers=[survivor])
    victim = spawn("ordering", env=DEFAULT_LEASES)
    half = ordering.PARTITIONS // 2

    async def owned(count: int) -> bool:
        return total(await scrape(port), "runnel_partitions_owned") == count

    await wait_for(
        lambda: owned(half), "the partitions shared", within=60, workers=[survivor, victim]
    )
    victim.kill()  # SIGKILL: its connections close, its heartbeat and leases live on

    async def taken_over() -> bool:
        samples = await scrape(port)
        return total(samples, "runnel_partitions_owned") == ordering.PARTITIONS and (
            reaped(samples, app_name, "connection") == half
        )

    await wait_for(taken_over, "the victim's partitions reaped", within=30, workers=[survivor])
    assert reaped(await scrape(port), app_name, "heartbeat") == 0
    assert await survivor.stop() == 0
