"""Test your App in-process, in simulated time, with no server.

:class:`Harness` runs real workers of your unmodified App on a private in-memory broker
and a :class:`SimulatedClock`: send with ``await stream.send(...)``, move time, run until
everything is processed, crash, pause and restart workers, and inspect what each
processor was handed, what is pending, what was dead-lettered and who owns what.
``asyncio.sleep`` in code under a harness sleeps in simulated time.

With pytest, the ``runnel_harness`` fixture (installed with runnel) makes harnesses that
are cleaned up after each test. See ``docs/testing.md`` for a worked example.

Example:
    >>> import asyncio
    >>> from runnel import App, Record
    >>> from runnel.testing import Harness
    >>> app = App(name="doc-testing", redis_url="redis://prod.example:6379")
    >>> class Tick(Record):
    ...     key: str
    >>> ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    >>> @app.processor(ticks)
    ... async def slow(events):
    ...     async for tick in events.records():
    ...         await asyncio.sleep(60)  # a simulated minute per event
    >>> async def main() -> float:
    ...     async with Harness(app) as h:
    ...         await h.start()
    ...         started = h.now
    ...         await ticks.send(Tick(key="a"), Tick(key="a"))
    ...         await h.run_until_idle()
    ...         return h.now - started
    >>> asyncio.run(main()) >= 120
    True
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from runnel import _lazy

if _TYPE_CHECKING:
    from runnel.adapters.memory.clock import SimulatedClock
    from runnel.testing.harness import DEFAULT_TIMEOUT, Harness, HarnessFactory
    from runnel.testing.observations import DeadLetterEntry, Delivery, Outcome, TaskRun
    from runnel.testing.virtual_worker import (
        KILLED,
        SimulationTimeout,
        VirtualWorker,
        WorkerState,
    )

# Imported on first use: the pytest plugin lives in this package, and loading it must not
# import runnel's dependencies (a problem there would break every test run of the user's).
_HOMES = {
    "DEFAULT_TIMEOUT": "runnel.testing.harness",
    "KILLED": "runnel.testing.virtual_worker",
    "DeadLetterEntry": "runnel.testing.observations",
    "Delivery": "runnel.testing.observations",
    "Harness": "runnel.testing.harness",
    "HarnessFactory": "runnel.testing.harness",
    "Outcome": "runnel.testing.observations",
    "SimulatedClock": "runnel.adapters.memory.clock",
    "SimulationTimeout": "runnel.testing.virtual_worker",
    "TaskRun": "runnel.testing.observations",
    "VirtualWorker": "runnel.testing.virtual_worker",
    "WorkerState": "runnel.testing.virtual_worker",
}

__all__ = [
    "DEFAULT_TIMEOUT",
    "KILLED",
    "DeadLetterEntry",
    "Delivery",
    "Harness",
    "HarnessFactory",
    "Outcome",
    "SimulatedClock",
    "SimulationTimeout",
    "TaskRun",
    "VirtualWorker",
    "WorkerState",
]


__getattr__, __dir__ = _lazy.exports(__name__, _HOMES, __all__, globals())
