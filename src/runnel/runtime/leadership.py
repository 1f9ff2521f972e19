"""Leader election: one worker per app runs the ``on_leader`` tasks.

The leader holds ``__lead:{app}`` (a lease with an epoch, like partition leases) for
``ttl = leadership_poll_interval``, renewing it every quarter of that. Followers try to
take it every poll interval, so a dead leader is replaced within about two intervals.
A graceful exit releases the key at once. Leader-only ticks are additionally claimed
with a compare-and-set on ``__sched:{app}.{task}``, so two leaders (one paused past its
lease) never both run the same tick.
"""

from __future__ import annotations

import asyncio
import logging

from runnel.domain.keys import KeyLayout, leader_epoch_key, leader_key, schedule_key
from runnel.domain.leases import LeaseClock
from runnel.errors import BackendError
from runnel.ports import Backend, Lease
from runnel.runtime._repeats import RepeatedWarning

log = logging.getLogger(__name__)


class Leadership:
    """Elects and keeps this worker as the app's leader when possible."""

    def __init__(
        self,
        app_name: str,
        worker_id: str,
        backend: Backend,
        poll_interval: float,
        key_layout: KeyLayout = "single",
    ) -> None:
        self.app_name = app_name
        self.key_layout: KeyLayout = key_layout
        self.worker_id = worker_id
        self.backend = backend
        self.poll = poll_interval
        self.lease_clock = LeaseClock(poll_interval)
        self.lease: Lease | None = None
        self.deadline = 0.0
        self.elected = asyncio.Event()  # set once the first election round has finished
        self._change: asyncio.Future[None] | None = None  # resolved on the next change
        self._failures = RepeatedWarning(log, backend.clock)

    @property
    def epoch(self) -> int:
        """The epoch of our leadership (0 when not leader)."""
        return self.lease.epoch if self.lease else 0

    def leading(self) -> bool:
        """Whether we are the leader and our lease is surely still valid."""
        return self.lease is not None and self.backend.clock.now() < self.deadline

    async def wait_change(self) -> None:
        """Wait for the next gain or loss of leadership (any number of waiters)."""
        if self._change is None:
            self._change = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._change)

    async def wait_leading(self) -> int:
        """Wait until this worker is the leader; the epoch of its leadership."""
        while not self.leading():
            await self.wait_change()
        return self.epoch

    def _changed(self) -> None:
        change, self._change = self._change, None
        if change is not None and not change.done():
            change.set_result(None)

    async def run(self) -> None:
        """Campaign and renew until cancelled."""
        clock = self.backend.clock
        while True:
            try:
                await self._round()
            except BackendError as exc:
                self._failures.warn("leader election round failed: %s", exc)
            else:
                if self._failures.failures:
                    self._failures.clear("leader election")
            self.elected.set()
            await clock.sleep(self.lease_clock.renew_every if self.lease else self.poll)

    async def _round(self) -> None:
        clock, locks = self.backend.clock, self.backend.locks
        sent_at = clock.now()
        if self.lease is not None:
            (ok,) = await locks.extend([self.lease], self.poll)
            if ok:
                self.deadline = self.lease_clock.deadline(sent_at)
                return
            log.warning("lost leadership of %s (epoch %d)", self.app_name, self.lease.epoch)
            self.lease = None
            self._changed()
        lease = await locks.acquire(
            leader_key(self.app_name, self.key_layout),
            leader_epoch_key(self.app_name, self.key_layout),
            self.worker_id,
            self.poll,
        )
        if lease is not None:
            self.lease = lease
            self.deadline = self.lease_clock.deadline(sent_at)
            self._changed()
            log.info("became leader of %s (epoch %d)", self.app_name, lease.epoch)

    async def release(self) -> None:
        """Give up leadership (graceful exit)."""
        if self.lease is not None:
            try:
                await self.backend.locks.release([self.lease])
                log.info("released leadership of %s", self.app_name)
            except BackendError as exc:
                log.warning("could not release leadership: %s", exc)
            self.lease = None

    async def claim(self, task: str, slot: str) -> bool:
        """Claim one tick of a leader-only task; False if it is not ours to run."""
        if not self.leading():
            return False
        kv = self.backend.kv
        key = schedule_key(self.app_name, task)
        current = await kv.get(key)
        if current is not None and _slot_of(current) >= slot:
            return False
        value = f"{slot}|{self.epoch}|{self.worker_id}".encode()
        return self.leading() and await kv.compare_and_set(key, current, value)


def _slot_of(value: bytes) -> str:
    return value.decode("utf-8", "replace").split("|", 1)[0]
