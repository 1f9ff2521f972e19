"""Fault gates: each virtual worker reaches the backend through a gate of its own.

All virtual workers share one :class:`~runnel.ports.Backend`, whose ports look up the gate
of the calling context (a context variable set in the worker's task, and so inherited by
every task the worker and the user code inside it create). A call from a crashed worker
fails with :class:`~runnel.errors.BackendUnavailable`, as if its process were gone; a call
from a cut-off worker waits until the gate opens again. The test's own calls (sends,
``app.quarantined()``) carry no gate and always go through.

The gate is checked before and after every call, so a crash or a cut during a call
withholds its reply, as a lost connection would.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import weakref
from collections.abc import Coroutine, Generator
from contextvars import Context, ContextVar
from typing import Any, cast

from runnel.errors import BackendUnavailable
from runnel.ports import (
    Backend,
    Clock,
    KeyValue,
    Membership,
    PartitionLocks,
    Presence,
    StreamAdmin,
    StreamLog,
)

_GATE: ContextVar[Gate | None] = ContextVar("runnel_testing_gate", default=None)


class Gate:
    """Whether one virtual worker can reach the backend."""

    def __init__(self) -> None:
        self.crashed = False
        self.tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self._open = asyncio.Event()
        self._open.set()

    @property
    def cut(self) -> bool:
        """True while calls wait (the worker is cut off)."""
        return not self._open.is_set()

    async def check(self) -> None:
        """Return when a call may go through; raise if the worker has crashed."""
        if self.crashed:
            raise BackendUnavailable("the worker was killed")
        if not self._open.is_set():
            await self._open.wait()
            if self.crashed:
                raise BackendUnavailable("the worker was killed")

    def cut_off(self) -> None:
        """Make every call wait until :meth:`reconnect`."""
        self._open.clear()

    def reconnect(self) -> None:
        """Let waiting and new calls through again."""
        self._open.set()

    def crash(self) -> None:
        """Fail every call from now on, waiting ones included."""
        self.crashed = True
        self._open.set()


class TaskTracker:
    """A task factory that files every task created under a gate with that gate.

    A new task runs in a copy of its creator's context, so a task created by a virtual
    worker (or by user code inside it) carries the worker's gate: killing the worker can
    then cancel all of them, whoever created them. Installed on the running loop while a
    harness is open, chaining to any factory that was there before.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous = loop.get_task_factory()

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        if self.previous is not None:
            task = self.previous(loop, coro, **kwargs)
        else:
            task = asyncio.Task(coro, loop=loop, **kwargs)
        given: Context | None = kwargs.get("context")
        gate = given.get(_GATE) if given is not None else _GATE.get()
        if gate is not None and isinstance(task, asyncio.Task) and not _is_clock(coro):
            gate.tasks.add(task)
        return task

    def install(self) -> None:
        """Become the loop's task factory."""
        self.loop.set_task_factory(self)

    def uninstall(self) -> None:
        """Put the previous factory back, unless someone replaced ours meanwhile."""
        if self.loop.get_task_factory() is self:
            self.loop.set_task_factory(self.previous)


class SilenceKilled(logging.Filter):
    """Drops log records of killed workers: a dead process says nothing.

    A killed worker's tasks are cancelled, and the worker's clean-up code (which a real
    crash would never run) would otherwise log failures to leave, release and flush.
    Attached to runnel's loggers while a harness is open.
    """

    def __init__(self) -> None:
        super().__init__("runnel.testing")
        self._loggers: list[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        """False for records logged from the context of a killed worker."""
        gate = _GATE.get()
        return gate is None or not gate.crashed

    def install(self) -> None:
        """Attach to every ``runnel.*`` logger (they are created when modules load)."""
        names = [n for n in logging.Logger.manager.loggerDict if n.startswith("runnel.")]
        for name in ["runnel", *names]:
            logger = logging.getLogger(name)
            if self not in logger.filters:
                logger.addFilter(self)
                self._loggers.append(logger)

    def uninstall(self) -> None:
        """Detach from the loggers :meth:`install` attached to."""
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()


def _is_clock(coro: object) -> bool:
    # The simulated clock's autojump watcher serves every worker: it is nobody's to cancel.
    return getattr(coro, "__qualname__", "") == "SimulatedClock._watch"


def bind(gate: Gate) -> None:
    """Route the current context's (a task's own copy) backend calls through ``gate``."""
    _GATE.set(gate)


class _Gated:
    """A port whose coroutine methods pass through the calling context's gate."""

    def __init__(self, inner: object) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            gate = _GATE.get()
            if gate is None:
                return await attr(*args, **kwargs)
            await gate.check()
            result = await attr(*args, **kwargs)
            await gate.check()
            return result

        call.__name__ = name
        call.__doc__ = attr.__doc__
        self.__dict__[name] = call  # later lookups skip __getattr__
        return call


def gated(
    log: StreamLog,
    locks: PartitionLocks,
    kv: KeyValue,
    membership: Membership,
    clock: Clock,
    presence: Presence | None = None,
) -> Backend:
    """A backend whose port calls pass through the calling context's gate.

    ``log`` plays both stream-log roles (:class:`~runnel.ports.StreamLog` and
    :class:`~runnel.ports.StreamAdmin`), as the memory adapter does.
    """
    gated_log = _Gated(log)
    return Backend(
        log=cast(StreamLog, gated_log),
        admin=cast(StreamAdmin, gated_log),
        locks=cast(PartitionLocks, _Gated(locks)),
        kv=cast(KeyValue, _Gated(kv)),
        membership=cast(Membership, _Gated(membership)),
        clock=clock,
        presence=None if presence is None else cast(Presence, _Gated(presence)),
    )
