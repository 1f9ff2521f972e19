"""Background tasks: one-shot tasks, timers and crontab schedules.

A failing task is logged with its traceback and never stops the worker; a timer keeps
its schedule after a failure. Timers never overlap themselves (the next run waits for the
previous one) and never drift (they fire on a fixed grid, skipping missed slots).
Leader-only timers fire on a grid aligned to wall-clock time, so every worker names a
tick the same way and the tick can be claimed exactly once.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timezone

from runnel.domain.failures import safe_repr
from runnel.domain.schedule import CronSchedule, TimerSchedule
from runnel.ports import Clock
from runnel.runtime.leadership import Leadership
from runnel.runtime.specs import TaskSpec

log = logging.getLogger(__name__)


class TaskRunner:
    """Runs one background task spec until cancelled."""

    def __init__(self, spec: TaskSpec, clock: Clock, leadership: Leadership) -> None:
        self.spec = spec
        self.clock = clock
        self.leadership = leadership
        self.runs = 0
        self.failures = 0

    async def run(self) -> None:
        """Run according to the spec's kind."""
        if self.spec.kind == "task":
            await self._once()
        elif self.spec.kind == "timer":
            await self._timer()
        else:
            await self._crontab()

    async def _call(self) -> None:
        self.runs += 1
        try:
            await self.spec.func()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            log.error("background task %s failed: %s", self.spec.name, safe_repr(exc), exc_info=exc)

    async def _once(self) -> None:
        if self.spec.on_leader:
            # On the leader: when this worker becomes the leader (at start, or later when
            # it takes over from one that died), once for that term of leadership.
            while True:
                epoch = await self.leadership.wait_leading()
                if await self.leadership.claim(self.spec.name, f"once-{epoch:020d}"):
                    break
                await self.leadership.wait_change()
        await self._call()

    async def _timer(self) -> None:
        interval = self.spec.interval
        clock = self.clock
        if self.spec.on_leader:
            wall = clock.wall().timestamp()
            origin = clock.now() - (wall % interval)  # grid aligned to wall-clock multiples
        else:
            origin = clock.now()
        schedule = TimerSchedule(interval, origin=origin)
        due: float | None = None
        while True:
            nxt = schedule.next_fire(due, clock.now())
            if due is not None and (missed := schedule.missed(due, nxt)):
                log.warning("timer %s skipped %d tick(s) (its run overran)", self.spec.name, missed)
            due = nxt
            await clock.sleep(max(0.0, due - clock.now()))
            if self.spec.on_leader:
                slot = f"{round(clock.wall().timestamp() / interval):020d}"
                if not await self.leadership.claim(self.spec.name, slot):
                    continue
            await self._call()

    async def _crontab(self) -> None:
        schedule = CronSchedule(self.spec.cron, self.spec.timezone)
        clock = self.clock
        last = clock.wall()
        while True:
            now = clock.wall()
            fire = schedule.next_after(max(now, last))
            last = fire
            await clock.sleep(max(0.0, (fire - now).total_seconds()))
            if self.spec.on_leader and not await self.leadership.claim(
                self.spec.name, schedule.slot_id(fire.astimezone(timezone.utc))
            ):
                continue
            await self._call()
