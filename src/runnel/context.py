"""Context variables describing where the current code runs.

Set by the worker in the tasks it starts: ``worker_id`` everywhere (processors, middleware
and background tasks), ``executor_id``, ``processor_name`` and ``stream_name`` in an
executor's tasks, ``partition`` in a partition's consumer (the processor and its middleware).

Example:
    >>> from runnel.context import worker_id
    >>> worker_id.get(None) is None
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from runnel.domain.model import Partition

__all__ = [
    "ensure_owned",
    "executor_id",
    "partition",
    "processor_name",
    "stream_name",
    "worker_id",
]

worker_id: ContextVar[str] = ContextVar("runnel_worker_id")
"""The id of the worker running the current task."""
executor_id: ContextVar[str] = ContextVar("runnel_executor_id")
"""The id of the executor (one per processor per worker)."""
processor_name: ContextVar[str] = ContextVar("runnel_processor")
"""The name of the processor running the current task."""
stream_name: ContextVar[str] = ContextVar("runnel_stream")
"""The name of the stream the current executor processes."""
partition: ContextVar[Partition] = ContextVar("runnel_partition")
"""The partition the current consumer task processes."""


class Processing(Protocol):
    """What a consumer task is processing."""

    @property
    def entry_id(self) -> str | None:
        """The entry in flight (the first of a batch), or None between iterations."""
        ...

    def ensure_owned(self) -> int:
        """Raise unless the partition is still surely owned; its lease's epoch."""
        ...


processing: ContextVar[Processing] = ContextVar("runnel_processing")
"""Set by a consumer for each run of its processor (not part of ``__all__``): the log
configuration of the CLI reads the entry in flight from it, so every line logged while
an event is processed names its ``entry_id``."""


class Outputs(Protocol):
    """Where the sends of an effectively-once iteration go until it commits."""

    async def stage(self, store: Any, appends: Sequence[Any]) -> None:
        """Keep ``appends`` for ``store``'s stream, to commit with the iteration's ack."""
        ...


outputs: ContextVar[Outputs | None] = ContextVar("runnel_outputs", default=None)
"""Set by the consumer of an effectively-once processor (not part of ``__all__``):
``Stream.send`` stages its records there instead of appending them."""


def ensure_owned() -> int:
    """:meth:`runnel.Events.ensure_owned` of the processor this code runs in, for code
    far from the ``events`` object (a repository, a client wrapper); the lease's epoch.

    Raises:
        runnel.errors.LeaseExpired: the partition may have a new owner.
        LookupError: not called from inside a processor.

    Example:
        >>> ensure_owned()
        Traceback (most recent call last):
        ...
        LookupError: runnel.context.ensure_owned() is only meaningful inside a processor
    """
    current = processing.get(None)
    if current is None:
        raise LookupError("runnel.context.ensure_owned() is only meaningful inside a processor")
    return current.ensure_owned()
