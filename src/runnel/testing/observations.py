"""What a harness saw: events handed to processors, background-task runs, dead letters.

These are plain records filled in while the virtual workers run; the
:class:`~runnel.testing.Harness` methods ``deliveries()``, ``task_runs()`` and
``dead_letters()`` return them.

Example:
    >>> from runnel import Event, Partition
    >>> d = Delivery("totals", "w1", 0, Event(Partition("orders", 0), b"1-0", {}), 0, 0.0)
    >>> d.entry_id, d.outcome
    ('1-0', 'in flight')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from runnel.domain.model import Event, Fields

Outcome = Literal["in flight", "done", "failed", "interrupted"]
"""What became of a delivery: still being processed; finished (the processor asked for the
next item); failed (the iteration raised, the policy then applied); interrupted (cancelled
without a failure: the lease was lost, the worker was killed, or a drain ran out of time)."""


@dataclass(eq=False)
class Delivery:
    """One event handed to a processor's code by a virtual worker.

    Events of one ``take(n)`` batch are handed out together and share ``batch``.

    Attributes:
        processor: the processor's name.
        worker: the name of the virtual worker that handed it out.
        partition: the partition's number.
        event: the :class:`~runnel.Event` itself (raw fields, id, delivery count, epoch).
        batch: a number shared by the events handed out together, increasing with time.
        at: the simulated time (``clock.now()``) when it was handed out.
        outcome: see :data:`Outcome`; ``"in flight"`` until the iteration ends.
        error: the exception of a failed iteration.

    Example:
        >>> from runnel import Event, Partition
        >>> d = Delivery("totals", "w1", 3, Event(Partition("orders", 3), b"5-0", {}, 2), 7, 1.5)
        >>> d.redelivered, d.delivery_count
        (True, 2)
    """

    processor: str
    worker: str
    partition: int
    event: Event
    batch: int
    at: float
    outcome: Outcome = "in flight"
    error: BaseException | None = None

    @property
    def entry_id(self) -> str:
        """The entry id as text (``"1767225600000-0"``).

        Example:
            >>> from runnel import Event, Partition
            >>> Delivery("p", "w1", 0, Event(Partition("s", 0), b"7-1", {}), 0, 0.0).entry_id
            '7-1'
        """
        return self.event.entry_id

    @property
    def delivery_count(self) -> int:
        """How many times the backend had delivered the entry (1 the first time).

        Example:
            >>> from runnel import Event, Partition
            >>> event = Event(Partition("s", 0), b"7-1", {}, delivery_count=3)
            >>> Delivery("p", "w1", 0, event, 0, 0.0).delivery_count
            3
        """
        return self.event.delivery_count

    @property
    def redelivered(self) -> bool:
        """True when the entry was delivered before (to this worker or another one).

        An entry counts as delivered once it was fetched: events prefetched by a worker
        that died or handed its partition over come back redelivered, even though no user
        code saw them before.

        Example:
            >>> from runnel import Event, Partition
            >>> Delivery("p", "w1", 0, Event(Partition("s", 0), b"7-1", {}), 0, 0.0).redelivered
            False
        """
        return self.event.redelivered

    @property
    def record(self) -> Any:
        """The decoded record.

        Raises:
            runnel.errors.DecodeError: the entry cannot be decoded.

        Example:
            h.deliveries("totals")[0].record  # -> Order(customer='ada', seq=1, amount=10.0)
        """
        return self.event.record()


@dataclass(eq=False)
class TaskRun:
    """One run of a background task (``@app.task``, ``@app.timer``, ``@app.crontab``).

    Attributes:
        task: the task's name.
        worker: the name of the virtual worker that ran it.
        started_at: the simulated time the run began.
        finished_at: the simulated time it ended; None while it runs.
        error: the exception it raised, if any (cancellation included).

    Example:
        >>> run = TaskRun("report", "w1", 60.0)
        >>> run.finished_at is None
        True
    """

    task: str
    worker: str
    started_at: float
    finished_at: float | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class DeadLetterEntry:
    """One entry of a dead-letter stream, with the error that put it there.

    Attributes:
        sink: the dead-letter stream's name (``orders.dead``).
        partition: the sink partition (the same number as the source partition).
        id: the dead letter's own entry id in the sink.
        stream: the source stream's name.
        source_partition: the source partition's number.
        source_id: the original entry's id in the source stream.
        processor: the processor that failed.
        error_type: the exception's class name (``ValueError``).
        error_message: ``str()`` of the exception.
        time: when it failed (UTC, ISO 8601, from the simulated wall clock).
        data: the original entry's raw fields (without the ``__error_*`` fields).
        record: the original record, decoded; None if it cannot be decoded.

    Example:
        >>> entry = DeadLetterEntry("orders.dead", 0, "9-0", "orders", 0, "5-0", "totals",
        ...                         "ValueError", "bad", "2026-01-01T00:00:00+00:00", {}, None)
        >>> entry.error_type
        'ValueError'
    """

    sink: str
    partition: int
    id: str
    stream: str
    source_partition: int
    source_id: str
    processor: str
    error_type: str
    error_message: str
    time: str
    data: Fields = field(repr=False)
    record: Any
