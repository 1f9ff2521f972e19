"""An executor runs one processor over the partitions its worker owns.

It owns a fetcher, an acker, one consumer task per owned partition, and a coordinator
(:mod:`runnel.runtime.coordination`) that grants, revokes and renews partition leases.
Revocation is graceful: stop fetching the partition, let the in-flight iteration finish
within ``grace_period``, flush acknowledgements, then release the lease.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from runnel import context
from runnel.domain.failures import describe, quarantine_field, quarantine_record, safe_repr
from runnel.domain.health import ExecutorFacts
from runnel.domain.leases import LeaseClock
from runnel.domain.membership import assigned_to
from runnel.domain.model import Partition
from runnel.errors import BackendError, MetadataMismatch, PermissionDenied
from runnel.ports import Backend, Fence, Lease
from runnel.runtime._aio import cancel_and_wait
from runnel.runtime.acks import Acker
from runnel.runtime.budget import ByteBudget
from runnel.runtime.consumer import Consumer
from runnel.runtime.coordination import Coordinator
from runnel.runtime.dead_letters import DeadLetterWriter
from runnel.runtime.feed import PartitionFeed
from runnel.runtime.fetcher import Fetcher
from runnel.runtime.monitor import BackendWatch, Counts, ProcessorMonitor
from runnel.runtime.outputs import CommitCounts, Transactor
from runnel.runtime.plan import PartitionChecks
from runnel.runtime.resize import ResizeWatch
from runnel.runtime.specs import ProcessorSpec
from runnel.runtime.store import StreamStore
from runnel.telemetry import Metrics, Tracing

log = logging.getLogger(__name__)

Halt = Callable[[BaseException, str], None]
"""Stops the worker with a non-zero exit, saying what failed and where."""


class Executor:
    """Runs one processor (one consumer group) inside a worker.

    Args:
        spec: the processor.
        backend: the ports.
        stores: the stores of the app's streams by name (the processor's own, and the
            dead-letter sinks it writes to).
        worker_id: the id of the worker it runs in.
        halt: stops that worker (HALT policy, or a bug in runnel).
    """

    def __init__(
        self,
        spec: ProcessorSpec,
        backend: Backend,
        stores: Mapping[str, StreamStore],
        worker_id: str,
        halt: Halt,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        checks: PartitionChecks | None = None,
        watch: BackendWatch | None = None,
        budget: ByteBudget | None = None,
    ) -> None:
        self.spec = spec
        self.budget = budget
        self.backend = backend
        self.clock = backend.clock
        self.worker_id = worker_id
        self._halt = halt
        self.id = f"{worker_id}-{spec.name}-{uuid.uuid4().hex[:6]}"
        self.stream = spec.stream
        self.store = stores[spec.stream.name]
        self.keys = spec.stream.keys
        self.lease_clock = LeaseClock(spec.lock_expiry)
        self.feeds: dict[int, PartitionFeed] = {}
        self.consumers: dict[int, asyncio.Task[None]] = {}
        self.quarantined: set[int] = set()
        self._unrecorded: dict[int, bytes] = {}  # quarantines not yet written durably
        self._halts: dict[int, bytes] = {}  # partitions that halted the worker, to record
        self._room = asyncio.Event()
        self.acker = Acker(backend.log, spec.name, self.clock)
        # What a consumer calls for every event it is done with: the acker's own method,
        # so the hot path has no call of ours in between.
        self.ack: Callable[[PartitionFeed, list[bytes]], None] = self.acker.add
        self.dead_letters = DeadLetterWriter(
            backend.log, self.clock, spec.name, lambda name: stores[name]
        )
        self.fetcher = Fetcher(
            backend.log,
            self.clock,
            spec.name,
            self._active_feeds,
            self.stream.decode,
            spec.read_timeout,
            self._room,
            self.acker,
            self.check_store,
            budget,
        )
        self.coordinator = Coordinator(
            self.id, worker_id, spec, backend, holdings=self, halt=self._halt
        )
        self.monitor = ProcessorMonitor(
            spec.stream.app,
            spec.stream.name,
            spec.name,
            self.id,
            spec.stream.partition_count,
            backend.log,
            backend.admin,
            self.clock,
            metrics,
            tracing,
            checks,
            watch,
        )
        self.resize = ResizeWatch(
            self.store,
            self.keys,
            spec.name,
            backend.kv,
            backend.admin,
            self.clock,
            lambda: self.feeds,
            self.coordinator.resized,
            spec.stream.partition_count,
            metrics,
        )
        """Holds the partitions behind a stream resize's barrier (runtime/resize.py)."""
        self.fetcher.on_marker = self.resize.wake
        if watch is not None:
            self.fetcher.on_unavailable = self.coordinator.on_unavailable = watch.failed
        self.running: dict[int, Consumer] = {}
        self.commits = CommitCounts()
        """The effectively-once commits of this executor's partitions."""
        self.lost = 0
        self.store_resets = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def _active_feeds(self) -> list[PartitionFeed]:
        return list(self.feeds.values())

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the groups, then start the fetcher and the coordinator."""
        for key in self.stream.partition_keys:
            await self.backend.log.ensure_group(key, self.spec.name, b"0")
        # The resize barrier as it stands, before any partition is granted: a feed must
        # not read past a switch point it does not know of yet.
        await self.resize.refresh()
        for coro, name in (
            (self.fetcher.run(), "fetcher"),
            (self.coordinator.run(), "coordinator"),
            (self.resize.run(), "resize"),
        ):
            self._tasks.append(
                asyncio.create_task(self._in_context(coro), name=f"{self.id}:{name}")
            )

    async def _in_context(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` with this executor's context variables (its task's own copy).

        A crash of the fetcher or the coordinator is a bug in runnel: it halts the worker
        (exit code 1) instead of leaving its partitions stalled without a word.
        """
        self._set_context()
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except PermissionDenied as exc:  # not a crash: the Redis user lacks a permission
            task = asyncio.current_task()
            self._halt(exc, task.get_name() if task is not None else self.id)
        except Exception as exc:
            task = asyncio.current_task()
            name = task.get_name() if task is not None else self.id
            log.critical("%s crashed: %s", name, safe_repr(exc), exc_info=exc)
            self._halt(exc, name)

    def _set_context(self) -> None:
        context.executor_id.set(self.id)
        context.processor_name.set(self.spec.name)
        context.stream_name.set(self.stream.name)

    async def stop(self) -> None:
        """Graceful stop: drain every partition, flush acks, release leases."""
        if self._stopping:
            return
        self._stopping = True
        self._set_context()  # the worker runs each stop in a task of its own
        for feed in self.feeds.values():  # no new events from now on: the drain starts
            feed.close()  # at once, not after the membership update (Redis may stall)
        try:
            await self.coordinator.leave()
        except Exception as exc:
            log.error("leaving %s failed: %s", self.spec.name, safe_repr(exc))
        await asyncio.gather(*(self.revoke(n) for n in list(self.feeds)), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.acker.flush()
        except Exception as exc:
            log.error("final acknowledgement flush of %s failed: %s", self.spec.name, exc)
        if self._halts:
            halts = {quarantine_field(n): record for n, record in self._halts.items()}
            try:
                await self.backend.kv.hash_set(self.keys.halts(self.spec.name), halts)
            except Exception as exc:
                log.error("could not record what halted %s: %s", self.spec.name, safe_repr(exc))

    # ------------------------------------------------------------------ holdings (coordinator)

    async def grant(self, number: int, lease: Lease, sent_at: float) -> None:
        """Start consuming partition ``number`` under ``lease`` (acquired at ``sent_at``)."""
        if number in self.feeds:
            return
        key = self.keys.stream(number)
        fence = Fence(lease.key, lease.token, self.keys.fenced_counter(self.spec.name, number))
        feed = PartitionFeed(
            Partition(self.stream.name, number),
            key,
            lease,
            fence,
            self.lease_clock.deadline(sent_at),
            self.spec.prefetch_count,
            self.clock,
            self._room,
            self.budget,
            self.spec.prefetch_max,
        )
        for info in await self.backend.log.groups(key):
            if info.name == self.spec.name:
                feed.last_seen = info.last_delivered_id
        self.resize.apply(number, feed)
        self.feeds[number] = feed
        record = await self.backend.kv.hash_get_all(self.keys.quarantine(self.spec.name))
        if quarantine_field(number) in record:
            feed.paused = True
            self.quarantined.add(number)
            log.warning(
                "partition %s.%d is quarantined: not processing it",
                self.stream.name,
                number,
                extra={"partition": number},
            )
        else:
            self._start_consumer(feed)
        self._room.set()
        self.fetcher.assigned.set()
        log.info(
            "acquired %s.%d (epoch %d)",
            self.stream.name,
            number,
            lease.epoch,
            extra={"partition": number},
        )

    def renewed(self, number: int, sent_at: float) -> None:
        """A renewal sent at ``sent_at`` succeeded: push the local deadline."""
        feed = self.feeds.get(number)
        if feed is not None:
            feed.deadline = self.lease_clock.deadline(sent_at)

    def lose(self, number: int) -> None:
        """The lease is gone: stop handing out events at once (nothing more is acked)."""
        feed = self.feeds.pop(number, None)
        if feed is None:
            return
        feed.close(lost=True)
        self.lost += 1
        self.running.pop(number, None)
        self.monitor.released(number)
        task = self.consumers.pop(number, None)
        if task is not None:
            task.cancel()
        log.warning(
            "lost the lease of %s.%d (epoch %d)",
            self.stream.name,
            number,
            feed.epoch,
            extra={"partition": number},
        )
        self.coordinator.wake()  # take it again if it is still ours

    async def revoke(self, number: int) -> None:
        """Graceful hand-back: finish in-flight work, flush acks, release the lease."""
        feed = self.feeds.get(number)
        if feed is None:
            return
        feed.close()
        task = self.consumers.get(number)
        if task is not None and not await self.clock.wait_for(task, self.spec.grace_period):
            log.warning(
                "%s.%d did not finish its in-flight work within grace_period=%ss: cancelled "
                "(its unacknowledged events will be redelivered)",
                self.stream.name,
                number,
                self.spec.grace_period,
            )
            await cancel_and_wait(task)
        await self.acker.flush()
        await self.fetcher.let_go(feed)  # no read of it may follow the release
        self.feeds.pop(number, None)
        self.consumers.pop(number, None)
        self.running.pop(number, None)
        self.monitor.released(number)
        await self.backend.locks.release([feed.lease])
        log.info("released %s.%d", self.stream.name, number, extra={"partition": number})

    # ------------------------------------------------------------------ consumers

    def _start_consumer(self, feed: PartitionFeed) -> None:
        number = feed.partition.number
        transactor = None
        if self.spec.guarantee == "effectively_once":
            backend = self.backend
            transactor = Transactor(
                self.spec,
                feed,
                backend.log,
                backend.kv,
                self.clock,
                lambda events: self.ack(feed, [e.id for e in events]),
                self.commits,
            )
        consumer = Consumer(
            self.spec,
            feed,
            self.clock,
            self,
            self.dead_letters,
            self.monitor.iterations(number),
            transactor,
        )
        self.running[number] = consumer
        task = asyncio.create_task(self._consume(consumer), name=f"{self.id}:p{number}")
        self.consumers[number] = task

    async def _consume(self, consumer: Consumer) -> None:
        try:
            await consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in runnel itself: never silent
            log.critical("consumer of %s crashed: %s", consumer.feed.key, exc, exc_info=exc)
            self.halt(exc, consumer.feed.partition)

    # ------------------------------------------------------------------ host (consumers)

    async def flush_acks(self) -> None:
        """Send the queued acknowledgements and wait for every reply."""
        await self.acker.flush()

    def forget(self, feed: PartitionFeed) -> None:
        """Drop a lost feed this executor still lists, so its partition can be taken again.

        Renewal skips lost feeds, and ownership never re-acquires a partition it believes
        it holds: a lost feed left in :attr:`feeds` would stall its partition for good (a
        lone worker resumed after SIGSTOP stalled on every partition).
        """
        number = feed.partition.number
        if not feed.lost or self.feeds.get(number) is not feed:
            return  # not lost, or already dropped/replaced (revoke, lose, a new grant)
        self.consumers.pop(number, None)  # that is the caller's task, which is ending
        self.lose(number)

    def halt(self, error: BaseException, partition: Partition) -> None:
        """HALT policy: stop the whole worker with a non-zero exit.

        What halted it is written to ``__halt:...`` when the executor stops (operators see
        it in ``runnel status``; a skip or a reset of the partition removes it).
        """
        self._halts[partition.number] = quarantine_record(
            partition.number, None, describe(error), self.clock.wall().isoformat(), self.worker_id
        )
        self._halt(error, f"{self.spec.name} on {partition.stream}.{partition.number}")

    async def quarantine(
        self, feed: PartitionFeed, entry_id: str | None, error: BaseException
    ) -> None:
        """QUARANTINE policy: record it durably and stop only this partition."""
        number = feed.partition.number
        feed.paused = True
        try:  # what finished before the failure is done: it must not come back
            await self.acker.flush()
        except Exception as exc:
            log.warning("acknowledgements not flushed before a quarantine: %s", safe_repr(exc))
        feed.restart_from_history()
        self.quarantined.add(number)
        self._unrecorded[number] = quarantine_record(
            number, entry_id, describe(error), self.clock.wall().isoformat(), self.worker_id
        )
        log.error("quarantined %s.%d at entry %s", self.stream.name, number, entry_id or "-")
        await self._record_quarantines()

    async def _record_quarantines(self) -> None:
        """Write quarantine records; one that fails stays paused and is retried later."""
        for number, record in list(self._unrecorded.items()):
            try:
                await self.backend.kv.hash_set(
                    self.keys.quarantine(self.spec.name), {quarantine_field(number): record}
                )
            except Exception as exc:
                log.error(
                    "could not record the quarantine of %s.%d yet (it stays stopped; retrying): %s",
                    self.stream.name,
                    number,
                    safe_repr(exc),
                )
            else:
                del self._unrecorded[number]

    # ------------------------------------------------------------------ health and metrics

    def health(self) -> ExecutorFacts:
        """Whether this executor joined, and how many partitions it is assigned and holds."""
        coordinator = self.coordinator
        return ExecutorFacts(
            self.spec.name,
            joined=coordinator.joined.is_set(),
            assigned=len(assigned_to(coordinator.members, self.id)),
            owned=len(self.feeds),
        )

    def counts(self) -> Counts:
        """The running totals the metrics are made from."""
        coordinator = self.coordinator
        return Counts(
            rebalances=coordinator.rebalances,
            gained=coordinator.acquired,
            lost=self.lost,
            fenced=self.fetcher.fenced
            + self.acker.fenced
            + self.dead_letters.fenced
            + self.commits.fenced,
            store_resets=self.store_resets,
            owned=len(self.feeds),
            assigned=len(assigned_to(coordinator.members, self.id)),
            commits=self.commits.committed,
            committed_outputs=self.commits.outputs,
            commit_retries=self.commits.retried,
            relayed=self.commits.relayed,
            relay_failures=self.commits.relay_failures,
            outbox_backlog=sum(
                c.transactor.backlog for c in self.running.values() if c.transactor is not None
            ),
            reaped_by_connection=coordinator.reaped_by_connection,
            reaped_by_heartbeat=coordinator.reaped_by_heartbeat,
        )

    def _in_flight(self, number: int) -> object | None:
        """The item partition ``number``'s processor holds now, if it is running at all."""
        consumer, task = self.running.get(number), self.consumers.get(number)
        if consumer is None or consumer.events is None or task is None or task.done():
            return None
        return consumer.events.inflight

    async def check_partitions(self) -> None:
        """Publish the counters, then look at every owned partition (lag, stuck)."""
        self.monitor.publish(self.counts())
        owned = {n: f.key for n, f in self.feeds.items() if not f.lost}
        in_flight = {n: self._in_flight(n) for n in owned}
        await self.monitor.check(owned, in_flight)

    # ------------------------------------------------------------------ checks

    async def check_store(self) -> bool | None:
        """Whether the whole store was reset (groups, leases or membership found missing).

        True when this call found (and reported) a reset, False when it did not, and None
        when the worker is halting because the stream was re-created with another
        definition (nothing should be re-created then).
        """
        try:
            reset = await self.store.check()
        except BackendError as exc:
            log.warning("could not check whether %s lost its data: %s", self.stream.name, exc)
            return False
        except (MetadataMismatch, PermissionDenied) as exc:  # re-created meanwhile by an
            # App that differs, or a check the Redis user may not run
            self._halt(exc, f"the store check of {self.stream.name}")
            return None
        except Exception as exc:  # never let the check take the fetcher down
            log.error("checking whether %s lost its data failed: %s", self.stream.name, exc)
            return False
        if reset:
            self.store_resets += 1
            log.critical(
                "the backend lost the data of stream %s.%s (%s): events it had accepted and "
                "not processed yet are gone for good. Consumer groups are created again at 0 "
                "and processing goes on",
                self.stream.app,
                self.stream.name,
                await self._loss_cause(),
            )
        return reset

    async def _loss_cause(self) -> str:
        """Why the backend lost data, as far as it can tell."""
        diagnostics = self.backend.diagnostics  # a capability not every store has
        cause = None
        if diagnostics is not None:
            try:
                cause = await diagnostics.loss_cause()
            except (BackendError, PermissionDenied):
                cause = None
        return cause or (
            "Redis restarted without persistence, was flushed, evicted keys, or failed over "
            "to an empty replica"
        )

    async def check_quarantine(self) -> None:
        """Resume partitions whose quarantine was cleared (called by the coordinator)."""
        if not self.quarantined:
            return
        if self._unrecorded:
            await self._record_quarantines()
        record = await self.backend.kv.hash_get_all(self.keys.quarantine(self.spec.name))
        for number in list(self.quarantined):
            if quarantine_field(number) in record or number in self._unrecorded:
                continue
            self.quarantined.discard(number)
            feed = self.feeds.get(number)
            if feed is None or not feed.paused:
                continue
            old = self.consumers.pop(number, None)
            if old is not None:
                await asyncio.gather(old, return_exceptions=True)
            feed.paused = False
            await self.acker.flush()
            feed.restart_from_history()
            self._start_consumer(feed)
            log.info("quarantine of %s.%d cleared: processing again", self.stream.name, number)
