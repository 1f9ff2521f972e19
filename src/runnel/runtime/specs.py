"""What the App registers and the worker runs: processor and background-task specs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runnel.domain.policy import ExceptionPolicy

if TYPE_CHECKING:
    from runnel.middleware.base import Middleware
    from runnel.stream import Stream

ProcessorFunc = Callable[[Any], Awaitable[None]]
TaskFunc = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ProcessorSpec:
    """A processor: its function, stream and every per-processor setting resolved."""

    name: str
    stream: Stream[Any]
    func: ProcessorFunc
    exception_policy: ExceptionPolicy
    middleware: Sequence[Middleware]
    lock_expiry: float
    read_timeout: float  # seconds
    prefetch_count: int
    assignment_attempts: int
    assignment_sleep: float
    grace_period: float
    pool_size: int
    join_delay: float
    heartbeat_interval: float


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A background task: run once, on a timer, or on a crontab schedule."""

    name: str
    func: TaskFunc
    kind: Literal["task", "timer", "crontab"]
    on_leader: bool = False
    interval: float = 0.0
    cron: str = ""
    timezone: str = "UTC"
