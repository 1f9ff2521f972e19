"""Faults of the worker processes: SIGKILL, a kill loop, SIGSTOP past the lease with user
code inside an ``await``, a rolling SIGTERM restart; and two loads that are not faults but
stress a worker: a slow hot key and large events."""

from __future__ import annotations

import pytest

from .conftest import Faults
from .guarantees import assert_guarantees

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


async def test_sigkill_of_one_worker(faults: Faults) -> None:
    redis = await faults.server()
    async with faults.scenario("sigkill one worker", redis) as s:
        victim, *_ = await s.start_workers(3)
        s.start_load()
        await s.load_for(3)
        fault = await s.kill(victim)
        await s.wait_recovered(fault)
        await s.load_for(3)
        row = await s.finish()
    assert_guarantees(row)
