"""Several virtual workers of one app on one memory broker, with fault injection.

Each worker reaches the backend through its own :class:`~.faults.Gate`, so a test can
crash it (every call fails from then on, as if the process died), or cut it off and let it
back (its calls hang, as during a network partition or a stop signal, then go through).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

from runnel import App
from runnel.adapters.memory.clock import SimulatedClock
from runnel.runtime.executor import Executor
from runnel.runtime.worker import Worker

from .faults import Gate, gated


@dataclass
class Node:
    """One virtual worker and its fault gate."""

    worker: Worker
    task: asyncio.Task[int]
    gate: Gate = field(default_factory=Gate)

    @property
    def executor(self) -> Executor:
        return self.worker.executors[0]


class Cluster:
    """Virtual workers of ``app`` sharing its memory broker and ``clock``."""

    def __init__(self, app: App, clock: SimulatedClock) -> None:
        self.app = app
        self.clock = clock
        self.nodes: dict[str, Node] = {}
        self.gone: dict[str, Node] = {}

    async def start(self, name: str) -> Node:
        gate = Gate()
        plan = self.app.plan()
        plan = dataclasses.replace(plan, backend=gated(plan.backend, gate))
        worker = Worker(plan, install_signals=False, worker_id=name)
        task = asyncio.create_task(worker.run(), name=f"worker:{name}")
        started = asyncio.ensure_future(worker.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()  # a worker that failed to start raises here
        node = self.nodes[name] = Node(worker, task, gate)
        return node

    async def stop(self, name: str) -> int:
        """Graceful stop (what SIGTERM does); the exit code. The worker counts as running
        (and owning what it drains) until it has exited."""
        node = self.nodes[name]
        node.worker.request_stop()
        try:
            return await node.task
        finally:
            self.nodes.pop(name, None)
            self.gone[name] = node

    async def crash(self, name: str) -> None:
        """The worker dies: its user code stops at once and nothing it does reaches the
        backend any more (its leases and heartbeats run out by themselves)."""
        node = self.nodes.pop(name)
        self.gone[name] = node
        node.gate.crash()
        for executor in node.worker.executors:
            for number in list(executor.feeds):
                executor.lose(number)
        node.task.cancel()
        await asyncio.gather(node.task, return_exceptions=True)

    def owners(self) -> dict[int, list[str]]:
        """Partition -> the workers that would hand its events to user code right now."""
        now = self.clock.now()
        owned: dict[int, list[str]] = defaultdict(list)
        for name, node in self.nodes.items():
            for number, feed in node.executor.feeds.items():
                if not feed.lost and now < feed.deadline:
                    owned[number].append(name)
        return dict(owned)

    def exclusive(self) -> bool:
        """No partition has two accepting owners."""
        return all(len(names) == 1 for names in self.owners().values())

    async def close(self) -> None:
        """Stop the running workers gracefully, crashing any that hang (cut off)."""
        for name in list(self.nodes):
            node = self.nodes[name]
            if not node.gate.open.is_set():
                await self.crash(name)
            else:
                await self.stop(name)

    async def abort(self) -> None:
        """Crash every worker still running (test teardown after a failure)."""
        for name in list(self.nodes):
            await self.crash(name)
