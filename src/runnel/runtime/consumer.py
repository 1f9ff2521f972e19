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
from typing import TYPE_CHECKING, Any

from runnel import context
from runnel.domain.failures import dead_letter_fields, describe, safe_repr
from runnel.domain.model import Event
from runnel.domain.policy import PartitionState, on_failure
from runnel.errors import DeadLetterFailed, Fenced, RunnelError
from runnel.ports import DeadLetter
from runnel.runtime.events import Events, ids_of
from runnel.runtime.feed import PartitionFeed

if TYPE_CHECKING:
    from runnel.runtime.executor import Executor

log = logging.getLogger(__name__)


class ProcessorReturned(RunnelError):
    """The processor function returned while its partition was still assigned to it."""


class Consumer:
    """Processes one partition: restarts the processor after IGNOREd failures, stops on
    HALT/QUARANTINE, on revocation and on lease loss."""

    def __init__(self, executor: Executor, feed: PartitionFeed) -> None:
        self.executor = executor
        self.spec = executor.spec
        self.feed = feed
        self.state = PartitionState.RUNNING
        self.acked = 0
        self._restarts = 0

    def ack(self, events: Sequence[Event]) -> None:
        """Queue the acknowledgement of processed events (flushed in coalesced batches)."""
        self.executor.acker.add(self.feed, [e.id for e in events])
        self.acked += len(events)

    async def run(self) -> None:
        """Run until the partition is revoked, lost, halted or quarantined."""
        context.partition.set(self.feed.partition)
        await self._run()
        self._forget_if_lost()

    def _forget_if_lost(self) -> None:
        """Tell the executor a lease it still lists was lost, so it can be taken again.

        The fetcher (a fenced read), the acker (a fenced ack) and the feed itself (its local
        deadline passed, e.g. after the process was paused) mark a feed lost without telling
        the executor. Such a feed stayed in ``executor.feeds`` for good: lease renewal skips
        lost feeds, and ownership never re-acquires a partition it believes it holds, so the
        partition was never processed again (a lone worker resumed after SIGSTOP stalled on
        every partition). Dropping it like a failed renewal does lets it be re-acquired.
        """
        ex, feed = self.executor, self.feed
        number = feed.partition.number
        if not feed.lost or ex.feeds.get(number) is not feed:
            return  # not lost, or already dropped/replaced (revoke, lose, a new grant)
        ex.consumers.pop(number, None)  # that is this task, which is ending: nothing to cancel
        ex.lose(number)

    async def _run(self) -> None:
        feed, clock = self.feed, self.executor.clock
        while not feed.closing:
            events = Events(self)
            failure: BaseException | None = None
            try:
                await self.spec.func(events)
            except asyncio.CancelledError:
                await events._close(None)
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
            if feed.lost:
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
                    await self.executor.acker.flush()  # what finished must not come back
                except Exception as exc:
                    log.warning("acknowledgements not flushed before a redelivery: %s", exc)
                feed.restart_from_history()
            if failed is None or redeliver:
                # Failing before any event, or unable to dead-letter: back off so a broken
                # processor or an unavailable backend does not make us spin.
                await clock.sleep(min(0.05 * 2 ** min(self._restarts, 6), 2.0))

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
        self.state = decision.state
        if decision.state is PartitionState.QUARANTINED:
            await self.executor.quarantine(feed, first_id, failure)
        elif decision.stop_worker:
            self.executor.halt(failure, feed.partition)
        return decision.redeliver

    async def dead_letter(self, events: Sequence[Event], error: BaseException, sink: Any) -> None:
        """Append failed events to ``sink`` with the error, acknowledging each atomically."""
        feed = self.feed
        info = describe(error)
        stamp = self.executor.clock.wall().isoformat()
        try:
            await sink.prepare()
        except Exception as exc:
            raise DeadLetterFailed(
                f"could not prepare the dead-letter stream {sink.name!r} (the failed events "
                f"stay pending and are retried): {safe_repr(exc)}"
            ) from exc
        for event in events:
            if event._dead:
                continue
            fields = dead_letter_fields(
                event.data,
                info,
                stream=feed.partition.stream,
                partition=feed.partition.number,
                entry_id=event.id,
                processor=self.spec.name,
                time=stamp,
            )
            sink_key = sink.partition_key_name(feed.partition.number % sink.partition_count)
            try:
                await self.executor.backend.log.dead_letter(
                    DeadLetter(feed.key, self.spec.name, event.id, sink_key, fields, feed.fence)
                )
            except Fenced:
                feed.close(lost=True)  # the lease is gone: the new owner redelivers it
                raise
            except Exception as exc:
                raise DeadLetterFailed(
                    f"could not dead-letter {feed.partition.stream}.{feed.partition.number} "
                    f"entry {event.id.decode()} to {sink_key} (it stays pending and is "
                    f"retried): {safe_repr(exc)}"
                ) from exc
            event._dead = True
            log.warning(
                "dead-lettered %s.%d entry %s to %s: %s",
                feed.partition.stream,
                feed.partition.number,
                event.id.decode(),
                sink_key,
                info.type,
            )
