"""Virtual workers: real runnel workers run by a harness, with faults on its simulated clock.

Example:
    w1 = await h.start("w1")
    w1.pause(); await h.advance(30); w1.resume()
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from runnel.adapters.memory.clock import SimulatedClock
from runnel.runtime.worker import Worker
from runnel.testing import _gate

KILLED: Final = -9
"""The exit code reported for a killed worker (like a process ended by SIGKILL)."""

WorkerState = Literal["running", "paused", "stopped", "exited", "killed"]
"""A virtual worker's state: running; paused (cut off from the backend); stopped (by
:meth:`VirtualWorker.stop`); exited (by itself, e.g. after a HALT); killed."""

ProcessorRef = str | Callable[..., Any] | None
"""A processor, by name or by its decorated function; None when the app has only one."""


class SimulationTimeout(AssertionError):
    """A harness wait did not finish within its timeout of simulated seconds.

    The message says what was awaited and describes every partition that was not idle.

    Example:
        >>> issubclass(SimulationTimeout, AssertionError)
        True
    """


@dataclass(frozen=True)
class Controls:
    """What a virtual worker needs from the harness that runs it, as bound callables.

    Attributes:
        clock: the simulated clock.
        processor_name: the name of a processor given by name or by function.
        run_until: runs the simulation until a condition holds, or fails after a timeout.
        cancel_tasks: cancels every task of a worker until all have finished.
        start: starts a worker (``name``, ``processors``, ``balanced``).
    """

    clock: SimulatedClock
    processor_name: Callable[[ProcessorRef], str]
    run_until: Callable[[Callable[[], bool], float | None, str], Awaitable[None]]
    cancel_tasks: Callable[[VirtualWorker], Awaitable[None]]
    start: Callable[[str, list[str], bool], Awaitable[VirtualWorker]]


class VirtualWorker:
    """One virtual worker: a real :class:`~runnel.runtime.worker.Worker` run by a harness.

    Create it with :meth:`Harness.start`. Its faults are simulated on the harness's clock:
    :meth:`kill` (the process dies), :meth:`pause` and :meth:`resume` (cut off from the
    backend, then back), :meth:`stop` (SIGTERM) and :meth:`restart`.

    Attributes:
        name: the worker's name, which is also its worker id (``runnel.context.worker_id``).
        worker: the underlying :class:`~runnel.runtime.worker.Worker`.

    Example:
        w1 = await h.start("w1")
        await w1.kill()
        w1.state, w1.exit_code  # -> ('killed', -9)
    """

    def __init__(
        self, name: str, worker: Worker, processors: tuple[str, ...], controls: Controls
    ) -> None:
        self._controls = controls
        self.name = name
        self.worker = worker
        self.processors = processors
        self.gate = _gate.Gate()
        self.task: asyncio.Task[int] | None = None
        self._killed = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"<VirtualWorker {self.name} {self.state}>"

    # ------------------------------------------------------------------ state

    @property
    def state(self) -> WorkerState:
        """``running``, ``paused``, ``stopped``, ``exited`` or ``killed``.

        Example:
            w1.pause(); w1.state  # -> 'paused'
        """
        if self._killed:
            return "killed"
        if self.task is not None and self.task.done():
            return "stopped" if self._stopped else "exited"
        return "paused" if self.gate.cut else "running"

    @property
    def alive(self) -> bool:
        """True while running or paused.

        Example:
            await w1.kill(); w1.alive  # -> False
        """
        return self.state in ("running", "paused")

    @property
    def exit_code(self) -> int | None:
        """The exit code once the worker has ended (:data:`KILLED` if killed), else None.

        A worker whose run raised (it could not start, say) has no exit code: see
        :attr:`error`.

        Example:
            await w1.stop(); w1.exit_code  # -> 0
        """
        if self._killed:
            return KILLED
        task = self.task
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    @property
    def error(self) -> BaseException | None:
        """The exception the worker's run raised, if it raised one.

        Example:
            with pytest.raises(MetadataMismatch):
                await h.start("w1")
            h.worker("w1").error  # -> MetadataMismatch("stream shop.orders: ...")
        """
        task = self.task
        if self._killed or task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def partitions(self, processor: ProcessorRef = None) -> frozenset[int]:
        """The partitions of ``processor`` this worker would hand to user code right now.

        A partition counts while its lease is held and its local lease deadline has not
        passed, so a cut-off worker keeps its partitions until its deadline.

        Example:
            h.worker("w1").partitions("totals")  # -> frozenset({0, 1})
        """
        name = self._controls.processor_name(processor)
        if not self.alive:
            return frozenset()
        now = self._controls.clock.now()
        return frozenset(
            number
            for executor in self.worker.executors
            if executor.spec.name == name
            for number, feed in executor.feeds.items()
            if not feed.lost and now < feed.deadline
        )

    # ------------------------------------------------------------------ faults

    def pause(self) -> None:
        """Cut the worker off from the backend: its calls wait until :meth:`resume`.

        Like a network partition: user code keeps running, nothing it or the worker does
        reaches the backend, leases and heartbeats run out, other workers take its
        partitions over, and its lease watchdog stops its partitions at their local
        deadline.

        Example:
            w1.pause(); await h.advance(30); w1.resume()
        """
        self._check_alive("pause")
        self.gate.cut_off()

    def resume(self) -> None:
        """Reconnect a paused worker: its waiting calls go through (and may be refused).

        Example:
            w1.resume()
        """
        self._check_alive("resume")
        self.gate.reconnect()

    async def kill(self) -> None:
        """Crash the worker: its code stops at once and nothing more reaches the backend.

        Every task of the worker (processors, background tasks, the worker's own loops,
        and tasks they created) is cancelled, and every backend call of theirs fails from
        now on. Its leases and heartbeats simply run out, so the other workers take its
        partitions over after about ``lock_expiry``, and redeliver what it had not
        acknowledged. Takes no simulated time. Does nothing if the worker has ended.

        Example:
            await w2.kill()
        """
        if not self.alive:
            return
        self._killed = True
        self.gate.crash()
        await self._controls.cancel_tasks(self)

    async def stop(self, timeout: float | None = None) -> int:
        """Stop gracefully (what SIGTERM does) and return the exit code.

        The worker leaves its processors' memberships, finishes in-flight iterations (within
        ``grace_period``), acknowledges them and releases its leases; simulated time moves
        on meanwhile.

        Raises:
            RuntimeError: the worker is paused (resume or kill it first).
            SimulationTimeout: it had not exited after ``timeout`` simulated seconds.

        Example:
            assert await w1.stop() == 0
        """
        if self.state == "paused":
            raise RuntimeError(f"worker {self.name} is paused: resume or kill it first")
        if self.alive:
            self._stopped = True
            self.worker.request_stop()
        return await self.wait(timeout)

    async def wait(self, timeout: float | None = None) -> int:
        """Run the simulation until the worker has ended; return its exit code.

        Raises:
            SimulationTimeout: it was still running after ``timeout`` simulated seconds.
            Exception: whatever the worker's run raised (it could not start, say).

        Example:
            assert await w1.wait() == 1  # halted
        """
        task = self.task
        assert task is not None
        await self._controls.run_until(task.done, timeout, f"worker {self.name} to exit")
        if self._killed:
            return KILLED
        return task.result()

    async def restart(self, name: str | None = None, *, balanced: bool = True) -> VirtualWorker:
        """Kill this worker (if alive) and start a fresh one with the same processors.

        Args:
            name: the new worker's name; by default this worker's.
            balanced: wait until partitions are balanced again (see :meth:`Harness.start`).

        Returns:
            The new virtual worker.

        Example:
            w1 = await w1.restart()
        """
        await self.kill()
        return await self._controls.start(name or self.name, list(self.processors), balanced)

    def _check_alive(self, action: str) -> None:
        if not self.alive:
            raise RuntimeError(f"cannot {action} worker {self.name}: it is {self.state}")
