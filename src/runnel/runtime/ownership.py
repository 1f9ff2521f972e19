"""Ownership strategies: which partitions an executor holds, and keeping their leases.

``GreedyOwnership`` takes every partition whose lease is free and keeps it: with one
worker per processor it owns everything; a second worker picks up partitions as their
leases become free (e.g. after the first one dies). Leases are renewed every
``lock_expiry / 4``; renewal never re-acquires a lost lease, and a lost one is dropped
at once (its consumer stops; its acknowledgements would be refused anyway).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from runnel.errors import BackendError

if TYPE_CHECKING:
    from runnel.runtime.executor import Executor

log = logging.getLogger(__name__)


class GreedyOwnership:
    """Acquire every free partition; renew what we hold."""

    def __init__(self, executor: Executor) -> None:
        self.ex = executor
        self._stopped = False
        self._next_acquire = 0.0

    async def run(self) -> None:
        """Acquire and renew until cancelled (after ``stop`` it only renews)."""
        ex = self.ex
        clock = ex.clock
        interval = ex.lease_clock.renew_every
        while True:
            try:
                await self.renew()
                if not self._stopped and clock.now() >= self._next_acquire:
                    await self.acquire_free()
                    self._next_acquire = clock.now() + max(ex.spec.assignment_sleep, interval)
                await ex.check_quarantine()
            except BackendError as exc:
                log.warning("ownership round of %s failed, retrying: %s", ex.spec.name, exc)
            await clock.sleep(interval)

    async def acquire_free(self) -> None:
        """Try to take every partition we do not hold."""
        ex = self.ex
        for number in range(ex.stream.partition_count):
            if self._stopped or number in ex.feeds:
                continue
            sent_at = ex.clock.now()
            lease = await ex.backend.locks.acquire(
                ex.keys.lock(ex.spec.name, number),
                ex.keys.epoch(ex.spec.name, number),
                ex.id,
                ex.spec.lock_expiry,
            )
            if lease is not None:
                await ex.grant(number, lease, sent_at)

    async def renew(self) -> None:
        """Extend every held lease in one round trip; drop the ones that are gone."""
        ex = self.ex
        held = [(n, f.lease) for n, f in ex.feeds.items() if not f.lost]
        if not held:
            return
        sent_at = ex.clock.now()
        results = await ex.backend.locks.extend([lease for _, lease in held], ex.spec.lock_expiry)
        for (number, _), ok in zip(held, results, strict=True):
            if ok:
                ex.renewed(number, sent_at)
            else:
                ex.lose(number)

    async def stop(self) -> None:
        """Stop acquiring (leases are released by the executor's revocations)."""
        self._stopped = True
