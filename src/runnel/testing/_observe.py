"""Observation points added to an App for the lifetime of a harness.

Every processor gets one more middleware, last in its chain, so it sees exactly the items
handed to the processor's code (after the user's own middleware), and learns how each
iteration ended. Every background task's function is wrapped to record its runs. Both go
through the App's public registries (``app.processors``, ``app.tasks``), so unmodified
user code is observed, and both are taken out again when the harness closes.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from runnel import context
from runnel.domain.model import Event
from runnel.interfaces import Middleware
from runnel.runtime.specs import ProcessorSpec, TaskSpec
from runnel.testing.observations import Delivery, Outcome, TaskRun

if TYPE_CHECKING:
    from runnel.adapters.memory.clock import SimulatedClock
    from runnel.app import App


class Recorder:
    """Collects deliveries and task runs as the virtual workers produce them."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.deliveries: list[Delivery] = []
        self.task_runs: list[TaskRun] = []
        self.changes = 0  # bumped on every hand-out, outcome and task run
        self._batches = itertools.count()

    def handed(self, processor: str, events: list[Event]) -> list[Delivery]:
        """Record ``events`` as handed to ``processor`` together, now."""
        worker = context.worker_id.get("")
        batch, now = next(self._batches), self.clock.now()
        made = [Delivery(processor, worker, e.partition.number, e, batch, now) for e in events]
        self.deliveries.extend(made)
        self.changes += 1
        return made

    def ended(
        self, deliveries: list[Delivery], outcome: Outcome, error: BaseException | None
    ) -> None:
        """Record how the iteration that handled ``deliveries`` ended."""
        for delivery in deliveries:
            delivery.outcome = outcome
            delivery.error = error
        self.changes += 1


class Observer(Middleware):
    """The last middleware of a processor: records what the processor is handed."""

    def __init__(self, recorder: Recorder, processor: str) -> None:
        self.recorder = recorder
        self.processor = processor

    async def handler(
        self, parent: AsyncIterator[Any], events: Any = None, **kwargs: Any
    ) -> AsyncGenerator[Any, None]:
        """Pass every item on unchanged; note when and how its iteration ended."""
        async for item in parent:
            made = self.recorder.handed(self.processor, item if isinstance(item, list) else [item])
            try:
                yield item
            except GeneratorExit:
                failure = getattr(events, "failure", None)
                outcome: Outcome = "failed" if failure is not None else "interrupted"
                self.recorder.ended(made, outcome, failure)
                raise
            self.recorder.ended(made, "done", None)


def _observed_task(recorder: Recorder, spec: TaskSpec) -> TaskSpec:
    original: Callable[[], Awaitable[None]] = spec.func

    @functools.wraps(original)
    async def run() -> None:
        record = TaskRun(spec.name, context.worker_id.get(""), recorder.clock.now())
        recorder.task_runs.append(record)
        recorder.changes += 1
        try:
            await original()
        except BaseException as exc:
            record.error = exc
            raise
        finally:
            record.finished_at = recorder.clock.now()
            recorder.changes += 1

    return dataclasses.replace(spec, func=run)


class Instrumentation:
    """Installs the observation points on an App, and takes them out again."""

    def __init__(self, app: App, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder
        self._processors: dict[str, tuple[ProcessorSpec, ProcessorSpec]] = {}
        self._tasks: dict[str, tuple[TaskSpec, TaskSpec]] = {}

    def install(self) -> None:
        """Replace each processor and task spec of the app with an observed copy.

        Idempotent: specs already observed are left alone, so calling it again picks up
        processors and tasks declared since.
        """
        for name, spec in list(self.app.processors.items()):
            pair = self._processors.get(name)
            if pair is not None and pair[1] is spec:
                continue
            observer = Observer(self.recorder, name)
            observed = dataclasses.replace(spec, middleware=(*spec.middleware, observer))
            self.app.processors[name] = observed
            self._processors[name] = (spec, observed)
        for name, task in list(self.app.tasks.items()):
            known = self._tasks.get(name)
            if known is not None and known[1] is task:
                continue
            observed_task = _observed_task(self.recorder, task)
            self.app.tasks[name] = observed_task
            self._tasks[name] = (task, observed_task)

    def uninstall(self) -> None:
        """Put the original specs back (those nobody has replaced meanwhile)."""
        for name, (spec, observed) in self._processors.items():
            if self.app.processors.get(name) is observed:
                self.app.processors[name] = spec
        for name, (task, observed_task) in self._tasks.items():
            if self.app.tasks.get(name) is observed_task:
                self.app.tasks[name] = task
        self._processors.clear()
        self._tasks.clear()

    def original(self, name: str) -> ProcessorSpec | None:
        """The user's own spec of processor ``name`` (before observation)."""
        pair = self._processors.get(name)
        return pair[0] if pair else self.app.processors.get(name)
