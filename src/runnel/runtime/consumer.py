"""A consumer runs the user's processor over one partition and applies the policy.

A failure anywhere in the chain (an undecodable entry, a middleware raising, the processor
raising, or returning while its partition is still owned) goes through the same exception
policy (:mod:`runnel.domain.policy`). The chain's generators are always closed, and their
finalisation awaited, before the processor runs again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from runnel import context
from runnel.domain.failures import safe_repr
from runnel.domain.model import Event, Partition
from runnel.domain.policy import PartitionState, on_failure
from runnel.errors import DeadLetterFailed, LeaseExpired, RunnelError
from runnel.ports import Clock
from runnel.runtime.dead_letters import DeadLetterWriter
from runnel.runtime.events import Events, ids_of
from runnel.runtime.feed import PartitionFeed
from runnel.runtime.iterations import IterationMonitor, events_of
from runnel.runtime.outputs import Transactor
from runnel.runtime.specs import ProcessorSpec, Sink

log = logging.getLogger(__name__)


class ProcessorReturned(RunnelError):
    """The processor function returned while its partition was still assigned to it."""


class PartitionHost(Protocol):
    """What a consumer may ask of the executor that runs it."""

    def ack(self, feed: PartitionFeed, ids: list[bytes]) -> None:
        """Queue the acknowledgement of ``ids`` (sent in coalesced batches)."""
        ...

    async def flush_acks(self) -> None:
        """Send every queued acknowledgement now and wait for the replies."""
        ...

    def halt(self, error: BaseException, partition: Partition) -> None:
        """HALT: stop the whole worker with a non-zero exit."""
        ...

    async def quarantine(
        self, feed: PartitionFeed, entry_id: str | None, error: BaseException
    ) -> None:
        """QUARANTINE: record it durably and stop only this partition."""
        ...

    def forget(self, feed: PartitionFeed) -> None:
        """The lease of ``feed`` was lost: drop it, so the partition can be taken again."""
        ...


class Consumer:
    """Processes one partition: restarts the processor after IGNOREd failures, stops on
    HALT/QUARANTINE, on revocation and on lease loss."""

    def __init__(
        self,
        spec: ProcessorSpec,
        feed: PartitionFeed,
        clock: Clock,
        host: PartitionHost,
        dead_letters: DeadLetterWriter,
        monitor: IterationMonitor | None = None,
        transactor: Transactor | None = None,
    ) -> None:
        self.spec = spec
        self.transactor = transactor
        """Stages and commits the iterations' effects (an effectively-once processor)."""
        self.feed = feed
        self.monitor = monitor
        """Counts, times and traces the iterations (None when metrics and tracing are off)."""
        self.events: Events | None = None
        """The Events of the processor's current run."""
        self.state = PartitionState.RUNNING
        self.acked = 0
        self._clock = clock
        self._host = host
        self._dead_letters = dead_letters
        self._restarts = 0

    def ack(self, events: Sequence[Event]) -> None:
        """Queue the acknowledgement of processed events (flushed in coalesced batches)."""
        if len(events) == 1:  # one at a time: no comprehension (a call of its own)
            self._host.ack(self.feed, [events[0].id])
            self.acked += 1
            return
        self._host.ack(self.feed, [e.id for e in events])
        self.acked += len(events)

    async def dead_letter(self, events: Sequence[Event], error: BaseException, sink: Sink) -> None:
        """Append failed events to ``sink`` with the error, acknowledging each atomically."""
        await self._dead_letters.write(self.feed, events, error, sink)

    async def run(self) -> None:
        """Run until the partition is revoked, lost, halted or quarantined."""
        context.partition.set(self.feed.partition)
        transactor = self.transactor
        if transactor is not None:
            context.outputs.set(transactor)  # Stream.send stages in this task
            await transactor.load()
        await self._run()
        if self.feed.lost:
            # The fetcher (a fenced read), the acker (a fenced ack) and the feed itself (its
            # local deadline passed, e.g. after the process was paused) mark a feed lost
            # without telling the executor; a lost feed it kept listing would never be
            # renewed nor acquired again, so its partition would stall.
            self._host.forget(self.feed)

    def _events(self) -> Events:
        spec = self.spec
        tx = self.transactor
        events = self.events = Events(
            self.feed,
            spec.name,
            spec.middleware,
            self.ack,
            self.dead_letter,
            self.monitor,
            commit=tx.commit if tx is not None else None,
            state=tx.state if tx is not None else None,
        )
        context.processing.set(events)
        return events

    async def _run(self) -> None:
        feed, clock = self.feed, self._clock
        while not feed.closing:
            events = self._events()
            failure: BaseException | None = None
            try:
                await self.spec.func(events)
            except asyncio.CancelledError:
                await events._close(None)
                self._discard()
                raise
            except Exception as exc:
                failure = exc
            if failure is None and not self._stopping():
                failure = ProcessorReturned(
                    f"processor {self.spec.name!r} returned while partition "
                    f"{feed.partition.number} was still assigned to it"
                )
            if failure is None:
                await events._close(None)
                return
            failed = events.inflight
            close_error = await events._close(failure)
            self._discard()  # a failed iteration commits none of its effects
            if feed.lost:
                if isinstance(failure, LeaseExpired):  # events.ensure_owned() refused
                    log.warning(
                        "processor %s stopped on entry %s: %s",
                        self.spec.name,
                        ids_of(failed)[0].decode() if failed else "-",
                        failure,
                        extra={"partition": feed.partition.number},
                    )
                return  # the lease is gone: the new owner redelivers; no policy applies
            dead_letter_failed = isinstance(close_error, DeadLetterFailed)
            if close_error is not None:
                # A middleware's cleanup failed: that is the failure the policy handles.
                failure = close_error
            redeliver = await self._apply_policy(
                failure,
                failed,
                dead_lettered=close_error is None
                and failed is not None
                and self._dead_lettered(failed),
                dead_letter_failed=dead_letter_failed,
            )
            if self.state is not PartitionState.RUNNING:
                return
            self._restarts += 1
            if redeliver:
                try:
                    await self._host.flush_acks()  # what finished must not come back
                except Exception as exc:
                    log.warning("acknowledgements not flushed before a redelivery: %s", exc)
                feed.restart_from_history()
            if failed is None or redeliver:
                # Failing before any event, or unable to dead-letter: back off so a broken
                # processor or an unavailable backend does not make us spin.
                await clock.sleep(min(0.05 * 2 ** min(self._restarts, 6), 2.0))

    def _discard(self) -> None:
        if self.transactor is not None:
            self.transactor.discard()

    def _stopping(self) -> bool:
        return self.feed.closing

    def _dead_lettered(self, failed: Event | list[Event]) -> bool:
        return all(e._dead for e in ([failed] if isinstance(failed, Event) else failed))

    async def _apply_policy(
        self,
        failure: BaseException,
        failed: Event | list[Event] | None,
        dead_lettered: bool,
        dead_letter_failed: bool = False,
    ) -> bool:
        """Apply the policy to ``failure``; True if the failed events must be redelivered."""
        spec, feed = self.spec, self.feed
        decision = on_failure(spec.exception_policy, self.state, dead_letter_failed)
        first_id = ids_of(failed)[0].decode() if failed else None
        log.error(
            "processor %s failed on %s.%d entry %s (policy %s): %s",
            spec.name,
            feed.partition.stream,
            feed.partition.number,
            first_id or "-",
            spec.exception_policy.value,
            safe_repr(failure),
            exc_info=failure,
        )
        if decision.ack and failed is not None and not dead_lettered:
            self.ack([failed] if isinstance(failed, Event) else failed)
        monitor = self.monitor
        if monitor is not None and failed is not None:
            count = events_of(failed)
            monitor.failed(count)
            if dead_lettered:
                monitor.dead_lettered(count)
            elif decision.ack:
                monitor.ignored(count)
            if decision.state is PartitionState.QUARANTINED:
                monitor.quarantined(count)
        self.state = decision.state
        if decision.state is PartitionState.QUARANTINED:
            await self._host.quarantine(feed, first_id, failure)
        elif decision.stop_worker:
            self._host.halt(failure, feed.partition)
        return decision.redeliver
