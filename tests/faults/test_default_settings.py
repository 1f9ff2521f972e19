"""Measurements at the product's default settings (not the fast test timings), with real
processes: how long a SIGKILLed worker's partitions wait for another worker; whether live
workers keep their leases through Redis stalls of 6, 7 and 8 seconds; and how long SIGTERM
takes to exit while Redis stalls for longer than ``grace_period``.

Beyond the guarantees: stalls of 6 and 7 s cost no lease and no stall gets a live worker
reaped; SIGTERM during the long stall exits while Redis still stalls. Recovery times are
reported.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from runnel.runtime.worker import CANCEL_WAIT, EXIT_GUARD_MARGIN, STOP_MARGIN

from .audit import Fault
from .conftest import Faults
from .guarantees import assert_guarantees
from .redis_server import answers, command
from .scenario import REAPED, SANITY

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

STALLS = (6, 7, 8, 8, 8)  # seconds of DEBUG SLEEP (8 s thrice: whether a worker keeps its
# leases then depends on where in its renewal cycle the stall begins)
LONG_STALL = 20  # seconds: longer than the default grace_period (8 s)
DEFAULT_GRACE_PERIOD = 8.0


async def test_sigkill_recovery_at_default_settings(faults: Faults) -> None:
    redis = await faults.server()
    async with faults.scenario("sigkill, default settings", redis, settings="default") as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        for _ in range(2):
            fault = await s.kill(s.live[0])
            await s.wait_recovered(fault)
            s.spawn()
            await s.wait_balanced()
            await s.load_for(2)
        row = await s.finish()
    assert_guarantees(row)


async def test_redis_stalls_of_6_7_and_8_seconds_at_default_settings(faults: Faults) -> None:
    redis = await faults.server()
    name = "redis stalls 6-8 s, default settings"
    async with faults.scenario(name, redis, settings="default") as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        kept: dict[str, list[str]] = {}
        losses: dict[str, list[int]] = {}
        reaps: dict[str, list[int]] = {}
        for seconds in STALLS:
            before, lost_before, reaped = await s.lock_values(), s.lease_losses(), s.logged(REAPED)
            admin = redis.admin(timeout=None)
            try:
                async with s.fault(f"debug sleep {seconds}s"):
                    await command(admin, "DEBUG", "SLEEP", seconds)
            finally:
                await admin.aclose()
            await s.wait_recovered(s.faults[-1])
            await s.load_for(3)
            await s.wait_balanced()
            # A renewed lease keeps its value (owner and epoch); a lost one is taken anew.
            after = await s.lock_values()
            owners = {_owner(b) for b in before if b is not None}
            whole = sum(
                1
                for owner in owners
                if all(a == b for b, a in zip(before, after, strict=True) if _owner(b) == owner)
            )
            same = sum(1 for b, a in zip(before, after, strict=True) if b is not None and b == a)
            kept.setdefault(f"{seconds}s", []).append(
                f"{same}/{s.partitions} leases, {whole}/{len(owners)} workers"
            )
            losses.setdefault(f"{seconds}s", []).append(s.lease_losses() - lost_before)
            reaps.setdefault(f"{seconds}s", []).append(s.logged(REAPED) - reaped)
        row = await s.finish()
    row.notes["leases kept"] = kept
    row.notes["lease losses logged"] = losses
    # Heartbeats live three ticks (3 s): after a longer stall, whichever worker checks the
    # membership first may reap the others before their next beat lands.
    row.notes["reaps of live workers logged"] = reaps
    assert_guarantees(row)
    # Within the documented tolerance (lock_expiry - margin - one tick = 7.75 s) every
    # lease survives; and no live worker is ever reaped, whatever the stall.
    assert losses["6s"] == [0], row.notes
    assert losses["7s"] == [0], row.notes
    assert all(n == 0 for counts in reaps.values() for n in counts), row.notes


async def test_sigterm_during_a_redis_stall_longer_than_grace_period(faults: Faults) -> None:
    redis = await faults.server()
    name = f"sigterm in a {LONG_STALL} s redis stall, default settings"
    async with faults.scenario(name, redis, settings="default") as s:
        await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        victim = s.live[0]
        admin = redis.admin(timeout=None)
        try:
            start = time.time()
            stall = asyncio.create_task(command(admin, "DEBUG", "SLEEP", LONG_STALL))
            await s.wait_for(lambda: _stalled(redis.port), "the stall begun", 10)
            termed_at = time.time()
            victim.send_signal(signal.SIGTERM)
            code = await victim.exit_code(within=LONG_STALL + SANITY)
            exit_after = time.time() - termed_at
            # The exit is bounded by grace_period + STOP_MARGIN + CANCEL_WAIT +
            # EXIT_GUARD_MARGIN (13 s), less than what is left of the stall: the worker
            # must be gone while Redis still sleeps, not when it answers again.
            exited_during_stall = not stall.done()
            await stall
            s.record(Fault("debug sleep", start, time.time()))
        finally:
            await admin.aclose()
        await s.wait_recovered(s.faults[-1])
        await s.load_for(3)
        await s.wait_balanced()
        row = await s.finish()
    row.notes["exit after SIGTERM s"] = round(exit_after, 2)
    row.notes["exit code"] = code
    row.notes["stall left at SIGTERM s"] = round(LONG_STALL - (termed_at - start), 2)
    row.notes["grace_period s"] = DEFAULT_GRACE_PERIOD
    row.notes["exit bound s"] = DEFAULT_GRACE_PERIOD + STOP_MARGIN + CANCEL_WAIT + EXIT_GUARD_MARGIN
    assert_guarantees(row)
    assert code == 0
    assert exited_during_stall, f"SIGTERM took {exit_after:.1f}s: it waited for Redis"


def _owner(lock: bytes | str | None) -> str | None:
    if lock is None:
        return None
    text = lock.decode() if isinstance(lock, bytes) else lock
    return text.rsplit(":", 1)[0]


async def _stalled(port: int) -> bool:
    return not await answers(port)
