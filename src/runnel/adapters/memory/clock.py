"""SimulatedClock: a Clock that moves only when told to (or, with autojump, when idle).

How it works: every ``sleep`` puts a future on a heap ordered by deadline (then by arrival).
``advance(seconds)`` pops the sleepers that fall due in deadline order, sets ``now`` to each
deadline, resolves its future and lets the event loop run until the woken tasks settle, so
whatever they schedule next for an earlier time is honoured too. Finally ``now`` becomes the
target.

With ``autojump=True`` a watcher task yields to the loop round after round while anyone
sleeps. When, for a few rounds in a row, no other callback was ready to run and no sleeper
came or went, every task is waiting, so it jumps to the earliest deadline. "Waiting" is
judged from the asyncio event loop's ready queue; on loops that do not expose it (uvloop)
it falls back to counting quiet rounds, which is approximate. Tasks that busy-poll with
``asyncio.sleep(0)`` keep the clock from jumping; tasks waiting on real I/O or real timers
do not, so use one autojump clock per loop and keep real I/O out of such tests.

Example:
    >>> import asyncio
    >>> async def main() -> float:
    ...     clock = SimulatedClock(autojump=True)
    ...     await clock.sleep(5)
    ...     return clock.now()
    >>> asyncio.run(main())
    5.0
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

from runnel.adapters.system_clock import wait_for_event

EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)
"""What ``SimulatedClock.wall()`` reads when ``now()`` is 0."""

_QUIET_ROUNDS = 3  # idle loop rounds before autojump moves time (ready queue visible)
_BLIND_ROUNDS = 25  # rounds to wait when the loop's ready queue cannot be inspected
_MAX_SETTLE_ROUNDS = 200  # bound on rounds spent letting woken tasks run


def _ready_queue(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's queue of ready callbacks, or None where the loop hides it."""
    # CPython's BaseEventLoop keeps ready callbacks in the private deque ``_ready``; it is
    # the only way to tell "every task waits" from "some task is about to run".
    return getattr(loop, "_ready", None)


class SimulatedClock:
    """A deterministic Clock for tests and demos, driven by ``advance`` or autojump.

    Args:
        start: the initial value of :meth:`now`.
        autojump: move time to the earliest sleeper whenever every other task waits.

    Example:
        >>> import asyncio
        >>> async def main() -> list[float]:
        ...     clock, seen = SimulatedClock(), []
        ...     async def tick() -> None:
        ...         await clock.sleep(2)
        ...         seen.append(clock.now())
        ...     task = asyncio.ensure_future(tick())
        ...     await clock.advance(3)
        ...     await task
        ...     return seen + [clock.now()]
        >>> asyncio.run(main())
        [2.0, 3.0]
    """

    def __init__(self, start: float = 0.0, autojump: bool = False) -> None:
        self._now = float(start)
        self._autojump = autojump
        self._sleepers: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._order = itertools.count()
        self._dead = 0  # heap entries whose future finished without the clock
        self._activity = 0  # bumped whenever a sleeper arrives or is woken
        self._manual = 0  # advance() calls in progress; autojump pauses meanwhile
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._kick: asyncio.Future[None] | None = None

    # ------------------------------------------------------------------ Clock port

    def now(self) -> float:
        """Simulated monotonic seconds."""
        return self._now

    def wall(self) -> datetime:
        """Aware UTC wall time: :data:`EPOCH` plus :meth:`now`."""
        return EPOCH + timedelta(seconds=self._now)

    async def sleep(self, seconds: float) -> None:
        """Wait until the clock has moved ``seconds``; 0 or less just yields once."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = self._push(self._now + seconds)
        try:
            await wake
        except asyncio.CancelledError:
            if wake.cancelled():
                self._dead += 1
            raise

    # ------------------------------------------------------------------ driving time

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative duration, got {seconds}")
        await self._run_until(self._now + seconds)

    async def advance_to_next(self) -> float | None:
        """Jump to the earliest sleeper's deadline and wake it; None if nobody sleeps."""
        await self._settle()
        deadline = self.next_deadline()
        if deadline is not None:
            await self._run_until(deadline)
        return deadline

    def next_deadline(self) -> float | None:
        """The earliest deadline anyone sleeps until, or None."""
        self._prune()
        return self._sleepers[0][0] if self._sleepers else None

    async def wait_for(self, waitable: asyncio.Future[Any] | asyncio.Event, timeout: float) -> bool:
        """Wait until ``waitable`` is done (or set) or ``timeout`` passes on this clock.

        Returns:
            True if ``waitable`` finished in time. It is never cancelled by this call.
        """
        if isinstance(waitable, asyncio.Event):
            return await wait_for_event(self.wait_for, waitable, timeout)
        if waitable.done():
            return True
        if timeout <= 0:
            await asyncio.sleep(0)
            return waitable.done()
        wake = self._push(self._now + timeout)

        def ring(_: asyncio.Future[Any]) -> None:
            if not wake.done():
                wake.set_result(False)

        waitable.add_done_callback(ring)
        try:
            await wake
        finally:
            waitable.remove_done_callback(ring)
            if not wake.done():
                wake.cancel()
            if wake.cancelled() or not wake.result():
                self._dead += 1  # still on the heap, but nobody waits for it
        return waitable.done()

    async def aclose(self) -> None:
        """Stop the autojump watcher, if one runs."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    # ------------------------------------------------------------------ internals

    def _push(self, deadline: float) -> asyncio.Future[bool]:
        """Register a sleeper until ``deadline``; its future gets True when the clock wakes it."""
        loop = asyncio.get_running_loop()
        self._bind(loop)
        wake: asyncio.Future[bool] = loop.create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), wake))
        self._activity += 1
        if self._dead > 64 and self._dead * 2 > len(self._sleepers):
            self._sleepers = [s for s in self._sleepers if not s[2].done()]
            heapq.heapify(self._sleepers)
            self._dead = 0
        if self._autojump:
            self._start_watcher(loop)
            self._wake_watcher()
        return wake

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forget sleepers and the watcher of a previous event loop."""
        if self._loop is not loop:
            self._loop = loop
            self._sleepers = [s for s in self._sleepers if s[2].get_loop() is loop]
            heapq.heapify(self._sleepers)
            self._watcher = None
            self._kick = None

    def _prune(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
            self._dead = max(0, self._dead - 1)

    def _wake_next(self, limit: float) -> bool:
        """Wake the earliest sleeper due at or before ``limit``; False if there is none."""
        self._prune()
        if not self._sleepers or self._sleepers[0][0] > limit:
            return False
        deadline, _, wake = heapq.heappop(self._sleepers)
        self._now = max(self._now, deadline)
        wake.set_result(True)
        self._activity += 1
        return True

    async def _run_until(self, target: float) -> None:
        self._manual += 1
        try:
            await self._settle()
            while self._wake_next(target):
                await self._settle()
            self._now = max(self._now, target)
        finally:
            self._manual -= 1
            self._wake_watcher()

    async def _settle(self) -> None:
        """Let the loop run until no callback is ready (bounded), so woken tasks proceed."""
        ready = _ready_queue(asyncio.get_running_loop())
        if ready is None:
            for _ in range(_BLIND_ROUNDS):
                await asyncio.sleep(0)
            return
        idle = 0
        for _ in range(_MAX_SETTLE_ROUNDS):
            await asyncio.sleep(0)
            idle = 0 if ready else idle + 1
            if idle >= 2:
                return

    def _start_watcher(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = loop.create_task(self._watch(), name="runnel-simulated-clock")

    def _wake_watcher(self) -> None:
        if self._kick is not None and not self._kick.done():
            self._kick.set_result(None)

    async def _watch(self) -> None:
        """Autojump: move to the next deadline whenever the loop has been idle a while."""
        loop = asyncio.get_running_loop()
        ready = _ready_queue(loop)
        needed = _QUIET_ROUNDS if ready is not None else _BLIND_ROUNDS
        quiet = 0
        while True:
            if self._manual or self.next_deadline() is None:
                self._kick = loop.create_future()
                await self._kick
                quiet = 0
                continue
            seen = self._activity
            await asyncio.sleep(0)
            busy = self._activity != seen or bool(ready)
            quiet = 0 if busy else quiet + 1
            if quiet >= needed and not self._manual:
                quiet = 0
                self._wake_next(float("inf"))
