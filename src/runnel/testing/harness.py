"""The harness: run an App's real workers on a private memory broker and a simulated clock.

How it works:
    Entering a :class:`Harness` re-points the App at a broker of its own: the App's URL
    becomes ``memory://...`` (:meth:`runnel.App.reconfigure`), and its container's
    ``clock``, ``memory_broker`` and ``backend`` providers are overridden with a
    :class:`~runnel.testing.SimulatedClock`, a fresh :class:`MemoryBroker` and a backend
    whose calls pass through a per-worker fault gate. Every processor gets one observing
    middleware (last in its chain) and every background task a recording wrapper.
    ``asyncio.sleep`` sleeps on the simulated clock for code under the harness. Leaving the
    harness stops (or, after an error, kills) the workers and undoes all of it, so the same
    App can be used by the next test.

    Virtual workers are real :class:`runnel.runtime.worker.Worker` objects run as tasks of
    the test's event loop, each under its own worker id. Time moves only when the clock is
    advanced: by the harness's ``advance`` and ``run_until...`` methods, and (with
    ``autojump``, the default) whenever every task waits, for instance while the test
    awaits ``asyncio.sleep(5)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Literal

from dependency_injector import providers

from runnel.adapters.memory.broker import MemoryBroker
from runnel.adapters.memory.clock import EPOCH, SimulatedClock
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.adapters.memory.membership import MemoryMembership
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.app import App
from runnel.domain.membership import assigned_to, decode
from runnel.domain.model import Event, Partition
from runnel.errors import Misconfigured
from runnel.middleware.dead_letter import DeadLetterMiddleware
from runnel.runtime.specs import ProcessorSpec
from runnel.runtime.worker import Worker
from runnel.stream import Stream
from runnel.testing import _gate, _sleep
from runnel.testing._observe import Instrumentation, Recorder
from runnel.testing.observations import DeadLetterEntry, Delivery, TaskRun

log = logging.getLogger(__name__)

KILLED: Final = -9
"""The exit code reported for a killed worker (like a process ended by SIGKILL)."""

DEFAULT_TIMEOUT: Final = 600.0
"""Simulated seconds a harness wait goes on before it fails."""

WorkerState = Literal["running", "paused", "stopped", "exited", "killed"]
"""A virtual worker's state: running; paused (cut off from the backend); stopped (by
:meth:`VirtualWorker.stop`); exited (by itself, e.g. after a HALT); killed."""

_MAX_ID: Final = (2**64 - 1, 2**64 - 1)
_MIN_ID: Final = (0, 0)
_KILL_ROUNDS: Final = 50
_ERROR_PREFIX: Final = b"__error_"

ProcessorRef = str | Callable[..., Any] | None
"""A processor, by name or by its decorated function; None when the app has only one."""


class SimulationTimeout(AssertionError):
    """A harness wait did not finish within its timeout of simulated seconds.

    The message says what was awaited and describes every partition that was not idle.

    Example:
        >>> issubclass(SimulationTimeout, AssertionError)
        True
    """


class VirtualWorker:
    """One virtual worker: a real :class:`~runnel.runtime.worker.Worker` run by a harness.

    Create it with :meth:`Harness.start`. Its faults are simulated on the harness's clock:
    :meth:`kill` (the process dies), :meth:`pause` and :meth:`resume` (cut off from the
    backend, then back), :meth:`stop` (SIGTERM) and :meth:`restart`.

    Attributes:
        name: the worker's name, which is also its worker id (``runnel.context.worker_id``).
        worker: the underlying :class:`~runnel.runtime.worker.Worker`.

    Example:
        >>> # w1 = await h.start("w1")
        >>> # await w1.kill()
        >>> # w1.state, w1.exit_code
        >>> # ('killed', -9)
    """

    def __init__(
        self, harness: Harness, name: str, worker: Worker, processors: tuple[str, ...]
    ) -> None:
        self.harness = harness
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
        """``running``, ``paused``, ``stopped``, ``exited`` or ``killed``."""
        if self._killed:
            return "killed"
        if self.task is not None and self.task.done():
            return "stopped" if self._stopped else "exited"
        return "paused" if self.gate.cut else "running"

    @property
    def alive(self) -> bool:
        """True while running or paused."""
        return self.state in ("running", "paused")

    @property
    def exit_code(self) -> int | None:
        """The exit code once the worker has ended (:data:`KILLED` if killed), else None.

        A worker whose run raised (it could not start, say) has no exit code: see
        :attr:`error`.
        """
        if self._killed:
            return KILLED
        task = self.task
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    @property
    def error(self) -> BaseException | None:
        """The exception the worker's run raised, if it raised one."""
        task = self.task
        if self._killed or task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    def partitions(self, processor: ProcessorRef = None) -> frozenset[int]:
        """The partitions of ``processor`` this worker would hand to user code right now.

        A partition counts while its lease is held and its local lease deadline has not
        passed, so a cut-off worker keeps its partitions until its deadline.

        Example:
            >>> # h.worker("w1").partitions("totals")
            >>> # frozenset({0, 1})
        """
        name = self.harness._processor(processor).name
        if not self.alive:
            return frozenset()
        now = self.harness.clock.now()
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
            >>> # w1.pause(); await h.advance(30); w1.resume()
        """
        self._check_alive("pause")
        self.gate.cut_off()

    def resume(self) -> None:
        """Reconnect a paused worker: its waiting calls go through (and may be refused).

        Example:
            >>> # w1.resume()
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
            >>> # await w2.kill()
        """
        if not self.alive:
            return
        self._killed = True
        self.gate.crash()
        await self.harness._cancel_tasks(self)

    async def stop(self, timeout: float | None = None) -> int:
        """Stop gracefully (what SIGTERM does) and return the exit code.

        The worker leaves its processors' memberships, finishes in-flight iterations (within
        ``grace_period``), acknowledges them and releases its leases; simulated time moves
        on meanwhile.

        Raises:
            RuntimeError: the worker is paused (resume or kill it first).
            SimulationTimeout: it had not exited after ``timeout`` simulated seconds.

        Example:
            >>> # assert await w1.stop() == 0
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
            >>> # assert await w1.wait() == 1  # halted
        """
        task = self.task
        assert task is not None
        await self.harness.run_until(task.done, timeout, what=f"worker {self.name} to exit")
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
            >>> # w1 = await w1.restart()
        """
        await self.kill()
        return await self.harness.start(
            name or self.name, processors=list(self.processors), balanced=balanced
        )

    def _check_alive(self, action: str) -> None:
        if not self.alive:
            raise RuntimeError(f"cannot {action} worker {self.name}: it is {self.state}")


class Harness:
    """Runs an App's workers in-process on a private memory broker and a simulated clock.

    Use it as an async context manager around a test. The App may be the one your
    production module builds, with any ``redis_url``: the harness re-points it at a broker
    of its own while it is open, and puts everything back when it closes. The App's
    backend must not have been used yet (by a send, a worker or ``app.backend``) when the
    harness opens; see :meth:`__aenter__`.

    Args:
        app: the App under test.
        autojump: let simulated time jump to the next deadline whenever every task waits
            (for instance while the test awaits ``asyncio.sleep(5)``, or an event that a
            processor sets). With False, time moves only through the harness's ``advance``
            and ``run_until...`` methods.
        start_time: the simulated wall clock when the harness opens (an aware datetime);
            by default 2026-01-01 00:00 UTC. Crontab schedules and entry ids follow it.
        timeout: the default limit, in simulated seconds, of every wait of the harness.

    Example:
        >>> import asyncio
        >>> from runnel import App, Record
        >>> from runnel.testing import Harness
        >>> app = App(name="doc-harness", redis_url="redis://prod.example:6379")
        >>> class Order(Record):
        ...     customer: str
        >>> orders = app.stream("orders", record=Order, partition_by="customer")
        >>> seen = []
        >>> @app.processor(orders)
        ... async def collect(events):
        ...     async for order in events.records():
        ...         seen.append(order.customer)
        >>> async def main() -> None:
        ...     async with Harness(app) as h:
        ...         await h.start("w1")
        ...         await orders.send(Order(customer="ada"), Order(customer="bob"))
        ...         await h.run_until_idle()
        >>> asyncio.run(main())
        >>> sorted(seen)
        ['ada', 'bob']
    """

    def __init__(
        self,
        app: App,
        *,
        autojump: bool = True,
        start_time: datetime | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if start_time is not None and start_time.utcoffset() is None:
            raise ValueError(f"start_time must be an aware datetime, got {start_time!r}")
        start = 0.0 if start_time is None else (start_time - EPOCH).total_seconds()
        self.app = app
        self.timeout = float(timeout)
        self.clock = SimulatedClock(start=start, autojump=autojump)
        self.broker = MemoryBroker(self.clock)
        self.url = f"memory://runnel-testing-{app.name}-{uuid.uuid4().hex[:8]}"
        self.backend = _gate.gated(
            MemoryStreamLog(self.broker),
            MemoryPartitionLocks(self.broker),
            MemoryKeyValue(self.broker),
            MemoryMembership(self.broker),
            self.clock,
        )
        self._recorder = Recorder(self.clock)
        self._instrumentation = Instrumentation(app, self._recorder)
        self._scope = _sleep.SleepScope(self.clock)
        self._token: Any = None
        self._tracker: _gate.TaskTracker | None = None
        self._undo: list[Callable[[], None]] = []
        self._all: list[VirtualWorker] = []
        self._counter = 0
        self._state: Literal["new", "open", "closed"] = "new"

    def __repr__(self) -> str:
        return f"<Harness {self.app.name} {self._state} t={self.clock.now():.3f}>"

    # ------------------------------------------------------------------ open and close

    async def __aenter__(self) -> Harness:
        """Re-point the App at the harness and start simulating.

        Raises:
            runnel.errors.Misconfigured: the App's backend was already used (a send, a
                worker, ``app.backend``, or another harness that is still open). Nothing is
                changed then; ``await app.close()`` detaches an App from its backend.
            RuntimeError: this harness was opened before (make a new one).
        """
        if self._state != "new":
            raise RuntimeError("a Harness can be opened once; make a new one")
        app = self.app
        original = app.settings
        try:
            app.reconfigure(redis_url=self.url)
        except Misconfigured as exc:
            raise Misconfigured(
                f"cannot run app {app.name!r} under a harness: its backend "
                f"({original.redacted_url()}) was already used. Open the harness before "
                "anything sends, starts a worker or reads app.backend, or call "
                "`await app.close()` first."
            ) from exc
        self._state = "open"
        try:
            self._undo.append(lambda: self._restore_settings(original))
            container = app.container
            for provider, value in (
                (container.clock, self.clock),
                (container.memory_broker, self.broker),
                (container.backend, self.backend),
            ):
                provider.override(providers.Object(value))
                self._undo.append(provider.reset_last_overriding)
            container.reset_singletons()
            self._unprepare_streams()
            self._instrumentation.install()
            self._undo.append(self._instrumentation.uninstall)
            self._tracker = _gate.TaskTracker(asyncio.get_running_loop())
            self._tracker.install()
            self._undo.append(self._tracker.uninstall)
            silence = _gate.SilenceKilled()
            silence.install()
            self._undo.append(silence.uninstall)
            self._token = _sleep.enter(self._scope)
            self._undo.append(lambda: _sleep.leave(self._scope, self._token))
        except BaseException:
            self._undo_all()
            self._state = "closed"
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the workers (gracefully unless the body raised), then restore the App.

        After a normal exit, running workers stop as with SIGTERM (a paused one, or one
        that does not exit within the harness timeout, is killed). If the body raised,
        every worker is killed at once, so a failing test never hangs in teardown.
        """
        await self.aclose(graceful=exc_type is None)

    async def aclose(self, graceful: bool = False) -> None:
        """Stop every worker (killing them unless ``graceful``) and restore the App.

        Idempotent; :meth:`__aexit__` calls it.

        Example:
            >>> # await h.aclose()
        """
        if self._state != "open":
            return
        try:
            for vw in list(self._all):
                if not vw.alive:
                    continue
                if graceful and vw.state == "running":
                    try:
                        await vw.stop()
                        continue
                    except Exception as exc:
                        log.warning("worker %s did not stop gracefully: %s", vw.name, exc)
                await vw.kill()
        finally:
            try:
                for vw in self._all:  # anything still going (a stop that was interrupted)
                    if vw.task is not None and not vw.task.done():
                        vw._killed = True
                        vw.gate.crash()
                        await self._cancel_tasks(vw)
                await self.clock.aclose()
                await self.app.close()
            finally:
                self._state = "closed"
                self._undo_all()

    def abandon(self) -> None:
        """Restore the App without awaiting anything (a harness that was never exited).

        Worker tasks are cancelled but not awaited. Meant for test-framework teardown
        hooks that cannot await, such as the pytest plugin's.

        Example:
            >>> # h.abandon()
        """
        if self._state != "open":
            return
        self._state = "closed"
        for vw in self._all:
            vw.gate.crash()
            for task in [vw.task, *vw.gate.tasks]:
                if task is not None and not task.done():
                    vw._killed = True
                    task.cancel()
        self._undo_all()

    @property
    def is_open(self) -> bool:
        """True between entering and leaving the harness."""
        return self._state == "open"

    def _undo_all(self) -> None:
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except Exception as exc:  # keep undoing the rest
                log.error("restoring app %s after a harness failed: %r", self.app.name, exc)

    def _restore_settings(self, original: Any) -> None:
        app = self.app
        app.container.settings.reset_last_overriding()
        app.settings = original
        app.container.reset_singletons()
        self._unprepare_streams()

    def _unprepare_streams(self) -> None:
        # A stream remembers it has recorded its metadata and groups; on another broker it
        # must do so again.
        for stream in self.app.streams.values():
            stream._prepared = False

    # ------------------------------------------------------------------ workers

    async def start(
        self,
        name: str | None = None,
        *,
        processors: Iterable[str] | None = None,
        balanced: bool = True,
        timeout: float | None = None,
    ) -> VirtualWorker:
        """Start a virtual worker and run the simulation until it has started.

        Args:
            name: the worker's name and id; ``w1``, ``w2``, ... by default. A name may be
                reused once its previous worker has ended.
            processors: the processors it runs (names); by default all of the App's.
            balanced: also wait until every processor's partitions are shared out among
                the running workers and held (:meth:`run_until_balanced`). This takes the
                processors' ``join_delay`` (2 s by default) and, when a dead worker still
                holds leases, their remaining lifetime, all in simulated time.
            timeout: simulated seconds to wait at most (default: the harness timeout).

        Returns:
            The running virtual worker.

        Raises:
            ValueError: a live worker already has that name.
            Exception: whatever the worker raised while starting (e.g. MetadataMismatch).

        Example:
            >>> # w1 = await h.start("w1")
            >>> # w2 = await h.start("w2", processors=["totals"])
        """
        self._check_open()
        if name is None:
            self._counter += 1
            name = f"w{self._counter}"
            while name in self.workers:
                self._counter += 1
                name = f"w{self._counter}"
        current = self.workers.get(name)
        if current is not None and current.alive:
            raise ValueError(f"a worker named {name!r} is {current.state}")
        worker = Worker(
            self.app,
            self.app.backend,
            processors=None if processors is None else list(processors),
            install_signals=False,
            worker_id=name,
        )
        vw = VirtualWorker(self, name, worker, tuple(e.spec.name for e in worker.executors))
        self._all.append(vw)
        vw.task = asyncio.create_task(self._run_worker(vw), name=f"runnel-testing:{name}")
        task = vw.task
        await self.run_until(
            lambda: worker.started.is_set() or task.done(),
            timeout,
            what=f"worker {name} to start",
        )
        if task.done():
            task.result()  # a worker that could not start raises here
        elif balanced:
            await self.run_until_balanced(timeout)
        return vw

    async def _run_worker(self, vw: VirtualWorker) -> int:
        _gate.bind(vw.gate)
        _sleep.bind(self._scope)
        return await vw.worker.run()

    async def _cancel_tasks(self, vw: VirtualWorker) -> None:
        """Cancel every task of ``vw`` until all have finished (taking no simulated time)."""
        for _ in range(_KILL_ROUNDS):
            pending = [t for t in [vw.task, *vw.gate.tasks] if t is not None and not t.done()]
            if not pending:
                return
            for task in pending:
                task.cancel()
            await self.clock.advance(0)
        log.warning("some tasks of worker %s did not finish after being cancelled", vw.name)

    @property
    def workers(self) -> dict[str, VirtualWorker]:
        """Every worker started, by name (the latest one of each name).

        Example:
            >>> # sorted(h.workers)
            >>> # ['w1', 'w2']
        """
        return {vw.name: vw for vw in self._all}

    def worker(self, name: str) -> VirtualWorker:
        """The (latest) worker called ``name``.

        Raises:
            KeyError: no worker has that name.

        Example:
            >>> # h.worker("w1").state
            >>> # 'running'
        """
        found = self.workers.get(name)
        if found is None:
            raise KeyError(f"no worker named {name!r}; workers: {sorted(self.workers)}")
        return found

    def exit_codes(self) -> dict[str, int | None]:
        """Each worker's exit code by name: None while alive, :data:`KILLED` if killed.

        Example:
            >>> # h.exit_codes()
            >>> # {'w1': None, 'w2': -9}
        """
        return {name: vw.exit_code for name, vw in self.workers.items()}

    def _alive(self) -> list[VirtualWorker]:
        return [vw for vw in self._all if vw.alive]

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> float:
        """The simulated monotonic time in seconds (0.0 when a default harness opens)."""
        return self.clock.now()

    @property
    def wall(self) -> datetime:
        """The simulated wall-clock time (aware, UTC)."""
        return self.clock.wall()

    async def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds``, running everything that falls due.

        Example:
            >>> # await h.advance(5)   # closes a take(..., within=5) window
        """
        self._check_open()
        await self.clock.advance(seconds)

    async def advance_to_next(self) -> float | None:
        """Jump to the earliest moment anything waits for, and run what falls due then.

        That is the next heartbeat, lease deadline, batch window, timer, or sleep of user
        code, whichever comes first.

        Returns:
            The new time, or None (time did not move) if nothing waits for the clock.

        Example:
            >>> # await h.advance_to_next()
        """
        self._check_open()
        await self.clock.advance(0)
        deadline = self.clock.next_deadline()
        if deadline is None:
            return None
        await self.clock.advance(max(0.0, deadline - self.clock.now()))
        return deadline

    async def advance_to_next_fire(
        self, task: str | Callable[..., Any], timeout: float | None = None
    ) -> TaskRun:
        """Run the simulation until background task ``task`` next starts a run.

        It returns once the run has gone as far as it can without simulated time moving,
        so a run that does not sleep has finished.

        Args:
            task: the task's name, or its decorated function.
            timeout: simulated seconds to wait at most (default: the harness timeout; a
                daily crontab needs more, or a ``start_time`` close to its fire).

        Returns:
            The new run (its ``started_at`` is the fire time).

        Example:
            >>> # run = await h.advance_to_next_fire(hourly_report)
            >>> # run.started_at
            >>> # 3600.0
        """
        name = self._task_name(task)
        before = len(self.task_runs(name))
        await self.run_until(
            lambda: len(self.task_runs(name)) > before,
            timeout,
            what=f"background task {name} to run",
        )
        await self.clock.advance(0)
        return self.task_runs(name)[before]

    async def run_until(
        self,
        condition: Callable[[], bool],
        timeout: float | None = None,
        what: str | None = None,
    ) -> None:
        """Run the simulation, deadline by deadline, until ``condition()`` is true.

        ``condition`` is checked whenever the tasks that could run have settled, before
        time moves on, so it returns at the first simulated moment the condition holds.

        Raises:
            SimulationTimeout: still false after ``timeout`` simulated seconds (default:
                the harness timeout), or nothing waits for the clock any more.

        Example:
            >>> # await h.run_until(lambda: len(h.deliveries("totals")) >= 10)
        """
        self._check_open()
        clock = self.clock
        allowed = self.timeout if timeout is None else timeout
        limit = clock.now() + allowed
        while True:
            await clock.advance(0)
            if condition():
                return
            deadline = clock.next_deadline()
            if deadline is None or deadline > limit:
                if deadline is not None:
                    await clock.advance(max(0.0, limit - clock.now()))
                    if condition():
                        return
                reason = (
                    "nothing waits for the simulated clock any more"
                    if deadline is None
                    else f"not done within {allowed:g} simulated seconds"
                )
                raise SimulationTimeout(
                    f"waiting for {what or 'a condition'}: {reason} "
                    f"(t={clock.now():.3f})\n{self.describe()}"
                )
            await clock.advance(max(0.0, deadline - clock.now()))

    async def run_until_idle(
        self, timeout: float | None = None, processors: Iterable[ProcessorRef] | None = None
    ) -> None:
        """Run the simulation until every partition of every processor is idle.

        A partition is idle when everything sent to it has been delivered to the
        processor and acknowledged (dead-lettered entries are acknowledged too), or when it
        is quarantined; then nothing is buffered or in flight either. The processors
        considered are those the harness's workers run (or have run).

        Args:
            timeout: simulated seconds to wait at most (default: the harness timeout).
            processors: only these processors (names or functions).

        Raises:
            SimulationTimeout: not idle within ``timeout``, or no running worker is left to
                process what is pending (say, every worker running it halted or was
                killed). The message lists the busy partitions.

        Example:
            >>> # await orders.send(*batch)
            >>> # await h.run_until_idle()
        """
        specs = self._considered(processors)

        def idle_or_stuck() -> bool:
            busy = {s.name for s in specs if not self._processor_idle(s)}
            running = {p for vw in self._alive() if vw.state == "running" for p in vw.processors}
            if busy - running:
                stuck = ", ".join(sorted(busy - running))
                raise SimulationTimeout(
                    f"waiting for the partitions to be idle: no running worker runs {stuck}, "
                    f"which has work left (t={self.clock.now():.3f})\n{self.describe()}"
                )
            return not busy

        await self.run_until(idle_or_stuck, timeout, what="the partitions to be idle")

    def is_idle(self, processors: Iterable[ProcessorRef] | None = None) -> bool:
        """Whether every partition of the considered processors is idle right now.

        See :meth:`run_until_idle` for what idle means.

        Example:
            >>> # assert not h.is_idle()   # a take() window is still open
        """
        return all(self._processor_idle(s) for s in self._considered(processors))

    async def run_until_balanced(self, timeout: float | None = None) -> None:
        """Run the simulation until partition ownership has settled.

        Settled means: for every processor that a running worker runs, the membership
        lists exactly the running workers' executors, each of them holds exactly the
        partitions assigned to it, and every partition has one owner.

        Raises:
            SimulationTimeout: not settled within ``timeout`` simulated seconds.

        Example:
            >>> # await w2.kill()
            >>> # await h.run_until_balanced()
            >>> # assert set(h.owners("totals").values()) == {"w1"}
        """
        await self.run_until(self.is_balanced, timeout, what="the partitions to be balanced")

    def is_balanced(self) -> bool:
        """Whether partition ownership has settled (see :meth:`run_until_balanced`).

        Example:
            >>> # assert h.is_balanced()
        """
        running = [vw for vw in self._alive() if vw.state == "running"]
        names = {p for vw in running for p in vw.processors}
        for name in names:
            spec = self._processor(name)
            executors = [e for vw in running for e in vw.worker.executors if e.spec.name == name]
            members = decode(self.broker.get_string(spec.stream.keys.membership(name)))
            if set(members) != {e.id for e in executors}:
                return False
            owned: set[int] = set()
            now = self.clock.now()
            for executor in executors:
                if not executor.coordinator.joined.is_set():
                    return False
                held = frozenset(
                    n for n, f in executor.feeds.items() if not f.lost and now < f.deadline
                )
                if held != assigned_to(members, executor.id) or held & owned:
                    return False
                owned |= held
            if len(owned) != spec.stream.partition_count:
                return False
        return True

    # ------------------------------------------------------------------ inspection

    def owners(self, processor: ProcessorRef = None) -> dict[int, str]:
        """Which worker owns each partition of ``processor`` now (unowned ones are left out).

        Read from the workers' executors: a partition is owned by the worker that would
        hand its events to user code right now (see :meth:`VirtualWorker.partitions`).

        Example:
            >>> # h.owners("totals")
            >>> # {0: 'w1', 1: 'w1', 2: 'w2', 3: 'w2'}
        """
        spec = self._processor(processor)
        owned: dict[int, str] = {}
        for vw in self._alive():
            for number in sorted(vw.partitions(spec.name)):
                owned.setdefault(number, vw.name)
        return dict(sorted(owned.items()))

    def deliveries(
        self,
        processor: ProcessorRef = None,
        *,
        partition: int | None = None,
        worker: str | None = None,
        first_only: bool = False,
    ) -> list[Delivery]:
        """The events handed to ``processor``'s code, in the order they were handed out.

        Redeliveries (after a crash, a failure under HALT or QUARANTINE, a lost lease) are
        listed again, with ``redelivered`` true.

        Args:
            processor: the processor (name or function); all of them if the app has one.
            partition: only this partition.
            worker: only what this worker handed out.
            first_only: only the first hand-out of each entry.

        Example:
            >>> # [d.record.seq for d in h.deliveries("totals", partition=2)]
            >>> # [1, 2, 3]
        """
        name = self._processor(processor).name
        seen: set[tuple[int, str]] = set()
        chosen = []
        for d in self._recorder.deliveries:
            if d.processor != name:
                continue
            if partition is not None and d.partition != partition:
                continue
            if worker is not None and d.worker != worker:
                continue
            if first_only:
                key = (d.partition, d.entry_id)
                if key in seen:
                    continue
                seen.add(key)
            chosen.append(d)
        return chosen

    def batches(
        self, processor: ProcessorRef = None, *, partition: int | None = None
    ) -> list[list[Delivery]]:
        """The items handed to ``processor``, each a list (one event, or a take() batch).

        Example:
            >>> # [len(b) for b in h.batches("loader")]
            >>> # [100, 100, 35]
        """
        grouped: dict[int, list[Delivery]] = {}
        for d in self.deliveries(processor, partition=partition):
            grouped.setdefault(d.batch, []).append(d)
        return list(grouped.values())

    def processed(self, processor: ProcessorRef = None) -> dict[int, list[Any]]:
        """The records ``processor`` finished, per partition, in the order it finished them.

        A record counts once its iteration ended without failing (the processor asked for
        the next item); failed and interrupted ones are left out, and a record processed
        twice (after a redelivery) appears twice. An entry that cannot be decoded appears
        as its :class:`~runnel.Event`.

        Example:
            >>> # h.processed("totals")
            >>> # {0: [Order(customer='ada', ...), ...], 3: [...]}
        """
        result: dict[int, list[Any]] = defaultdict(list)
        for d in self.deliveries(processor):
            if d.outcome == "done":
                result[d.partition].append(_decoded(d.event))
        return dict(sorted(result.items()))

    def pending(self, processor: ProcessorRef = None) -> dict[int, list[str]]:
        """Entries delivered to ``processor`` and not acknowledged, per partition (ids).

        Only partitions with such entries are listed. Read from the consumer groups in the
        broker, so it includes what was fetched but not yet handed out.

        Example:
            >>> # assert h.pending("totals") == {}
        """
        return self._group_ids(processor, "pending")

    def acknowledged(self, processor: ProcessorRef = None) -> dict[int, list[str]]:
        """Entries ``processor`` has acknowledged, per partition (ids, still stored ones).

        Dead-lettered entries are acknowledged too. Only non-empty partitions are listed.

        Example:
            >>> # sum(len(ids) for ids in h.acknowledged("totals").values())
            >>> # 42
        """
        return self._group_ids(processor, "acknowledged")

    def undelivered(self, processor: ProcessorRef = None) -> dict[int, list[str]]:
        """Entries not yet delivered to ``processor``, per partition (ids).

        Example:
            >>> # h.undelivered("totals")
            >>> # {2: ['1767225600000-3']}
        """
        return self._group_ids(processor, "undelivered")

    def quarantined(self, processor: ProcessorRef = None) -> dict[int, dict[str, Any]]:
        """The quarantined partitions of ``processor``: the records ``app.quarantined()`` reads.

        ``await app.quarantined(name)`` gives the same answer; this reads it without
        awaiting.

        Example:
            >>> # h.quarantined("charge")[0]["error_type"]
            >>> # 'ValueError'
        """
        spec = self._processor(processor)
        raw = self.broker.hash(spec.stream.keys.quarantine(spec.name)) or {}
        return {int(k): json.loads(v) for k, v in sorted(raw.items(), key=lambda kv: int(kv[0]))}

    def entries(self, stream: Stream[Any] | str) -> dict[int, list[Event]]:
        """What a stream holds, per partition, in order, as :class:`~runnel.Event` objects.

        Useful for a stream that your processors write to. ``event.record()`` decodes.

        Example:
            >>> # [e.record() for e in h.entries(receipts)[0]]
        """
        found = self._stream(stream)
        result: dict[int, list[Event]] = {}
        for number in range(found.partition_count):
            stored = self.broker.stream(found.keys.stream(number))
            if stored is None or not len(stored):
                continue
            result[number] = [
                Event(Partition(found.name, number), _format(sid), fields, 1, 0, found.codec.decode)
                for sid, fields in stored.between(_MIN_ID, _MAX_ID)
            ]
        return result

    def dead_letters(self, sink: DeadLetterMiddleware | Stream[Any] | str) -> list[DeadLetterEntry]:
        """The entries of a dead-letter stream with their errors, oldest first.

        Args:
            sink: the :class:`~runnel.middleware.DeadLetterMiddleware`, its sink stream, or
                the sink stream's name.

        Example:
            >>> # (letter,) = h.dead_letters(dead_letter)
            >>> # letter.error_type, letter.record
            >>> # ('ValueError', Order(customer='ada', amount=-1.0))
        """
        found = sink.sink if isinstance(sink, DeadLetterMiddleware) else self._stream(sink)
        letters = []
        for number, events in self.entries(found).items():
            for event in events:
                letters.append(_dead_letter(found, number, event))
        return sorted(letters, key=lambda e: _parse(e.id))

    def task_runs(self, task: str | Callable[..., Any] | None = None) -> list[TaskRun]:
        """The runs of background tasks (one task, or all), in the order they started.

        Example:
            >>> # [r.started_at for r in h.task_runs("report")]
            >>> # [60.0, 120.0]
        """
        if task is None:
            return list(self._recorder.task_runs)
        name = self._task_name(task)
        return [r for r in self._recorder.task_runs if r.task == name]

    def describe(self) -> str:
        """A few lines on the workers and every busy partition (for failure messages).

        Example:
            >>> # print(h.describe())
        """
        lines = [
            "workers: "
            + (", ".join(f"{vw.name} {vw.state}" for vw in self.workers.values()) or "none")
        ]
        for spec in self._considered(None):
            owners = self.owners(spec.name)
            quarantined = self.quarantined(spec.name)
            for number in range(spec.stream.partition_count):
                pending = len(self._ids(spec, number, "pending"))
                waiting = len(self._ids(spec, number, "undelivered"))
                if not (pending or waiting):
                    continue
                where = f"{spec.name} partition {number}"
                state = " (quarantined)" if number in quarantined else ""
                lines.append(
                    f"  {where}{state}: {pending} pending, {waiting} undelivered, "
                    f"owner {owners.get(number, 'none')}"
                )
        return "\n".join(lines)

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError("the harness is not open: use it as `async with Harness(app) as h:`")

    def _processor(self, processor: ProcessorRef) -> ProcessorSpec:
        specs = self.app.processors
        if processor is None:
            if len(specs) == 1:
                return next(iter(specs.values()))
            raise ValueError(
                f"app {self.app.name!r} has {len(specs)} processors; name one of: "
                f"{', '.join(sorted(specs)) or '(none)'}"
            )
        if isinstance(processor, str):
            spec = specs.get(processor)
        else:
            spec = next((s for s in specs.values() if s.func is processor), None)
        if spec is None:
            raise ValueError(
                f"unknown processor {processor!r}; available: {', '.join(sorted(specs))}"
            )
        return spec

    def _considered(self, processors: Iterable[ProcessorRef] | None) -> list[ProcessorSpec]:
        if processors is not None:
            return [self._processor(p) for p in processors]
        names = dict.fromkeys(p for vw in self._all for p in vw.processors)
        return [self._processor(n) for n in names]

    def _task_name(self, task: str | Callable[..., Any]) -> str:
        for name, spec in self.app.tasks.items():
            if task == name or getattr(spec.func, "__wrapped__", spec.func) is task:
                return name
        raise ValueError(
            f"unknown background task {task!r}; available: "
            f"{', '.join(sorted(self.app.tasks)) or '(none)'}"
        )

    def _stream(self, stream: Stream[Any] | str) -> Stream[Any]:
        if isinstance(stream, Stream):
            return stream
        found = self.app.streams.get(stream)
        if found is None:
            raise ValueError(
                f"unknown stream {stream!r}; available: {', '.join(sorted(self.app.streams))}"
            )
        return found

    def _processor_idle(self, spec: ProcessorSpec) -> bool:
        quarantine = self.broker.hash(spec.stream.keys.quarantine(spec.name)) or {}
        for number in range(spec.stream.partition_count):
            stored = self.broker.stream(spec.stream.keys.stream(number))
            if stored is None:
                continue
            group = stored.groups.get(spec.name)
            newest = stored.last_entry_id()
            if group is None:
                if newest is not None:
                    return False
                continue
            busy = len(group.pel) > 0 or (newest is not None and newest > group.last_delivered)
            if busy and str(number).encode() not in quarantine:
                return False
        return True

    def _group_ids(
        self, processor: ProcessorRef, kind: Literal["pending", "acknowledged", "undelivered"]
    ) -> dict[int, list[str]]:
        spec = self._processor(processor)
        result = {}
        for number in range(spec.stream.partition_count):
            ids = self._ids(spec, number, kind)
            if ids:
                result[number] = ids
        return result

    def _ids(
        self,
        spec: ProcessorSpec,
        number: int,
        kind: Literal["pending", "acknowledged", "undelivered"],
    ) -> list[str]:
        stored = self.broker.stream(spec.stream.keys.stream(number))
        if stored is None:
            return []
        group = stored.groups.get(spec.name)
        if kind == "pending":
            if group is None:
                return []
            return [_format(sid).decode() for sid, _ in group.pel.since(_MIN_ID)]
        ids = []
        for sid, _ in stored.between(_MIN_ID, _MAX_ID):
            delivered = group is not None and sid <= group.last_delivered
            if kind == "undelivered" and not delivered:
                ids.append(_format(sid).decode())
            elif kind == "acknowledged" and delivered:
                assert group is not None
                if sid not in group.pel:
                    ids.append(_format(sid).decode())
        return ids


def _format(sid: tuple[int, int]) -> bytes:
    return b"%d-%d" % sid


def _parse(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _decoded(event: Event) -> Any:
    try:
        return event.record()
    except Exception:
        return event


def _dead_letter(sink: Stream[Any], number: int, event: Event) -> DeadLetterEntry:
    fields = event.data
    data = {k: v for k, v in fields.items() if not k.startswith(_ERROR_PREFIX)}

    def text(name: str) -> str:
        return fields.get(_ERROR_PREFIX + name.encode(), b"").decode("utf-8", "replace")

    try:
        record = sink.codec.decode(data)
    except Exception:
        record = None
    source_partition = text("partition")
    return DeadLetterEntry(
        sink=sink.name,
        partition=number,
        id=event.entry_id,
        stream=text("stream"),
        source_partition=int(source_partition) if source_partition.isdigit() else number,
        source_id=text("id"),
        processor=text("processor"),
        error_type=text("type"),
        error_message=text("message"),
        time=text("time"),
        data=data,
        record=record,
    )
