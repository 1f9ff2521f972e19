"""A permission the Redis user lacks halts the worker: never a silent retry loop.

The backend adapters turn a refused permission (NOPERM) into ``PermissionDenied``. Here
a memory backend is made to refuse one call, at start-up or while running, and the
worker must stop with exit code 1 and one CRITICAL line naming the refusal, whatever
loop (fetch, acknowledgement, lease, heartbeat, leader election) met it first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest

from runnel import App, Events, ExceptionPolicy, Middleware, Record
from runnel.adapters.memory.clock import SimulatedClock
from runnel.errors import PermissionDenied
from runnel.middleware import DeadLetterMiddleware
from runnel.runtime.worker import Worker

from .conftest import until


class Tick(Record):
    key: str
    seq: int


class Refusing:
    """A port whose method ``name`` raises PermissionDenied once ``armed`` (or returns it
    in every slot, for the batch methods whose slots carry errors)."""

    def __init__(self, inner: Any, name: str, in_slots: bool = False) -> None:
        self._inner = inner
        self._name = name
        self._in_slots = in_slots
        self.armed = False
        self.refused = 0

    def __getattr__(self, attr: str) -> Any:
        method = getattr(self._inner, attr)
        if attr == "wait_and_read" and self._name == "exchange":
            return self._doorbell(method)  # the doorbell's reads are fetch reads too
        if attr != self._name:
            return method

        async def call(*args: Any, **kwargs: Any) -> Any:
            if not self.armed:
                return await method(*args, **kwargs)
            self.refused += 1
            error = PermissionDenied(f"the Redis user may not run {attr}", command=attr)
            if not self._in_slots:
                raise error
            acks, reads = args
            return [error] * len(acks), [error] * len(reads)

        return call

    def _doorbell(self, method: Any) -> Any:
        async def call(after: Any, timeout: float, reads: Any) -> Any:
            if not self.armed:
                return await method(after, timeout, reads)
            self.refused += 1
            error = PermissionDenied("the Redis user may not run exchange", command="exchange")
            if not self._in_slots:
                raise error
            return await self._inner.wait(after, timeout), [error] * len(reads)

        return call


def refusing(app: App, port: str, name: str, in_slots: bool = False) -> tuple[Worker, Refusing]:
    """A worker of ``app`` whose backend refuses ``port.name`` once armed."""
    plan = app.plan()
    wrapped = Refusing(getattr(plan.backend, port), name, in_slots)
    ports: dict[str, Any] = {port: wrapped}  # the wrapper stands in for the port
    backend = dataclasses.replace(plan.backend, **ports)
    return Worker(dataclasses.replace(plan, backend=backend), install_signals=False), wrapped


def app_with_processor(make_app: Callable[..., App], seen: list[int]) -> tuple[App, Any]:
    app = make_app(default_partition_count=2)
    ticks = app.stream("ticks", record=Tick, partition_by="key")

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)

    return app, ticks


@pytest.mark.parametrize(
    ("port", "name", "in_slots"),
    [
        ("log", "exchange", False),  # a fetch round refused as a whole
        ("log", "exchange", True),  # one partition's read refused inside a round
        ("locks", "extend", False),  # lease renewal
        ("kv", "set", False),  # heartbeats
        ("locks", "acquire", False),  # acquisitions and the leader election (from start)
    ],
)
async def test_a_refusal_halts_the_worker_with_one_critical_line(
    make_app: Callable[..., App],
    clock: SimulatedClock,
    caplog: pytest.LogCaptureFixture,
    port: str,
    name: str,
    in_slots: bool,
) -> None:
    seen: list[int] = []
    app, ticks = app_with_processor(make_app, seen)
    worker, wrapped = refusing(app, port, name, in_slots)
    from_start = name == "acquire"  # leases once held are renewed, not taken again
    wrapped.armed = from_start
    with caplog.at_level(logging.CRITICAL, logger="runnel"):
        task = asyncio.create_task(worker.run())
        if not from_start:
            await until(worker.started.is_set, clock)
            await ticks.send(Tick(key="a", seq=1))
            await until(lambda: seen == [1], clock)
            wrapped.armed = True
        assert await asyncio.wait_for(task, 60) == 1
    assert isinstance(worker.halt_reason, PermissionDenied)
    critical = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(critical) == 1, critical
    assert "cannot do its job" in critical[0]
    assert f"may not run {name}" in critical[0]
    assert wrapped.refused < 10  # stopped at once, not retried


async def test_a_refusal_at_start_up_is_raised_before_any_partition_is_taken(
    make_app: Callable[..., App], clock: SimulatedClock
) -> None:
    seen: list[int] = []
    app, _ = app_with_processor(make_app, seen)
    worker, wrapped = refusing(app, "log", "ensure_group")
    wrapped.armed = True
    with pytest.raises(PermissionDenied, match="may not run ensure_group"):
        await worker.run()
    assert not worker.started.is_set()


def test_the_start_up_check_covers_every_key_kind_of_the_worker(
    make_app: Callable[..., App],
) -> None:
    app = make_app(default_partition_count=2)
    ticks = app.stream("ticks", record=Tick, partition_by="key")

    class Odd(Middleware):
        sink = "not a stream"  # a user's middleware may have any attribute of that name

    @app.processor(ticks, middleware=[DeadLetterMiddleware(source=ticks), Odd()])
    async def proc(events: Events) -> None:
        async for _ in events:
            pass

    @app.timer(interval=5.0, on_leader=True)
    async def nightly() -> None:
        pass

    access = Worker(app.plan(), install_signals=False).access()
    keys = {a.kind: a.key for a in access}
    assert keys["sink"] == f"__strm:{app.name}.ticks.dead.0"
    assert keys["schedule"] == f"__sched:{app.name}.nightly"
    assert keys["lock"].startswith(f"__lock:{app.name}.ticks.proc.")
    assert {a.kind for a in access} == {
        "stream", "sink", "meta", "lost", "lock", "epoch", "fenced", "membership",
        "membership_version", "control", "beat", "quarantine", "leader", "leader_epoch",
        "schedule",
    }  # fmt: skip
