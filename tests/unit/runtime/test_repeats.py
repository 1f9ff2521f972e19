"""Rate-limited warnings of retrying loops (a simulated clock)."""

from __future__ import annotations

import logging

import pytest

from runnel.adapters.memory.clock import SimulatedClock
from runnel.runtime._repeats import REPEAT_EVERY, RepeatedWarning


async def test_a_repeated_warning_is_logged_once_per_period_with_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = SimulatedClock(autojump=True)
    caplog.set_level(logging.INFO, logger="loop")
    warning = RepeatedWarning(logging.getLogger("loop"), clock)
    for _ in range(int(REPEAT_EVERY * 4)):  # four failures a second, for 30 s...
        warning.warn("heartbeat of %s failed: %s", "w1", "down")
        await clock.sleep(0.25)
    warning.warn("heartbeat of %s failed: %s", "w1", "down")  # ...and one more
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines[0] == "heartbeat of w1 failed: down"
    assert len(lines) == 2
    assert lines[1].startswith("heartbeat of w1 failed: down (119 more like it in the last 30s")
    warning.clear("the heartbeat of w1")
    assert caplog.records[-1].levelno == logging.INFO
    assert caplog.records[-1].getMessage() == "the heartbeat of w1 works again after 121 failure(s)"
    warning.warn("heartbeat of %s failed: %s", "w1", "down again")  # a new outage: at once
    assert caplog.records[-1].getMessage() == "heartbeat of w1 failed: down again"


async def test_a_single_failure_says_nothing_when_the_loop_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="loop")
    warning = RepeatedWarning(logging.getLogger("loop"), SimulatedClock())
    warning.warn("fetch failed: %s", "timeout")
    warning.clear("fetching")
    assert [r.getMessage() for r in caplog.records] == ["fetch failed: timeout"]
