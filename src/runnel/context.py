"""Context variables describing where the current code runs.

Set by the worker; readable in processors, middleware and background tasks.

Example:
    >>> from runnel.context import worker_id
    >>> worker_id.get(None) is None
    True
"""

from __future__ import annotations

from contextvars import ContextVar

from runnel.domain.model import Partition

worker_id: ContextVar[str] = ContextVar("runnel_worker_id")
"""The id of the worker running the current task."""
executor_id: ContextVar[str] = ContextVar("runnel_executor_id")
"""The id of the executor (one per processor per worker)."""
processor_name: ContextVar[str] = ContextVar("runnel_processor")
"""The name of the processor running the current task."""
partition: ContextVar[Partition] = ContextVar("runnel_partition")
"""The partition the current consumer task processes."""
