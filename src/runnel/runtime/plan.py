"""A worker's plan: everything a worker runs, and the ports it runs it through.

The facade makes one (:meth:`runnel.App.plan`); a :class:`~runnel.runtime.worker.Worker`
runs it. The plan is all a worker knows of the App: specs, a few settings, the stores of
the streams, and the backend's ports.

Example:
    >>> from runnel import App
    >>> app = App(name="doc-plan", redis_url="memory://doc-plan")
    >>> plan = app.plan()
    >>> plan.app, plan.processors, plan.leadership_poll_interval
    ('doc-plan', (), 4.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from runnel.domain.health import StuckThresholds
from runnel.domain.keys import KeyLayout
from runnel.ports import Backend
from runnel.runtime.specs import ProcessorSpec, TaskSpec
from runnel.runtime.store import StreamStore
from runnel.telemetry import Metrics, NoMetrics, NoTracing, Tracing

STUCK: Final = StuckThresholds(iteration=120.0, pending=300.0)
"""The default stuck thresholds (the settings' defaults)."""


@dataclass(frozen=True, slots=True)
class PartitionChecks:
    """How often a worker looks at the partitions it owns, and when one is stuck.

    Example:
        >>> PartitionChecks().stuck.iteration
        120.0
    """

    interval: float = 5.0
    stuck: StuckThresholds = STUCK


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """What one worker runs.

    Attributes:
        app: the app's name (it names the leader key and the log lines).
        processors: the processors to run, each with its stream.
        tasks: the background tasks to run.
        stores: the store of every stream of the app, by stream name: those the processors
            read, and those they write dead letters to.
        backend: the ports.
        leadership_poll_interval: seconds between leader-election attempts.
        where: the backend, as log lines name it (a URL without its password).
        metrics: where the worker reports its metrics (a no-op by default).
        tracing: where its consumer spans go (a no-op by default).
        checks: how it watches the partitions it owns.
        key_layout: the backend's key layout (``cluster`` on Redis Cluster).
        prefetch_bytes: the worker's byte budget for buffered events, shared by all its
            partitions (``None``: no limit beyond ``prefetch_count``).
    """

    app: str
    processors: tuple[ProcessorSpec, ...]
    tasks: tuple[TaskSpec, ...]
    stores: Mapping[str, StreamStore]
    backend: Backend
    leadership_poll_interval: float
    where: str = ""
    metrics: Metrics = field(default_factory=NoMetrics)
    tracing: Tracing = field(default_factory=NoTracing)
    checks: PartitionChecks = PartitionChecks()
    key_layout: KeyLayout = "single"
    prefetch_bytes: int | None = None
