"""Distributed coordination: membership, sticky rebalancing and fenced partition leases.

How it works (one ``Coordinator`` per executor, i.e. per processor per worker):

1. **Heartbeat.** Every ``tick`` (``min(heartbeat_interval, lock_expiry / 4)``) the
   executor sets ``__beat:...{executor_id}`` with a TTL of ``max(3 ticks, lock_expiry)``
   (:func:`beat_ttl`) and renews all its partition leases in one round trip. A lease that
   cannot be renewed is dropped at once (renewal never re-acquires). The same tick reads
   the membership, reaps members whose heartbeat has expired (only once its own
   heartbeats have gone through for three ticks without a gap: after a Redis stall every
   heartbeat may have lapsed at once), and re-joins if this executor was itself reaped.
2. **Watchdog.** Independently of any I/O, a timer wakes at the earliest local lease
   deadline (send time of the last successful renewal + ``lock_expiry`` - margin). A
   partition past its deadline is dropped: its in-flight iteration is cancelled and no
   further event reaches user code, because another worker may own it by now.
3. **Membership.** ``__memb:...`` holds a JSON object keyed by executor id with each
   member's assigned partitions, and ``__mver:...`` its version. Joins, leaves and reaps
   are computed by :mod:`runnel.domain.membership` (balanced, sticky, deterministic) and
   written with a compare-and-set on the version that also announces the change on the
   control stream, in one atomic step.
4. **Control.** Every executor follows ``__ctrl:...`` (its own join included) and
   reconciles on every announcement: a membership change, or ``released`` when partitions
   were handed back (their new owners take them at once instead of waiting for a retry).
5. **Reconcile.** Compare the partitions assigned to us with those we hold: first release
   what we lose (stop fetching, let the in-flight iteration finish within
   ``grace_period``, flush acks, release the lease, announce it), then acquire what we
   gain. A partition whose lease is still held (its previous owner is draining, or died and
   its lease has not expired yet) is retried when the holder announces its release, or
   when the lease's remaining time has passed, whichever comes first; it never fails the
   worker. Acquiring bumps the partition's fencing epoch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from runnel.domain.failures import safe_repr
from runnel.domain.ids import MIN_ID, StreamId
from runnel.domain.leases import LeaseClock
from runnel.domain.membership import (
    Announcement,
    Members,
    assigned_to,
    decode,
    encode,
    joined,
    rebalanced,
    without,
)
from runnel.domain.rebalance import plan_rebalance
from runnel.errors import BackendError, BackendUnavailable, PermissionDenied, RebalanceError
from runnel.ports import Backend, Lease, MembershipKeys, MembershipRecord, MembershipWrite
from runnel.runtime._aio import cancel_and_wait
from runnel.runtime._repeats import RepeatedWarning
from runnel.runtime.feed import PartitionFeed
from runnel.runtime.specs import ProcessorSpec

log = logging.getLogger(__name__)

MISSED_BEATS = 3
"""A member whose heartbeat is this many ticks old is dead."""

MIN_RETRY = 0.01
"""Shortest wait before trying a held partition again (never a busy loop)."""

UPDATE_ATTEMPTS = 100
"""Compare-and-set rounds before a membership update gives up (and is retried later)."""


GONE_AFTER_TICKS = 1.0
"""A worker without a connection for this many ticks, whose heartbeat was not renewed
meanwhile, is gone (its process died): see :meth:`Coordinator.gone`. A live worker
checks its connection every half tick and opens it again at once when it was closed."""


def connection_name(app: str, worker_id: str) -> str:
    """The name of the connection a worker holds while it runs (its presence).

    Example:
        >>> connection_name("shop", "vm-12-ab34cd")
        'runnel:shop:vm-12-ab34cd'
    """
    return f"runnel:{app}:{worker_id}"


def beat_ttl(tick: float, lock_expiry: float) -> float:
    """How long a heartbeat lives: ``max(3 * tick, lock_expiry)``.

    A member is reaped only once its heartbeat is gone, and so never before its
    leases may have expired too: a live worker that pauses, or loses Redis, for less
    than its leases survive keeps its membership as well as its leases. At the defaults
    (tick 1 s, ``lock_expiry`` 10 s) a heartbeat lives 10 s.

    Example:
        >>> beat_ttl(1.0, 10.0), beat_ttl(1.0, 2.0)
        (10.0, 3.0)
    """
    return max(MISSED_BEATS * tick, lock_expiry)


class Holdings(Protocol):
    """The partitions a coordinator keeps for its executor, and what it does to them."""

    @property
    def feeds(self) -> Mapping[int, PartitionFeed]:
        """The partitions held now, by number."""
        ...

    async def grant(self, number: int, lease: Lease, sent_at: float) -> None:
        """Start processing ``number`` under ``lease`` (acquired at ``sent_at``)."""
        ...

    def renewed(self, number: int, sent_at: float) -> None:
        """The lease of ``number`` was renewed by a request sent at ``sent_at``."""
        ...

    def lose(self, number: int) -> None:
        """The lease of ``number`` is gone: stop at once."""
        ...

    async def revoke(self, number: int) -> None:
        """Hand ``number`` back gracefully (drain, acknowledge, release the lease)."""
        ...

    async def check_quarantine(self) -> None:
        """Resume the partitions whose quarantine was cleared."""
        ...

    async def check_store(self) -> bool | None:
        """Whether the store was reset (None: the worker is halting)."""
        ...


class Coordinator:
    """Keeps an executor's membership, heartbeat and partition leases.

    Attributes:
        members: the membership as last read.
        version: its version as last read or written.
        joins, rebalances, reaped, acquired, released: counters for operators and tests.
    """

    def __init__(
        self,
        executor_id: str,
        worker_id: str,
        spec: ProcessorSpec,
        backend: Backend,
        holdings: Holdings,
        halt: Callable[[BaseException, str], None],
    ) -> None:
        self.id = executor_id
        self.worker_id = worker_id
        self.spec = spec
        self.name = spec.name
        self.backend = backend
        self.clock = backend.clock
        self.holdings = holdings
        self._halt = halt
        self.stream = spec.stream
        keys = self.keys = spec.stream.keys
        self.membership_keys = MembershipKeys(
            keys.membership(spec.name), keys.membership_version(spec.name), keys.control(spec.name)
        )
        self.partitions = spec.stream.partition_count
        self.lease_clock = LeaseClock(spec.lock_expiry)
        self.tick = min(spec.heartbeat_interval, self.lease_clock.renew_every)
        self.beat_ttl = beat_ttl(self.tick, spec.lock_expiry)
        self.healthy_since: float | None = None
        """Since when our heartbeats have gone through without a gap (None: failing)."""
        self._last_beat: float | None = None
        self.members: Members = {}
        self.version = 0
        self.control_last: bytes | None = None
        self.retry_at: dict[int, float] = {}  # held partition -> when to try it again
        self.attempts: dict[int, int] = {}
        self.joins = 0
        self.rebalances = 0
        self.reaped = 0
        self.acquired = 0
        self.released = 0
        self.joined = asyncio.Event()
        self.on_unavailable: Callable[[BaseException], None] | None = None
        """Told of each heartbeat that failed because the backend did not answer."""
        self._wake = asyncio.Event()
        self._busy = asyncio.Lock()  # one reconcile pass (or the leave) at a time
        # One compare-and-set sequence on the membership at a time: a join whose write is
        # in flight when leave() starts lands before leave() reads, so leave removes it.
        self._membership = asyncio.Lock()
        self._leaving = False
        self._tasks: list[asyncio.Task[None]] = []
        self._beat_written = False  # whether leave() has a heartbeat to delete
        # Worker id -> (when its connection was first seen missing, its heartbeat's
        # remaining seconds then): a suspect, gone if the same holds GONE_AFTER_TICKS later.
        self._suspects: dict[str, tuple[float, float | None]] = {}
        self.gone_found = 0
        """Members found gone by their closed connection (before their heartbeat expired)."""
        self.reaped_by_connection = 0
        """Partitions of members this executor reaped because their connection closed."""
        self.reaped_by_heartbeat = 0
        """Partitions of members this executor reaped because their heartbeat expired."""
        self._beat_failures = RepeatedWarning(log, self.clock)
        self._control_failures = RepeatedWarning(log, self.clock)
        self._rebalance_failures = RepeatedWarning(log, self.clock)

    def wake(self) -> None:
        """Reconcile soon (a lease was lost, an announcement arrived)."""
        self._wake.set()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Join, then keep heartbeat, watchdog, control and reconcile going until cancelled."""
        try:
            if self.spec.join_delay > 0:
                await self.clock.sleep(self.spec.join_delay)
            self._spawn(self._heartbeat_loop, "beat")
            self._spawn(self._watchdog_loop, "watchdog")
            await self._join_until_done()
            if self._leaving:
                return
            self._spawn(self._control_loop, "control")
            self._spawn(self._reconcile_loop, "reconcile")
            # Not gather: leave() cancels the control and reconcile loops, while the
            # heartbeat must keep renewing our leases until the drain is over.
            await asyncio.wait(self._tasks)
        finally:
            await cancel_and_wait(*self._tasks)

    def _spawn(self, loop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        async def guarded() -> None:
            try:
                await loop()
            except asyncio.CancelledError:
                raise
            except PermissionDenied as exc:  # the Redis user lacks a permission: halt
                self._halt(exc, f"coordination of {self.name}")
            except Exception as exc:  # a bug in runnel itself: never silent
                log.critical(
                    "%s loop of %s crashed: %s", name, self.id, safe_repr(exc), exc_info=exc
                )
                self._halt(exc, f"coordination of {self.name}")

        self._tasks.append(asyncio.create_task(guarded(), name=f"{self.id}:{name}"))

    async def leave(self) -> None:
        """Graceful leave: hand our partitions to the others, drain, release, go."""
        self._leaving = True
        async with self._busy:  # let a reconcile pass in progress finish its step
            for task in self._tasks:
                if task.get_name().endswith((":control", ":reconcile")):
                    task.cancel()
            async with self._membership:
                pass  # a join (or re-join) in flight has landed, and set `joined`, after this
            if self.joined.is_set():
                try:
                    await self._update("leave", lambda m: without(m, [self.id], self._count(m)))
                except (BackendError, RebalanceError) as exc:
                    log.warning("could not leave the membership of %s cleanly: %s", self.name, exc)
            await self._release(sorted(self.holdings.feeds))
        if not self._beat_written:
            return  # never written (Redis was down from the start): nothing to delete
        try:
            await self.backend.kv.delete(self.keys.beat(self.name, self.id))
        except BackendError as exc:
            log.warning("could not delete the heartbeat of %s: %s", self.id, exc)

    # ------------------------------------------------------------------ membership

    async def _beat(self) -> None:
        self._beat_written = True  # from the moment it may have been written
        key, value = self.keys.beat(self.name, self.id), self.worker_id.encode()
        try:
            await self.backend.kv.set(key, value, ttl=self.beat_ttl)
        except BackendUnavailable:
            # Once more at once, on a fresh connection: after a connection kill the first
            # call fails on the dead one, and a missed beat would make us look gone.
            await self.backend.kv.set(key, value, ttl=self.beat_ttl)

    async def _join_until_done(self) -> None:
        delay = self.tick
        while not self._leaving:
            try:
                await self._beat()
                await self._join("join")
                return
            except (BackendError, RebalanceError) as exc:
                log.warning("%s could not join %s yet, retrying: %s", self.id, self.name, exc)
                await self.clock.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _join(self, kind: str) -> None:
        holding = frozenset(n for n, f in self.holdings.feeds.items() if not f.lost)

        def change(members: Members) -> Members:
            if self._leaving:  # checked on every compare-and-set attempt: a leave wins
                return members
            return joined(members, self.id, self.worker_id, self._count(members), holding)

        write = await self._update(kind, change)
        if self._leaving and self.id not in self.members:
            return  # leave() came first: this join wrote nothing
        if self.control_last is None:
            # Follow the control stream from our own join on: we react to it like anyone.
            self.control_last = (
                StreamId.parse(write.announced).previous().encode()
                if write.announced
                else MIN_ID.encode()
            )
        self.joins += 1
        self.joined.set()
        self._wake.set()
        log.info(
            "%s joined %s (version %d, %d member(s)); assigned %s",
            self.id,
            self.name,
            self.version,
            len(self.members),
            sorted(assigned_to(self.members, self.id)),
        )

    async def _read(self) -> Members:
        record = await self.backend.membership.read(self.membership_keys)
        members = self._decoded(record)
        self.members, self.version = members, record.version
        return members

    def _decoded(self, record: MembershipRecord) -> Members:
        try:
            return decode(record.value)
        except ValueError as exc:
            where = self.membership_keys.value
            log.error("membership %s is unreadable (%s): rebuilding it", where, exc)
            return {}

    async def _update(self, kind: str, change: Callable[[Members], Members]) -> MembershipWrite:
        """Apply ``change`` with compare-and-set on the version; the write announces it."""
        async with self._membership:
            return await self._compare_and_set(kind, change)

    async def _compare_and_set(
        self, kind: str, change: Callable[[Members], Members]
    ) -> MembershipWrite:
        port = self.backend.membership
        for _ in range(UPDATE_ATTEMPTS):
            record = await port.read(self.membership_keys)
            updated = change(self._decoded(record))
            value = encode(updated)
            if value == record.value:
                self.members, self.version = updated, record.version
                return MembershipWrite(False, record.version)
            note = Announcement(kind, self.id, assigned_to(updated, self.id))
            write = await port.update(self.membership_keys, record.version, value, note.fields())
            if write.written:
                self.members, self.version = updated, write.version
                self.rebalances += 1
                return write
        raise RebalanceError(
            f"membership {self.membership_keys.value} kept changing; gave up after "
            f"{UPDATE_ATTEMPTS} tries"
        )

    def _count(self, members: Members) -> int:
        """The partition count to assign: ours, or more if a peer already assigned more.

        A worker that has not noticed a stream resize yet must not undo the assignment of
        one that has: counts only grow (see :mod:`runnel.domain.resize`).
        """
        highest = max((p for m in members.values() for p in m.partitions), default=-1)
        return max(self.partitions, highest + 1)

    async def resized(self, count: int) -> None:
        """The stream grew to ``count`` partitions: assign them all, and tell the others."""
        if count <= self.partitions:
            return
        self.partitions = count
        if self._leaving or not self.joined.is_set():
            return  # the join (or nobody, when leaving) assigns with the new count
        await self._update(
            "resize", lambda m: m if self._leaving else rebalanced(m, self._count(m))
        )
        self._wake.set()

    async def _announce_released(self, partitions: list[int]) -> None:
        note = Announcement("released", self.id, frozenset(partitions))
        try:
            await self.backend.membership.announce(self.membership_keys, note.fields())
        except BackendError as exc:  # the new owners find out on their next retry anyway
            log.warning("could not announce the release of %s: %s", partitions, exc)

    # ------------------------------------------------------------------ loops

    async def _heartbeat_loop(self) -> None:
        while True:
            await self.clock.sleep(self.tick)
            try:
                sent_at = self.clock.now()
                await self._beat()
                self._beat_went_through(sent_at)
                await self._renew()
                if self.joined.is_set() and not self._leaving:
                    await self._check_members()
                await self.holdings.check_quarantine()
            except (BackendError, RebalanceError) as exc:
                self.healthy_since = None
                if self.on_unavailable is not None and isinstance(exc, BackendUnavailable):
                    self.on_unavailable(exc)
                self._beat_failures.warn("heartbeat of %s failed: %s", self.id, exc)
            else:
                self._beat_failures.clear(f"the heartbeat of {self.id}")

    def _beat_went_through(self, sent_at: float) -> None:
        """Note a heartbeat sent at ``sent_at`` that went through.

        A gap of more than two ticks since the previous one (Redis stalled, or this
        process or its event loop was paused) starts a new healthy stretch: the others'
        heartbeats may have lapsed in the same stall, and they get time to beat again
        before anyone is reaped (:meth:`may_reap`).
        """
        last = self._last_beat
        if self.healthy_since is None or last is None or sent_at - last > 2 * self.tick:
            self.healthy_since = sent_at
        self._last_beat = sent_at

    def may_reap(self, now: float) -> bool:
        """Whether our own heartbeats have gone through for long enough (three ticks
        without a gap) that a member whose heartbeat is gone really missed its beats,
        rather than lapsing in a stall that held everyone."""
        since = self.healthy_since
        return since is not None and now - since >= MISSED_BEATS * self.tick

    async def _renew(self) -> None:
        holdings = self.holdings
        held = [(n, f.lease) for n, f in holdings.feeds.items() if not f.lost]
        if not held:
            return
        sent_at = self.clock.now()
        results = await self.backend.locks.extend(
            [lease for _, lease in held], self.spec.lock_expiry
        )
        for (number, lease), ok in zip(held, results, strict=True):
            feed = holdings.feeds.get(number)
            if feed is None or feed.lease is not lease:
                continue  # released or replaced meanwhile
            if ok:
                holdings.renewed(number, sent_at)
            else:
                holdings.lose(number)

    async def _check_members(self) -> None:
        members = await self._read()
        if self._leaving:
            return  # leave() is taking us out: neither re-join nor reap on its way
        if self.id not in members:
            # Lost with everything else in a store reset, or reaped after a pause: the
            # store check tells the two apart (and reports a reset) before we join again.
            if await self.holdings.check_store() is None:
                return  # halting
            log.warning(
                "%s is no longer a member of %s (reaped after a pause, or the store was "
                "reset): joining again",
                self.id,
                self.name,
            )
            await self._join("rejoin")
            return
        others = sorted(e for e in members if e != self.id)
        if others:
            alive = await self.backend.kv.exists([self.keys.beat(self.name, e) for e in others])
            dead = []
            if self.may_reap(self.clock.now()):  # not right after a stall: see may_reap
                dead = [e for e, ok in zip(others, alive, strict=True) if not ok]
            gone = await self.gone(
                {e: members[e].worker for e, ok in zip(others, alive, strict=True) if ok}
            )
            if dead or gone:
                log.warning(
                    "reaping dead member(s) of %s: %s",
                    self.name,
                    ", ".join([*dead, *(f"{e} (its connection is closed)" for e in gone)]),
                )
                lost = {e: members[e].partitions for e in gone}
                write = await self._update(
                    "reap", lambda m: without(m, [*dead, *gone], self._count(m))
                )
                if write.written:
                    self.reaped += len(dead) + len(gone)
                    self.reaped_by_heartbeat += sum(len(members[e].partitions) for e in dead)
                    self.reaped_by_connection += sum(len(p) for p in lost.values())
                await self._free_leases_of(lost)
        if assigned_to(self.members, self.id) != frozenset(self.holdings.feeds):
            self._wake.set()

    async def gone(self, workers: Mapping[str, str]) -> list[str]:
        """Of the members ``workers`` (executor id -> worker id) whose heartbeat still
        lives, those whose worker process is gone.

        A worker is gone when its named connection (:func:`connection_name`) was missing
        from the store at two checks at least :data:`GONE_AFTER_TICKS` ticks apart, and
        its heartbeat was not renewed in between. A live worker whose connections were
        killed opens them again within a tick and renews its heartbeat every tick; a
        paused one keeps its connections open (the operating system holds them). Without
        the presence capability (or its permission) nobody is ever found gone here: the
        heartbeat's expiry decides, as before.
        """
        presence = self.backend.presence
        candidates = {e: w for e, w in workers.items() if w and w != self.worker_id}
        if presence is None or not candidates:
            self._suspects.clear()
            return []
        names = {connection_name(self.spec.stream.app, w): w for w in set(candidates.values())}
        present = await presence.present(list(names))
        if present is None:
            self._suspects.clear()
            return []
        missing = {w for n, w in names.items() if n not in present}
        for worker in list(self._suspects):
            if worker not in missing:
                del self._suspects[worker]  # connected again: not gone
        now, found = self.clock.now(), []
        for executor, worker in sorted(candidates.items()):
            if worker not in missing:
                continue
            remaining = await self.backend.locks.expires_in(self.keys.beat(self.name, executor))
            suspect = self._suspects.get(worker)
            if suspect is None:
                self._suspects[worker] = (now, remaining)
                continue
            since, before = suspect
            renewed = remaining is not None and (before is None or remaining > before)
            if renewed:
                self._suspects[worker] = (now, remaining)
            elif now - since >= GONE_AFTER_TICKS * self.tick:
                found.append(executor)
        self.gone_found += len(found)
        return found

    async def _free_leases_of(self, gone: Mapping[str, frozenset[int]]) -> None:
        """Release the leases members found gone still hold, so that their partitions'
        new owners take them at once (under new epochs: fenced) instead of waiting for
        them to expire; and announce it."""
        freed = []
        locks = self.backend.locks
        for executor, partitions in gone.items():
            for number in sorted(partitions):
                key = self.keys.lock(self.name, number)
                token = await locks.holder(key)
                owner, _, epoch = (token or b"").decode("utf-8", "replace").rpartition(":")
                if token is None or owner != executor or not epoch.isdigit():
                    continue  # free already, or someone else's by now
                (released,) = await locks.release([Lease(key, token, int(epoch))])
                if released:
                    freed.append(number)
        if freed:
            log.info("released the leases of %s.%s left by gone member(s)", self.stream.name, freed)
            await self._announce_released(freed)

    async def _watchdog_loop(self) -> None:
        holdings, clock = self.holdings, self.clock
        while True:
            now = clock.now()
            for number, feed in list(holdings.feeds.items()):
                if not feed.lost and feed.deadline <= now:
                    log.warning(
                        "lease of %s.%d (epoch %d) may have expired (no renewal for %.2fs): "
                        "stopping it",
                        self.stream.name,
                        number,
                        feed.epoch,
                        self.lease_clock.usable,
                    )
                    holdings.lose(number)
            deadlines = [f.deadline for f in holdings.feeds.values() if not f.lost]
            wake_at = min([*deadlines, now + self.tick])
            await clock.sleep(max(MIN_RETRY, wake_at - now))

    async def _control_loop(self) -> None:
        log_port, key = self.backend.log, self.membership_keys.control
        timeout = max(self.spec.read_timeout, 1.0)
        while True:
            last = self.control_last or MIN_ID.encode()
            try:
                await log_port.wait({key: last}, timeout)
                messages = await log_port.range(key, b"(" + last, b"+", count=100)
            except BackendError as exc:
                self._control_failures.warn(
                    "reading the control stream of %s failed: %s", self.name, exc
                )
                # Backing off costs nothing: the reconcile loop retries on its own.
                failures = min(self._control_failures.failures, 6)
                await self.clock.sleep(min(self.tick * 2 ** (failures - 1), 5.0))
                continue
            self._control_failures.clear(f"reading the control stream of {self.name}")
            if not messages:
                continue
            self.control_last = messages[-1].id
            now = self.clock.now()
            for message in messages:
                note = Announcement.parse(message.fields)
                if note.kind == "released":
                    for number in note.partitions & self.retry_at.keys():
                        self.retry_at[number] = now
            self._wake.set()

    async def _reconcile_loop(self) -> None:
        while True:
            timeout = max(self.spec.assignment_sleep, self.tick)
            if self.retry_at:
                timeout = min(timeout, min(self.retry_at.values()) - self.clock.now())
            await self.clock.wait_for(self._wake, max(MIN_RETRY, timeout))
            self._wake.clear()
            try:
                async with self._busy:
                    if not self._leaving:
                        await self.reconcile()
            except (BackendError, RebalanceError) as exc:
                self._rebalance_failures.warn(
                    "rebalance of %s failed, retrying: %s", self.name, exc
                )
                await self.clock.sleep(self.tick)
                self._wake.set()
            else:
                self._rebalance_failures.clear(f"the rebalance of {self.name}")

    # ------------------------------------------------------------------ reconcile

    async def reconcile(self) -> None:
        """Release what is no longer ours, then acquire what newly is."""
        members = await self._read()
        mine = assigned_to(members, self.id)
        plan = plan_rebalance(frozenset(self.holdings.feeds), mine)
        if plan.release:
            await self._release(sorted(plan.release))
        for number in list(self.retry_at):
            if number not in mine:
                self.retry_at.pop(number)
                self.attempts.pop(number, None)
        for number in sorted(plan.acquire):
            if self._leaving:
                return
            if self.retry_at.get(number, 0.0) > self.clock.now():
                continue
            await self._acquire(number)

    async def _release(self, numbers: list[int]) -> None:
        numbers = [n for n in numbers if n in self.holdings.feeds]
        if not numbers:
            return
        log.info("%s hands back %s.%s", self.id, self.stream.name, numbers)
        await asyncio.gather(*(self.holdings.revoke(n) for n in numbers))
        self.released += len(numbers)
        await self._announce_released(numbers)

    async def _acquire(self, number: int) -> None:
        locks = self.backend.locks
        lock_key = self.keys.lock(self.name, number)
        sent_at = self.clock.now()
        lease = await locks.acquire(
            lock_key, self.keys.epoch(self.name, number), self.id, self.spec.lock_expiry
        )
        if lease is not None:
            self.retry_at.pop(number, None)
            self.attempts.pop(number, None)
            self.acquired += 1
            await self.holdings.grant(number, lease, sent_at)
            return
        # Still held: its owner is draining it (it will announce the release) or died (its
        # lease runs out by itself). Come back at the lease's expiry at the latest.
        # A lease that is gone by now (it expired or was released since the attempt) is
        # tried again at once; a held one at its expiry, or after assignment_sleep.
        remaining = await locks.expires_in(lock_key)
        wait = MIN_RETRY if remaining is None else min(remaining, self.spec.assignment_sleep)
        self.retry_at[number] = self.clock.now() + max(MIN_RETRY, wait)
        attempts = self.attempts[number] = self.attempts.get(number, 0) + 1
        if attempts == self.spec.assignment_attempts:
            holder = await locks.holder(lock_key)
            log.warning(
                "partition %s.%d is still held by %s after %d attempts; waiting for its "
                "release or expiry",
                self.stream.name,
                number,
                holder.decode("utf-8", "replace") if holder else "nobody",
                attempts,
            )
