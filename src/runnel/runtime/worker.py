"""The worker: runs executors, leader election and background tasks until told to stop.

Shutdown (SIGTERM/SIGINT, or a HALT): background tasks are cancelled, every executor
drains gracefully (in-flight iterations finish within ``grace_period``, acks are flushed,
leases released), leadership is released, and the exit code is returned: 0 after a
signal, 1 after a HALT. A second signal forces an immediate exit.

A stop is bounded whatever the backend does: :data:`STOP_MARGIN` seconds after the
longest ``grace_period`` whatever is still going (a Redis call that waits on a stalled
server, a flush, a release) is cancelled, and what could not be acknowledged or released
is left to expire: its events are delivered again (at least once), nothing is lost. A
task that still refuses to end :data:`CANCEL_WAIT` seconds later is reported; a worker
that owns its process (``install_signals``) then exits without it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Coroutine, Sequence
from contextvars import ContextVar
from typing import Any

from runnel import context
from runnel._version import __version__
from runnel.domain.access import Access, ProcessorKeys, worker_access
from runnel.domain.excerpt import truncated
from runnel.domain.failures import safe_repr
from runnel.domain.keys import Keys, leader_key
from runnel.errors import BackendError, PermissionDenied
from runnel.ports import ReplicaShortfalls
from runnel.runtime._aio import cancel_and_wait
from runnel.runtime.budget import ByteBudget
from runnel.runtime.coordination import connection_name
from runnel.runtime.executor import Executor
from runnel.runtime.health import WorkerHealth
from runnel.runtime.leadership import Leadership
from runnel.runtime.plan import WorkerPlan
from runnel.runtime.specs import StreamSpec
from runnel.runtime.tasks import TaskRunner

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_HALTED = 1
EXIT_FORCED = 130

STOP_MARGIN = 2.0
"""Seconds past the longest ``grace_period`` after which a stop still going is cut short
(its pending calls cancelled, unreleased leases left to expire)."""

CANCEL_WAIT = 1.0
"""Seconds a cut-short stop waits for its cancelled tasks before it reports them and goes."""

exit_guard_wanted: ContextVar[bool] = ContextVar("runnel_exit_guard", default=False)
"""Set by ``runnel worker`` for the worker it runs (``exit_guard``); see
:func:`disarm_exit_guards`."""

_ARMED: set[threading.Timer] = set()


def disarm_exit_guards() -> None:
    """Cancel every armed exit guard: the program that ran the worker goes on (``runnel
    worker`` calls it once the worker's event loop is closed, which matters when it runs
    inside another program, such as a test)."""
    for timer in list(_ARMED):
        timer.cancel()
        _ARMED.discard(timer)


EXIT_GUARD_MARGIN = 2.0
"""Seconds past :meth:`Worker.stop_limit` + :data:`CANCEL_WAIT` after which a worker that
owns its process (``exit_guard``) ends the process, from a thread of its own: whatever
still holds the event loop (closing connections to a stalled Redis, say) cannot keep it."""

STOP_REPORT_EVERY = 10.0
"""Seconds between further reports of tasks that outlive a cut-short stop."""

STOP_REPORT_LIMIT = 30
"""Reports of one stop at most (five minutes of them); the last one says so."""


GC_THRESHOLD = (50_000, 50, 100)
"""Garbage-collector thresholds of a tuned worker (CPython's defaults: 700, 10, 10)."""


def tune_garbage_collector() -> None:
    """Collect once, freeze what start-up allocated, and collect young objects less often.

    A worker allocates many short-lived objects per event (entries, events, records)
    that reference counting frees; the cyclic collector finds almost nothing among them
    but, at CPython's default threshold of 700 allocations, runs hundreds of times a
    second and walks every surviving object each time it reaches the older generations.
    Freezing moves everything alive after start-up (modules, the app, connections) out of
    the collector's way for good; the larger thresholds make young collections rare.
    Cycles are still collected, just in larger batches.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


class Worker:
    """Runs the processors and background tasks of a plan (:meth:`runnel.App.plan`).

    Args:
        plan: what to run, and the ports to run it through.
        install_signals: stop on SIGTERM and SIGINT (a second one exits at once).
        worker_id: the worker's id; by default ``<host>-<pid>-<random>``.
        tune_gc: tune the garbage collector once started (see
            :func:`tune_garbage_collector`); for a process that is only a worker.
        exit_guard: the worker owns its process: once a stop begins, end the process at
            the latest :meth:`stop_limit` + :data:`CANCEL_WAIT` +
            :data:`EXIT_GUARD_MARGIN` seconds later (``runnel worker`` does).
    """

    def __init__(
        self,
        plan: WorkerPlan,
        install_signals: bool = True,
        worker_id: str | None = None,
        tune_gc: bool = False,
        exit_guard: bool = False,
    ) -> None:
        self.plan = plan
        self.exit_guard = exit_guard
        backend = self.backend = plan.backend
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        metrics = plan.metrics
        leader_key_ = leader_key(plan.app, plan.key_layout)
        self.health = WorkerHealth(
            plan.app, backend.clock, lambda: backend.kv.get(leader_key_), metrics
        )
        """What ``/healthz`` and ``/readyz`` answer (the worker's Probes)."""
        self.budget = ByteBudget(plan.prefetch_bytes) if plan.prefetch_bytes is not None else None
        """The byte budget all the worker's partitions share (None: no limit)."""
        self.executors = [
            Executor(
                spec,
                backend,
                plan.stores,
                worker_id=self.id,
                halt=self.halt,
                metrics=metrics,
                tracing=plan.tracing,
                checks=plan.checks,
                watch=self.health,
                budget=self.budget,
            )
            for spec in plan.processors
        ]
        self.health.executors.extend(self.executors)
        self._leader = metrics.gauge("runnel_leader", app=plan.app)
        self._buffered = metrics.gauge("runnel_worker_buffered_bytes", app=plan.app)
        self._task_failures = {
            spec.name: metrics.counter(
                "runnel_task_failures_total", app=plan.app, task=spec.name, kind=spec.kind
            )
            for spec in plan.tasks
        }
        self._failures_published: dict[str, int] = {}
        if isinstance(backend.log, ReplicaShortfalls):  # redis_wait_replicas is on
            backend.log.on_short = self._not_replicated
        self.leadership = Leadership(
            plan.app, self.id, backend, plan.leadership_poll_interval, plan.key_layout
        )
        self.task_runners = [TaskRunner(t, backend.clock, self.leadership) for t in plan.tasks]
        self.install_signals = install_signals
        self.tune_gc = tune_gc
        self.exit_code = EXIT_OK
        self.halt_reason: BaseException | None = None
        self._stop = asyncio.Event()
        self._signals = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._presence: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()

    def _not_replicated(self, write: str) -> None:
        """A fetch round, commit or dead letter reached fewer replicas than required."""
        self.plan.metrics.counter(
            "runnel_worker_writes_not_replicated_total", app=self.plan.app, write=write
        ).inc()

    def request_stop(self) -> None:
        """Begin a graceful stop (what SIGTERM does)."""
        self._stop.set()

    def halt(self, error: BaseException, where: str) -> None:
        """Stop the worker because of a HALT policy, or because it cannot do its job
        (a permission the Redis user lacks), with exit code 1."""
        self.health.halt()
        if self.halt_reason is None:
            self.halt_reason = error
            if isinstance(error, PermissionDenied):
                log.critical(
                    "halting worker %s: %s cannot do its job: %s",
                    self.id,
                    where,
                    truncated(str(error), 2000),
                )
            else:
                log.critical("halting worker %s: %s failed: %s", self.id, where, safe_repr(error))
        self.exit_code = EXIT_HALTED
        self._stop.set()

    async def _halting_on_refusal(self, coro: Coroutine[Any, Any, None], where: str) -> None:
        """Run a background loop; a permission the Redis user lacks halts the worker
        (those loops retry backend errors, but retrying cannot grant a permission)."""
        try:
            await coro
        except PermissionDenied as exc:
            self.halt(exc, where)

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("received %s: stopping gracefully", signal.Signals(signum).name)
            self.request_stop()
        else:
            log.warning("received %s again: exiting now", signal.Signals(signum).name)
            os._exit(EXIT_FORCED)

    async def run(self) -> int:
        """Run until stopped; return the exit code."""
        context.worker_id.set(self.id)
        loop = asyncio.get_running_loop()
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            log.info(
                "worker %s starting: processors %s on %s",
                self.id,
                ", ".join(e.spec.name for e in self.executors) or "(none)",
                self.plan.where,
            )
            for store in {id(e.store): e.store for e in self.executors}.values():
                await store.prepare()
            diagnostics = self.backend.diagnostics  # a capability not every store has
            if self.executors and diagnostics is not None:
                for risk in await diagnostics.durability_risks():
                    log.warning("%s (%s)", risk, self.plan.where)
            await self._check_access()
            self._hold_presence()
            self._tasks.append(
                asyncio.create_task(
                    self._halting_on_refusal(self.leadership.run(), "leader election"),
                    name="leadership",
                )
            )
            for executor in self.executors:
                await executor.start()
            for runner in self.task_runners:
                self._tasks.append(
                    asyncio.create_task(
                        self._halting_on_refusal(runner.run(), f"task {runner.spec.name}"),
                        name=f"task:{runner.spec.name}",
                    )
                )
            self._tasks.append(asyncio.create_task(self._watch(), name="partition-checks"))
            if self.tune_gc:
                tune_garbage_collector()
            self._started_metrics()
            self.health.start()
            self.started.set()
            await self._stop.wait()
        finally:
            if self.exit_guard:
                self._arm_exit_guard()
            self.health.stop()
            self.publish_metrics()
            try:
                await self._bounded_shutdown()
            finally:
                presence = self._presence
                if presence is not None:  # last: the others see the process leave
                    presence.cancel()
                    ended = await self.backend.clock.wait_for(presence, CANCEL_WAIT)
                    if ended and not presence.cancelled():
                        presence.exception()  # retrieved: a failure of it is no news
                await self.health.aclose()
            if self.install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
            self.stopped.set()
        log.info("worker %s stopped (exit code %d)", self.id, self.exit_code)
        return self.exit_code

    def _hold_presence(self) -> None:
        """Hold this worker's named connection while it runs (see
        :meth:`runnel.runtime.coordination.Coordinator.gone`): its peers notice at once
        when the process dies."""
        presence = self.backend.presence
        if presence is None or not self.executors:
            return
        every = min(e.coordinator.tick for e in self.executors) / 2
        name = connection_name(self.plan.app, self.id)
        self._presence = asyncio.create_task(presence.hold(name, every), name="presence")

    def _arm_exit_guard(self) -> None:
        """End the process from a timer thread if it is still there well after the stop
        limit (see ``exit_guard``); the thread is a daemon, so a process that exits in
        time never waits for it."""
        after = self.stop_limit() + CANCEL_WAIT + EXIT_GUARD_MARGIN

        def force() -> None:
            log.warning(
                "worker %s: the process is still running %.1fs after the stop began "
                "(something waits on Redis or refuses to end): exiting now",
                self.id,
                after,
            )
            logging.shutdown()
            os._exit(self.exit_code)

        timer = threading.Timer(after, force)
        timer.daemon = True
        _ARMED.add(timer)
        timer.start()

    def stop_limit(self) -> float:
        """Seconds a stop may take before it is cut short: the longest ``grace_period``
        plus :data:`STOP_MARGIN` (then at most :data:`CANCEL_WAIT` more to cancel)."""
        return max((e.spec.grace_period for e in self.executors), default=0.0) + STOP_MARGIN

    async def _bounded_shutdown(self) -> None:
        """Stop gracefully within :meth:`stop_limit`; past it, cancel what is left.

        Whatever the backend does (a stalled Redis makes each call wait up to the socket
        timeout), the stop ends in time: acknowledgements not sent and leases not released
        by then expire by themselves, and their events are delivered again.
        """
        clock = self.backend.clock
        limit, started = self.stop_limit(), clock.now()
        stop = asyncio.create_task(self._shutdown(), name="stop")
        if await clock.wait_for(stop, limit):
            stop.result()
            return
        me = asyncio.current_task()
        waiting = sorted(describe_task(t) for t in asyncio.all_tasks() if t not in (me, stop))
        log.warning(
            "worker %s could not stop gracefully within %.1fs (grace_period + %.1fs): "
            "cutting the stop short; unacknowledged events are delivered again and "
            "unreleased leases expire by themselves. It was waiting on %d task(s):\n  %s",
            self.id,
            limit,
            STOP_MARGIN,
            len(waiting),
            "\n  ".join(waiting) or "(none)",
        )
        stop.cancel()
        if await clock.wait_for(stop, CANCEL_WAIT):
            return
        reporter = asyncio.create_task(self._report_slow_stop(started), name="stop-report")
        if self.install_signals:  # the worker owns the process: go without those tasks
            log.critical(
                "worker %s: task(s) refuse to end after the stop was cut short; exiting "
                "the process without them",
                self.id,
            )
            await cancel_and_wait(reporter)
            logging.shutdown()
            os._exit(self.exit_code)
        try:
            await stop  # embedded in a program of its own: the program decides
        except BaseException:  # cancelled: whatever it raises, the worker is stopping
            pass
        finally:
            await cancel_and_wait(reporter)

    async def _check_access(self) -> None:
        """Refuse to start when the Redis user may not do what this worker will do.

        Raises:
            PermissionDenied: naming every command and key the ACL refuses.
        """
        diagnostics = self.backend.diagnostics  # a capability not every store has
        if diagnostics is None:
            return
        try:
            await diagnostics.check_access(self.access())
        except BackendError as exc:
            log.warning("could not check the Redis user's permissions at start-up: %s", exc)

    def access(self) -> list[Access]:
        """Every kind of key this worker touches, with one key of each."""
        processors = [
            ProcessorKeys(
                e.keys,
                e.spec.name,
                e.id,
                tuple(_sink_keys(e.spec.middleware)),
            )
            for e in self.executors
        ]
        leader_tasks = [t.name for t in self.plan.tasks if t.on_leader]
        return worker_access(self.plan.app, processors, leader_tasks, self.plan.key_layout)

    def _started_metrics(self) -> None:
        metrics, app = self.plan.metrics, self.plan.app
        metrics.gauge("runnel_build_info", app=app, version=__version__).set(1)
        started = self.backend.clock.wall().timestamp()
        metrics.gauge("runnel_worker_start_time_seconds", app=app).set(started)

    def publish_metrics(self) -> None:
        """Bring the metrics made from running totals up to date (a scrape calls it)."""
        for executor in self.executors:
            executor.monitor.publish(executor.counts())
        self._leader.set(1 if self.leadership.leading() else 0)
        if self.budget is not None:
            self._buffered.set(self.budget.used)
        for runner in self.task_runners:
            name = runner.spec.name
            delta = runner.failures - self._failures_published.get(name, 0)
            if delta > 0:
                self._task_failures[name].inc(delta)
                self._failures_published[name] = runner.failures
        self.health.refresh()

    async def _watch(self) -> None:
        """Every ``partition_check_interval``: publish the metrics and check the partitions."""
        clock, interval = self.backend.clock, self.plan.checks.interval
        while True:
            await clock.sleep(interval)
            self.publish_metrics()
            for executor in self.executors:
                try:
                    await executor.check_partitions()
                except Exception as exc:  # a check must never take the worker down
                    log.error(
                        "checking the partitions of %s failed: %s",
                        executor.spec.name,
                        safe_repr(exc),
                        exc_info=exc,
                    )

    async def _report_slow_stop(self, started: float) -> None:
        """Log what a stop cut short still waits on: every pending task with its line.

        Such a task refused its cancellation (a ``finally`` block that awaits something
        that never comes, say); it is named every :data:`STOP_REPORT_EVERY` seconds, at
        most :data:`STOP_REPORT_LIMIT` times.
        """
        clock = self.backend.clock
        me = asyncio.current_task()
        for report in range(1, STOP_REPORT_LIMIT + 1):
            waiting = [describe_task(t) for t in asyncio.all_tasks() if t is not me]
            log.warning(
                "worker %s still stopping after %.1fs; waiting on %d task(s):\n  %s%s",
                self.id,
                clock.now() - started,
                len(waiting),
                "\n  ".join(sorted(waiting)) or "(none)",
                "\n(no further reports of this stop)" if report == STOP_REPORT_LIMIT else "",
            )
            await clock.sleep(STOP_REPORT_EVERY)

    async def _shutdown(self) -> None:
        await cancel_and_wait(*self._tasks[1:])  # background tasks first, leadership last
        results = await asyncio.gather(*(e.stop() for e in self.executors), return_exceptions=True)
        for executor, result in zip(self.executors, results, strict=True):
            if isinstance(result, BaseException):
                log.error("stopping %s failed: %s", executor.spec.name, safe_repr(result))
        await cancel_and_wait(*self._tasks[:1])
        await self.leadership.release()


def _sink_keys(middleware: Sequence[object]) -> list[Keys]:
    """The keys of the streams middleware writes to (the dead-letter middleware's sink).

    Middleware is the user's code: a ``sink`` is looked for defensively, and counts when
    it names a stream's spec.
    """
    found = []
    for m in middleware:
        spec = getattr(getattr(m, "sink", None), "spec", None)
        if isinstance(spec, StreamSpec):
            found.append(spec.keys)
    return found


def describe_task(task: asyncio.Task[Any]) -> str:
    """``name: where it waits``, the innermost awaits of the task outside asyncio itself.

    When those are all inside other libraries (a hung call in the Redis client, say), the
    innermost line of runnel or of the application that led there is named as well.

    Example:
        ``exec-1:fetcher: fetcher.py:271 in _wait <- fetcher.py:75 in run``
    """
    frames: list[tuple[bool, str]] = []  # (runnel's or the application's?, where), outermost first
    coro: Any = task.get_coro()
    for _ in range(100):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            path = frame.f_code.co_filename
            if not path.startswith(_ASYNCIO_DIR):
                where = f"{os.path.basename(path)}:{frame.f_lineno} in {frame.f_code.co_name}"
                frames.append((not _in_library(path), where))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
    shown = [where for _, where in frames[-3:]]
    if frames and not any(ours for ours, _ in frames[-3:]):
        ours = [where for mine, where in frames[:-3] if mine]
        if ours:
            shown = [ours[-1], "...", *shown]
    return f"{task.get_name()}: {' <- '.join(reversed(shown)) or '(inside asyncio)'}"


def _in_library(path: str) -> bool:
    """Whether ``path`` is a file of an installed third-party package (not runnel)."""
    if path.startswith(_RUNNEL_DIR):
        return False
    return f"{os.sep}site-packages{os.sep}" in path or f"{os.sep}dist-packages{os.sep}" in path


_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_RUNNEL_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
