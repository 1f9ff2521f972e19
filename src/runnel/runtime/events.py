"""The Events iterator handed to processors.

Iterating yields :class:`~runnel.Event` objects; ``.records()`` yields Records;
``.take(n, within=s)`` yields lists. Every item passes through the processor's middleware
(listed first = sees events first) and is acknowledged when the processor asks for the
next one, so a batch is acknowledged as one unit.

Example:
    A processor loading records in batches of up to 10, each at most 2 seconds after its
    first event arrived::

        @app.processor(orders)
        async def load(events):
            async for batch in events.take(10, within=2).records():
                await bulk_load(batch)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from runnel.domain.failures import safe_repr
from runnel.domain.model import Event, Partition
from runnel.domain.take import TakeBuffer
from runnel.errors import LeaseExpired
from runnel.runtime.feed import FeedClosed, PartitionFeed
from runnel.runtime.iterations import IterationMonitor
from runnel.runtime.specs import Sink, Step

log = logging.getLogger(__name__)

Item = Event | list[Event]

Ack = Callable[[Sequence[Event]], None]
"""Queues the acknowledgement of events the processor is done with."""

DeadLetterTo = Callable[[Sequence[Event], BaseException, Sink], Awaitable[None]]
"""Writes failed events to a sink, acknowledging each (see :mod:`runnel.runtime.dead_letters`)."""

CommitTo = Callable[[Sequence[Event]], Awaitable[None]]
"""Commits what an iteration staged with the acknowledgement of its events (an
effectively-once processor; see :mod:`runnel.runtime.outputs`)."""


class Events:
    """The events of one partition for one run of a processor function.

    Use it once, in one of three ways: ``async for event in events``,
    ``events.records()`` or ``events.take(n, within=seconds)`` (optionally ``.records()``).

    Attributes:
        partition: the partition being processed.
        failure: the exception being handled while the chain closes after a failure
            (middleware reads it to dead-letter the failed item), else None.

    Example:
        Inside a processor::

            async for event in events:
                print(event.partition.number, event.id, event.record())
    """

    def __init__(
        self,
        feed: PartitionFeed,
        processor: str,
        middleware: Sequence[Step],
        ack: Ack,
        dead_letter: DeadLetterTo,
        monitor: IterationMonitor | None = None,
        commit: CommitTo | None = None,
        state: Any = None,
    ) -> None:
        self._feed = feed
        self._commit = commit
        self._state = state
        self._monitor = monitor
        self._processor = processor
        self._middleware = middleware
        self._ack = ack
        self._dead_letter = dead_letter
        self.partition: Partition = feed.partition
        self.failure: BaseException | None = None
        self.inflight: Item | None = None
        self._gens: list[AsyncGenerator[Any, None]] = []
        self._started = False
        self._take: tuple[int, float] | None = None
        self._decode = False

    # ------------------------------------------------------------------ public API

    @property
    def entry_id(self) -> str | None:
        """The id of the entry being processed (the first of a batch), or None.

        Example:
            Inside a processor, to name the entry in a message::

                async for order in events.records():
                    print(f"{events.entry_id}: {order}")
        """
        item = self.inflight
        if item is None:
            return None
        first = item if isinstance(item, Event) else item[0]
        return first.id.decode("ascii", "replace")

    @property
    def fencing_token(self) -> int:
        """The epoch of the lease these events are read under (for fenced external writes)."""
        return self._feed.epoch

    @property
    def state(self) -> Any:
        """The keyed state of this partition (:class:`~runnel.runtime.state.KeyedState`).

        Reads see what is committed plus what this iteration changed; changes are
        committed with the acknowledgement of the item being processed.

        Raises:
            RuntimeError: the processor was declared without ``state=``.

        Example:
            Inside ``@app.processor(orders, guarantee="effectively_once", state=int)``::

                async for order in events.records():
                    events.state.increment(order.customer, order.amount)
        """
        if self._state is None:
            raise RuntimeError(
                f"processor {self._processor!r} has no keyed state: declare it with "
                "@app.processor(..., guarantee='effectively_once', state=<value type>)"
            )
        return self._state

    def ensure_owned(self) -> int:
        """Check, right before a side effect, that this worker still owns the partition;
        return the lease's epoch (the fencing token).

        Cheap (no I/O): it compares the monotonic clock with the lease's local deadline,
        the last moment this worker is sure that nobody else owns the partition. Past it
        (the process was paused, its event loop blocked, Redis unreachable), the
        partition is dropped at once and :class:`~runnel.errors.LeaseExpired` is raised:
        let it propagate, and the new owner processes the event (no exception policy
        applies, nothing is acknowledged).

        It narrows the window in which a stale owner can act but cannot close it: the
        process may pause between this check and the write it guards. For writes that
        must never land out of order, also pass the returned epoch to the external system
        and have it refuse writes with an epoch lower than one it has seen (see the
        guide's "Fencing external writes").

        Raises:
            runnel.errors.LeaseExpired: the lease may have expired, or is gone.

        Example:
            Inside a processor::

                async for event in events:
                    result = await compute(event.record())   # may take a while
                    epoch = events.ensure_owned()            # still ours?
                    await db.write(result, fencing_token=epoch)
        """
        feed = self._feed
        if not feed.lost and feed.expired():
            feed.close(lost=True)
        if feed.lost:
            if self._monitor is not None:
                self._monitor.lease_expired()
            where = f"{feed.partition.stream}.{feed.partition.number}"
            raise LeaseExpired(
                f"partition {where} may have a new owner: the lease (epoch {feed.epoch}) "
                "expired or was lost; the side effect must not happen here (the new owner "
                "processes the event)",
                partition=where,
                epoch=feed.epoch,
            )
        return feed.epoch

    def records(self) -> Events:
        """Yield decoded Records (or lists of them after ``take``) instead of Events."""
        self._check_unstarted()
        self._decode = True
        return self

    def take(self, n: int, within: float = 1.0) -> Events:
        """Yield lists of up to ``n`` events, as soon as ``n`` are buffered or ``within``
        seconds after the first event of the batch arrived; never an empty list.
        """
        self._check_unstarted()
        size: object = n
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"take(n) needs an int n >= 1, got {n!r}")
        if not within >= 0:
            raise ValueError(f"take(within=) must be >= 0 seconds, got {within!r}")
        self._take = (n, float(within))
        # A batch of n must fit in the partition's buffer, whatever prefetch_count is.
        self._feed.hold_at_least(n)
        return self

    def __aiter__(self) -> AsyncIterator[Any]:
        self._check_unstarted()
        self._started = True
        middleware = self._middleware
        # Without middleware, records are decoded where the events are handed out: one
        # generator per event instead of two.
        decode_here = self._decode and not middleware
        if self._take:
            source = self._batches(*self._take, decode=decode_here)
        else:
            source = self._singles(decode=decode_here)
        chain: AsyncIterator[Any] = self._track(source)
        for mw in middleware:
            chain = self._track(
                mw.handler(chain, processor=self._processor, partition=self.partition, events=self)
            )
        if self._decode and not decode_here:
            chain = self._track(self._records(chain))
        return chain

    # ------------------------------------------------------------------ internals

    def _check_unstarted(self) -> None:
        if self._started:
            raise RuntimeError("an Events object can only be iterated once")

    def _track(self, gen: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if isinstance(gen, AsyncGenerator):
            self._gens.append(gen)
        return gen

    async def _singles(self, decode: bool = False) -> AsyncGenerator[Any, None]:
        feed, ack, monitor, commit = self._feed, self._ack, self._monitor, self._commit
        take_now = feed.take_now
        # With a monitor: iterations to let pass before its next, iterations let pass since
        # its last, and events processed it has not been told of.
        skip = skipped = untold = 0
        try:
            while True:
                event = take_now()  # the common case: an event is buffered already
                if event is None:
                    if untold and monitor is not None:
                        monitor.count(untold)  # up to date before waiting
                        untold = 0
                    try:
                        event = await feed.get()
                    except FeedClosed:
                        return
                    assert event is not None
                self.inflight = event
                if monitor is None:
                    yield event.record() if decode else event
                elif skip:
                    skip -= 1
                    yield event.record() if decode else event
                    skipped += 1
                    untold += 1
                else:
                    skip = monitor.begin(event, skipped, untold)
                    skipped = untold = 0
                    try:
                        yield event.record() if decode else event
                    except BaseException as exc:
                        monitor.abandon(self._cause(exc))
                        raise
                    monitor.end(event)
                if commit is not None:
                    await commit((event,))
                    self.inflight = None
                    continue
                self.inflight = None
                ack((event,))
        finally:
            if untold and monitor is not None:
                monitor.count(untold)

    async def _batches(
        self, size: int, within: float, decode: bool = False
    ) -> AsyncGenerator[list[Any], None]:
        feed, ack, clock, monitor = self._feed, self._ack, self._feed.clock, self._monitor
        commit = self._commit
        take_upto = feed.take_upto
        buffer: TakeBuffer[Event] = TakeBuffer(size, within)
        while True:
            batch: list[Event] | None = None
            while batch is None:
                # Whatever is buffered already joins the batch at once, without awaiting.
                ready = take_upto(buffer.room)
                if ready:
                    batch = buffer.offer_many(ready, clock.now())
                    if batch is not None:
                        break
                due = buffer.due_at()
                try:
                    event = await feed.get(None if due is None else due - clock.now())
                except FeedClosed:
                    return  # a partial batch stays unacknowledged: redelivered later
                if event is None:
                    batch = buffer.poll(clock.now())
                else:
                    batch = buffer.offer(event, clock.now())
            self.inflight = batch
            if monitor is None:
                yield [e.record() for e in batch] if decode else batch
            else:  # batches are few: the monitor sees each one
                monitor.begin(batch)
                try:
                    yield [e.record() for e in batch] if decode else batch
                except BaseException as exc:
                    monitor.abandon(self._cause(exc))
                    raise
                monitor.end(batch)
            if commit is not None:
                await commit(batch)  # a batch commits as one unit
            self.inflight = None
            if commit is None:
                ack(batch)

    def _cause(self, exc: BaseException) -> BaseException | None:
        """Why an iteration was abandoned: the chain closing (after ``failure``, or a
        stop) or an error raised where the item is handed out (decoding it)."""
        return self.failure if isinstance(exc, GeneratorExit) else exc

    async def _records(self, chain: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        async for item in chain:
            if isinstance(item, list):
                yield [e.record() for e in item]
            else:
                yield item.record()

    async def _close(self, failure: BaseException | None) -> BaseException | None:
        """Close every generator of the chain, outermost first, awaiting finalisation.

        Returns an exception raised while closing (e.g. by a middleware's cleanup), if any.
        """
        self.failure = failure
        error: BaseException | None = None
        for gen in reversed(self._gens):
            try:
                await gen.aclose()
            except Exception as exc:
                if error is None:
                    error = exc
                log.error(
                    "closing the processing chain of %s raised %s",
                    _where(self.partition),
                    safe_repr(exc),
                    exc_info=exc,
                )
        self._gens.clear()
        return error

    async def dead_letter(self, item: Item, error: BaseException, sink: Sink) -> None:
        """Write the failed ``item`` to ``sink`` (a stream) and acknowledge it atomically."""
        events = item if isinstance(item, list) else [item]
        await self._dead_letter(events, error, sink)


def ids_of(item: Item | Sequence[Event] | None) -> list[bytes]:
    """Entry ids of an item (an Event or a list of them)."""
    if item is None:
        return []
    if isinstance(item, Event):
        return [item.id]
    return [e.id for e in item]


def _where(partition: Partition) -> str:
    return f"{partition.stream}.{partition.number}"
