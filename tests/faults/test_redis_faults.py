"""Faults of the Redis server: restarts with AOF (SHUTDOWN, SIGKILL), connection kills,
pauses beyond the lease (CLIENT PAUSE, DEBUG SLEEP), and a full memory (noeviction)."""

from __future__ import annotations

import time

import pytest

from .audit import Fault
from .conftest import Faults
from .guarantees import assert_guarantees
from .redis_server import answers, command

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

OUTAGE = 2.0  # seconds of load while Redis is down
CONNECTION_KILLS = 5
KILL_EVERY = 2.0  # seconds of load between two connection kills
PAUSE = 4.0  # seconds: twice the fast settings' lock_expiry
FULL_HEADROOM = 256 * 1024  # bytes of memory left when the limit is set
PAD = 512  # bytes of payload per event in the maxmemory scenario


@pytest.mark.parametrize("how", ["shutdown", "sigkill"])
async def test_redis_restart_with_aof(faults: Faults, how: str) -> None:
    redis = await faults.server(persistent=True)
    name = f"redis restart ({how.upper() if how == 'shutdown' else 'SIGKILL'}, AOF always)"
    async with faults.scenario(name, redis) as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        async with s.fault(f"redis {how}"):
            await (redis.shutdown() if how == "shutdown" else redis.kill())
            await s.load_for(OUTAGE)  # sends fail at once while nothing listens
            await redis.start()
        await s.wait_recovered(s.faults[-1])
        await s.load_for(3)
        await s.wait_balanced()
        row = await s.finish()
    assert_guarantees(row)
    assert row.failed_sends > 0, "precondition: sends failed while Redis was down"


async def test_connection_kills(faults: Faults) -> None:
    redis = await faults.server()
    async with faults.scenario("connection kills every 2 s", redis) as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        admin = redis.admin(timeout=5)
        killed = []
        try:
            for _ in range(CONNECTION_KILLS):
                async with s.fault("client kill"):
                    killed.append(await admin.client_kill_filter(_type="normal"))
                await s.load_for(KILL_EVERY)
        finally:
            await admin.aclose()
        await s.wait_balanced()
        await s.load_for(2)
        row = await s.finish()
    row.notes["connections killed"] = killed
    assert_guarantees(row)
    assert min(killed) > 0, "precondition: each kill closed connections"


@pytest.mark.parametrize("how", ["client pause", "debug sleep"])
async def test_redis_pause_beyond_the_lease(faults: Faults, how: str) -> None:
    redis = await faults.server()
    async with faults.scenario(f"redis {how} {PAUSE:g} s (lease 2 s)", redis) as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        losses = s.lease_losses()
        admin = redis.admin(timeout=None)
        try:
            async with s.fault(how):
                if how == "client pause":
                    await command(admin, "CLIENT", "PAUSE", int(PAUSE * 1000), "ALL")
                    await s.wait_for(lambda: answers(redis.port), "the pause over", 60)
                else:
                    await command(admin, "DEBUG", "SLEEP", PAUSE)
        finally:
            await admin.aclose()
        await s.wait_recovered(s.faults[-1])
        await s.load_for(3)
        await s.wait_balanced()
        row = await s.finish()
    row.notes["leases lost in the pause"] = s.lease_losses() - losses
    assert_guarantees(row)


async def test_maxmemory_with_noeviction(faults: Faults) -> None:
    redis = await faults.server(options=["--maxmemory-policy", "noeviction"])
    async with faults.scenario("maxmemory reached (noeviction)", redis) as s:
        await s.start_workers(3)
        producer = s.start_load(pad=lambda _: PAD)
        await s.load_for(3)
        admin = redis.admin(timeout=5)
        try:
            used = int((await admin.info("memory"))["used_memory"])
            await admin.config_set("maxmemory", used + FULL_HEADROOM)
            await s.wait_for(lambda: len(producer.failed) >= 100, "sends refused", 60)
            await s.load_for(2)
            await admin.config_set("maxmemory", 0)
        finally:
            await admin.aclose()
        # The fault: from the first refused send until the limit was lifted.
        full = s.record(Fault("maxmemory", producer.failed[0].at, time.time()))
        await s.wait_recovered(full)
        await s.load_for(3)
        await s.wait_balanced()
        row = await s.finish()
    errors = {a.error for a in producer.failed}
    row.notes["send errors"] = sorted(errors)[:3]
    assert_guarantees(row)
    # Refused sends fail with a runnel error that names the cause.
    assert all("." not in e.split(":", 1)[0] for e in errors), errors
    assert all("maxmemory" in e or "OOM" in e for e in errors), errors
