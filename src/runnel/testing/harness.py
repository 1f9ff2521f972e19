"""The harness: run an App's real workers on a private memory broker and a simulated clock.

How it works:
    Entering a :class:`Harness` re-points the App at a broker of its own: the App's URL
    becomes ``memory://...`` (:meth:`runnel.App.reconfigure`), and its container's
    ``clock``, ``memory_broker`` and ``backend`` providers are overridden with a
    :class:`~runnel.testing.SimulatedClock`, a fresh :class:`MemoryBroker` and a backend
    whose calls pass through a per-worker fault gate. The App's ``autodiscover`` modules are
    imported (as a worker does), then every processor gets one observing middleware (last
    in its chain) and every background task a recording wrapper.
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
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal

from dependency_injector import providers

from runnel.adapters.memory.broker import MemoryBroker
from runnel.adapters.memory.clock import EPOCH, SimulatedClock
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.adapters.memory.membership import MemoryMembership
from runnel.adapters.memory.presence import MemoryPresence
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.app import App
from runnel.errors import Misconfigured
from runnel.runtime.worker import Worker
from runnel.stream import Stream
from runnel.testing import _gate, _sleep
from runnel.testing._inspection import Inspection
from runnel.testing._observe import Instrumentation, Recorder
from runnel.testing.observations import TaskRun

if TYPE_CHECKING:
    from runnel.admin import ResizeReport
from runnel.testing.virtual_worker import (
    Controls,
    ProcessorRef,
    SimulationTimeout,
    VirtualWorker,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 600.0
"""Simulated seconds a harness wait goes on before it fails."""

_KILL_ROUNDS: Final = 50
_SETTLE_REPEATS: Final = 1000

HarnessFactory = Callable[..., "Harness"]
"""What the pytest fixture ``runnel_harness`` is: ``(app, **options) -> Harness``."""


class Harness(Inspection):
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
        >>> from runnel import Record
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
            MemoryPresence(self.broker),
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
        self._controls = Controls(
            clock=self.clock,
            processor_name=lambda processor: self._processor(processor).name,
            run_until=self.run_until,
            cancel_tasks=self._cancel_tasks,
            start=lambda name, processors, balanced: self.start(
                name, processors=processors, balanced=balanced
            ),
        )

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

        Example:
            async with Harness(app) as h:
                assert app.settings.redis_url.startswith("memory://")
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
            app.discover()  # as a worker would: import the autodiscover modules, once
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

        Example:
            async with Harness(app) as h:
                raise AssertionError  # the workers are killed, the app restored
        """
        await self.aclose(graceful=exc_type is None)

    async def aclose(self, graceful: bool = False) -> None:
        """Stop every worker (killing them unless ``graceful``) and restore the App.

        Idempotent; :meth:`__aexit__` calls it.

        Example:
            await h.aclose()
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
            h.abandon()
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
        """True between entering and leaving the harness.

        Example:
            >>> from runnel import App
            >>> Harness(App(name="doc-open", redis_url="memory://")).is_open
            False
        """
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
        # The harness's backend, and the streams' stores on it, stay with the harness.
        app._forget_backend()

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
            w1 = await h.start("w1")
            w2 = await h.start("w2", processors=["totals"])
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
        self._instrumentation.install()  # processors or tasks declared since the harness opened
        worker = Worker(
            self.app.plan(processors),
            install_signals=False,
            worker_id=name,
        )
        vw = VirtualWorker(
            name, worker, tuple(e.spec.name for e in worker.executors), self._controls
        )
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

    # ------------------------------------------------------------------ time

    @property
    def now(self) -> float:
        """The simulated monotonic time in seconds (0.0 when a default harness opens).

        Example:
            >>> from runnel import App
            >>> Harness(App(name="doc-now", redis_url="memory://")).now
            0.0
        """
        return self.clock.now()

    @property
    def wall(self) -> datetime:
        """The simulated wall-clock time (aware, UTC).

        Example:
            >>> from runnel import App
            >>> Harness(App(name="doc-wall", redis_url="memory://")).wall.isoformat()
            '2026-01-01T00:00:00+00:00'
        """
        return self.clock.wall()

    async def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds``, running everything that falls due.

        Deadline by deadline: whatever a wake-up makes runnable runs before time moves on.

        Raises:
            ValueError: ``seconds`` is negative.

        Example:
            await h.advance(5)   # closes a take(..., within=5) window
        """
        self._check_open()
        if seconds < 0:
            raise ValueError(f"cannot advance by a negative duration, got {seconds}")
        target = self.clock.now() + seconds
        await self._settle()
        while await self._step(target):
            pass
        await self.clock.advance(max(0.0, target - self.clock.now()))
        await self._settle()

    async def resize(self, stream: str | Stream[Any], partitions: int) -> ResizeReport:
        """Grow ``stream`` to ``partitions`` partitions while the workers run, as
        ``runnel stream resize`` does (see :meth:`runnel.admin.Admin.resize_stream`).

        Senders route with the new count from then on; each processor finishes the old
        partitions up to their switch points before anything newer.

        Example:
            await orders.send(*before)
            await h.resize(orders, 8)
            await orders.send(*after)
            await h.run_until_idle()
        """
        from runnel.admin import Admin

        self._check_open()
        name = stream if isinstance(stream, str) else stream.name
        report = await Admin(self.app).resize_stream(name, partitions)
        await self._settle()
        return report

    async def advance_to_next(self) -> float | None:
        """Jump to the earliest moment anything waits for, and run what falls due then.

        That is the next heartbeat, lease deadline, batch window, timer, or sleep of user
        code, whichever comes first.

        Returns:
            The new time, or None (time did not move) if nothing waits for the clock.

        Example:
            await h.advance_to_next()
        """
        self._check_open()
        await self._settle()
        return self.clock.now() if await self._step(float("inf")) else None

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
            run = await h.advance_to_next_fire(hourly_report)
            run.started_at  # -> 3600.0
        """
        name = self._task_name(task)
        before = len(self.task_runs(name))
        await self.run_until(
            lambda: len(self.task_runs(name)) > before,
            timeout,
            what=f"background task {name} to run",
        )
        return self.task_runs(name)[before]

    async def run_until(
        self,
        condition: Callable[[], bool],
        timeout: float | None = None,
        what: str | None = None,
    ) -> None:
        """Run the simulation, deadline by deadline, until ``condition()`` is true.

        ``condition`` is checked whenever everything that could run has run, before time
        moves on, so it returns at the first simulated moment the condition holds.

        Raises:
            SimulationTimeout: still false after ``timeout`` simulated seconds (default:
                the harness timeout), or nothing waits for the clock any more.

        Example:
            await h.run_until(lambda: len(h.deliveries("totals")) >= 10)
        """
        self._check_open()
        clock = self.clock
        allowed = self.timeout if timeout is None else timeout
        limit = clock.now() + allowed
        await self._settle()
        while not condition():
            if await self._step(limit):
                continue
            idle = clock.next_deadline() is None
            if not idle:
                await clock.advance(max(0.0, limit - clock.now()))
                await self._settle()
                if condition():
                    return
            reason = (
                "nothing waits for the simulated clock any more"
                if idle
                else f"not done within {allowed:g} simulated seconds"
            )
            raise SimulationTimeout(
                f"waiting for {what or 'a condition'}: {reason} "
                f"(t={clock.now():.3f})\n{self.describe()}"
            )

    async def _step(self, limit: float) -> bool:
        """Jump to the next deadline if it is no later than ``limit``, and settle there."""
        deadline = self.clock.next_deadline()
        if deadline is None or deadline > limit:
            return False
        await self.clock.advance(max(0.0, deadline - self.clock.now()))
        await self._settle()
        return True

    async def _settle(self) -> None:
        """Let everything that can run at the current instant run; time stands still.

        One ``clock.advance(0)`` lets the loop run until it is idle, but gives up after a
        bounded number of rounds (a burst of hundreds of events takes more). So repeat it
        for as long as processing makes progress.
        """
        await self.clock.advance(0)
        for _ in range(_SETTLE_REPEATS):
            mark = self._progress()
            await self.clock.advance(0)
            if self._progress() == mark:
                return

    async def run_until_idle(
        self, timeout: float | None = None, processors: Iterable[ProcessorRef] | None = None
    ) -> None:
        """Run the simulation until every partition of every processor is idle.

        A partition is idle when everything sent to it has been delivered to the
        processor and acknowledged (dead-lettered entries are acknowledged too), or when it
        is quarantined; then nothing is buffered or in flight either. The processors
        considered are those the harness's workers run (or have run); before any worker has
        started, all of the app's (so events sent with no worker to process them fail the
        wait at once, rather than count as idle).

        Args:
            timeout: simulated seconds to wait at most (default: the harness timeout).
            processors: only these processors (names or functions).

        Raises:
            SimulationTimeout: not idle within ``timeout``, or no running worker is left to
                process what is pending (say, every worker running it halted or was
                killed). The message lists the busy partitions.

        Example:
            await orders.send(*batch)
            await h.run_until_idle()
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

    async def run_until_balanced(self, timeout: float | None = None) -> None:
        """Run the simulation until partition ownership has settled.

        Settled means: for every processor that a running worker runs, the membership
        lists exactly the running workers' executors, each of them holds exactly the
        partitions assigned to it, and every partition has one owner.

        Raises:
            SimulationTimeout: not settled within ``timeout`` simulated seconds.

        Example:
            await w2.kill()
            await h.run_until_balanced()
            assert set(h.owners("totals").values()) == {"w1"}
        """
        await self.run_until(self.is_balanced, timeout, what="the partitions to be balanced")

    # ------------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError("the harness is not open: use it as `async with Harness(app) as h:`")
