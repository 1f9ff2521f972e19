"""The worker's health: the facts the probes judge, and the probes themselves.

:class:`WorkerHealth` is kept up to date by the worker (started, stopping, halted), by
each executor (asked for its :class:`~runnel.domain.health.ExecutorFacts` when a probe
runs) and by whatever talks to the backend (``answered``/``failed``). The rules that turn
those facts into verdicts live in :mod:`runnel.domain.health`.

Whether the backend answers is known from the outcome of the latest call a probe or the
partition checks made. A readiness probe whose knowledge is older than ``recheck``
seconds pings the backend first, with a time limit of ``ping_timeout`` seconds; probes
that arrive meanwhile share that one ping, so a hung backend never piles them up.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> async def ping() -> None: ...
    >>> health = WorkerHealth("shop", SimulatedClock(), ping)
    >>> asyncio.run(health.readiness()).failing()[0].name
    'started'
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from runnel.domain.failures import safe_repr
from runnel.domain.health import ExecutorFacts, Verdict, WorkerFacts, liveness, readiness
from runnel.errors import BackendUnavailable, RunnelError
from runnel.ports import Clock
from runnel.telemetry import Metrics, NoMetrics

log = logging.getLogger(__name__)

Ping = Callable[[], Awaitable[Any]]
"""One cheap call to the backend (a read of a small key)."""


class ExecutorStatus(Protocol):
    """What a probe asks of each executor."""

    def health(self) -> ExecutorFacts:
        """Whether it joined, and how many partitions it is assigned and holds."""
        ...


class WorkerHealth:
    """The facts behind ``/healthz`` and ``/readyz`` (implements the Probes port).

    Args:
        app: the app's name (the ``app`` label of the health gauges).
        clock: the worker's clock.
        ping: one cheap call to the backend.
        metrics: where the health gauges and the reconnect counter go.
        ping_timeout: seconds a ping may take before the backend counts as not answering.
        recheck: seconds after which a readiness probe pings the backend again.
    """

    def __init__(
        self,
        app: str,
        clock: Clock,
        ping: Ping,
        metrics: Metrics | None = None,
        ping_timeout: float = 1.0,
        recheck: float = 1.0,
    ) -> None:
        metrics = metrics if metrics is not None else NoMetrics()
        self.clock = clock
        self.executors: list[ExecutorStatus] = []
        self.started = False
        self.stopping = False
        self.halted = False
        self.reachable = True
        self._ping = ping
        self._ping_timeout = ping_timeout
        self._recheck = recheck
        self._checked_at: float | None = None
        self._pinging: asyncio.Task[None] | None = None
        self._ready = metrics.gauge("runnel_worker_ready", app=app)
        self._halted = metrics.gauge("runnel_worker_halted", app=app)
        self._reachable = metrics.gauge("runnel_backend_reachable", app=app)
        self._errors = metrics.counter("runnel_backend_errors_total", app=app)
        self._reconnects = metrics.counter("runnel_reconnects_total", app=app)
        self._reachable.set(1)

    # ------------------------------------------------------------------ what the worker says

    def start(self) -> None:
        """Start-up finished."""
        self.started = True

    def stop(self) -> None:
        """A graceful stop began."""
        self.stopping = True
        self._ready.set(0)

    def halt(self) -> None:
        """A HALT policy stopped the worker."""
        self.halted = True
        self._halted.set(1)
        self._ready.set(0)

    def answered(self) -> None:
        """A call to the backend succeeded."""
        self._checked_at = self.clock.now()
        if not self.reachable:
            self.reachable = True
            self._reachable.set(1)
            self._reconnects.inc()
            log.info("the backend answers again")

    def failed(self, error: BaseException) -> None:
        """A call to the backend failed as unavailable."""
        self._checked_at = self.clock.now()
        self._errors.inc()
        if self.reachable:
            self.reachable = False
            self._reachable.set(0)
            log.warning("the backend does not answer: %s", safe_repr(error))

    # ------------------------------------------------------------------ probes

    def facts(self) -> WorkerFacts:
        """A snapshot of the facts (without pinging)."""
        return WorkerFacts(
            started=self.started,
            stopping=self.stopping,
            halted=self.halted,
            backend=self.reachable,
            executors=tuple(executor.health() for executor in self.executors),
        )

    def refresh(self) -> bool:
        """Judge readiness from the facts as they are (no ping) and update its gauge."""
        ready = readiness(self.facts()).ok
        self._ready.set(1 if ready else 0)
        return ready

    async def liveness(self) -> Verdict:
        """Alive unless halted (answering at all shows the event loop is not blocked)."""
        return liveness(self.facts())

    async def readiness(self) -> Verdict:
        """Ready when started, running, connected and every processor has its share."""
        if self.started and not self.stopping and self._stale():
            await self.check_backend()
        verdict = readiness(self.facts())
        self._ready.set(1 if verdict.ok else 0)
        return verdict

    def _stale(self) -> bool:
        checked = self._checked_at
        return checked is None or self.clock.now() - checked >= self._recheck

    async def check_backend(self) -> bool:
        """Ping the backend (sharing a ping in flight); whether it answered in time."""
        if self._pinging is None or self._pinging.done():
            self._pinging = asyncio.ensure_future(self._ping_once())
        pinging = self._pinging
        if not await self.clock.wait_for(pinging, self._ping_timeout):
            self.failed(TimeoutError(f"no answer to a ping within {self._ping_timeout:g}s"))
        return self.reachable

    async def _ping_once(self) -> None:
        try:
            await self._ping()
        except BackendUnavailable as exc:
            self.failed(exc)
        except RunnelError:
            self.answered()  # it answered, if only to refuse: it is reachable
        except Exception as exc:  # not a backend's answer at all: count it as none
            self.failed(exc)
        else:
            self.answered()

    async def aclose(self) -> None:
        """Cancel a ping still in flight."""
        if self._pinging is not None and not self._pinging.done():
            self._pinging.cancel()
            await asyncio.gather(self._pinging, return_exceptions=True)
