"""Exception policies, middleware and dead letters on the memory backend."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from runnel import App, Events, ExceptionPolicy, Middleware
from runnel.adapters.memory.clock import SimulatedClock
from runnel.errors import BackendUnavailable
from runnel.middleware import DeadLetterMiddleware
from runnel.ports import Append

from .conftest import Tick, ticks_app, until


def one_partition(make_app: Callable[..., App]) -> tuple[App, Any]:
    return ticks_app(make_app, default_partition_count=1)


async def test_halt_stops_the_worker_with_exit_code_1_and_keeps_the_failed_event(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    seen: list[int] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.HALT)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 3:
                raise ValueError("boom on 3")
            seen.append(tick.seq)

    ids = await ticks.send(*[Tick(key="k", seq=i) for i in range(6)])
    running = await workers(app)
    assert await running.task == 1
    assert isinstance(running.worker.halt_reason, ValueError)
    assert seen == [0, 1, 2]
    pending = await app.backend.admin.pending(ticks.keys.stream(0), "proc")
    assert pending
    assert pending[0].id == ids[3]
    assert await app.backend.locks.holder(ticks.keys.lock("proc", 0)) is None  # released


async def test_ignore_acknowledges_the_failed_event_and_goes_on(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    seen: list[int] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq % 3 == 0:
                raise ValueError(f"boom on {tick.seq}")
            seen.append(tick.seq)

    await ticks.send(*[Tick(key="k", seq=i) for i in range(10)])
    running = await workers(app)
    await until(lambda: len(seen) == 6, clock)
    await clock.sleep(1)
    assert await running.stop() == 0
    assert seen == [1, 2, 4, 5, 7, 8]
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


async def test_quarantine_stops_only_that_partition_durably_until_cleared(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app = make_app(default_partition_count=2)
    ticks = app.stream("ticks", record=Tick, partition_by="key", hasher=lambda k: int(str(k)[1:]))
    seen: list[tuple[str, int]] = []
    poison = {("k0", 2)}

    @app.processor(ticks, exception_policy="quarantine")
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if (tick.key, tick.seq) in poison:
                raise RuntimeError("poison")
            seen.append((tick.key, tick.seq))

    ids = await ticks.send(*[Tick(key=f"k{i % 2}", seq=i // 2) for i in range(10)])
    running = await workers(app)
    await until(lambda: len([s for s in seen if s[0] == "k1"]) == 5, clock)
    await clock.sleep(2)
    assert [s for s in seen if s[0] == "k0"] == [("k0", 0), ("k0", 1)]
    record = await app.quarantined("proc")
    assert list(record) == [0]
    assert record[0]["entry_id"] == ids[4].decode()
    assert record[0]["error_type"] == "RuntimeError"
    assert record[0]["error"] == "poison"
    await running.stop()

    # The quarantine survives a restart.
    again = await workers(app)
    await clock.sleep(5)
    assert [s for s in seen if s[0] == "k0"] == [("k0", 0), ("k0", 1)]
    # Fix the cause and clear it: the partition resumes from the failed event.
    poison.clear()
    assert await app.clear_quarantine("proc", 0)
    await until(lambda: len([s for s in seen if s[0] == "k0"]) == 5, clock)
    await again.stop()
    assert [s[1] for s in seen if s[0] == "k0"] == [0, 1, 2, 3, 4]
    assert await app.quarantined("proc") == {}


async def test_dead_letters_keep_the_raw_fields_and_the_error(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    dlq = DeadLetterMiddleware(source=ticks)
    seen: list[int] = []
    dead: list[Any] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dlq])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 1:
                raise KeyError("no such thing")
            seen.append(tick.seq)

    @app.processor(dlq.sink)
    async def dead_letters(events: Events) -> None:
        async for event in events:
            dead.append(event)

    ids = await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1), Tick(key="k", seq=2))
    # A corrupt entry written behind runnel's back goes the same way.
    (bad_id,) = await app.backend.log.append(
        [Append(ticks.keys.stream(0), {b"data": b"{not json"})]
    )
    running = await workers(app)
    await until(lambda: len(dead) == 2 and len(seen) == 2, clock)
    await running.stop()
    assert seen == [0, 2]
    first, second = dead
    assert first.data[b"data"] == b'{"key":"k","seq":1}'
    assert first.data[b"__error_type"] == b"KeyError"
    assert first.data[b"__error_id"] == ids[1]
    assert first.data[b"__error_partition"] == b"0"
    assert first.record() == Tick(key="k", seq=1)
    assert second.data[b"data"] == b"{not json"
    assert second.data[b"__error_type"] == b"DecodeError"
    assert second.data[b"__error_id"] == bad_id
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


class Recorder(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def handler(self, parent: AsyncIterator[Any], **kwargs: Any) -> AsyncIterator[Any]:
        async for x in parent:
            self.log.append(f"{self.name}:in")
            try:
                yield x
            except GeneratorExit:
                self.log.append(f"{self.name}:exit")
                raise
            finally:
                self.log.append(f"{self.name}:finally")


async def test_middleware_runs_in_order_and_finalises_before_a_restart(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    log: list[str] = []

    @app.processor(
        ticks,
        exception_policy=ExceptionPolicy.IGNORE,
        middleware=[Recorder("a", log), Recorder("b", log)],
    )
    async def proc(events: Events) -> None:
        log.append("start")
        async for tick in events.records():
            log.append(f"proc:{tick.seq}")
            if tick.seq == 0:
                raise ValueError("first one fails")

    await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1))
    running = await workers(app)
    await until(lambda: "proc:1" in log, clock)
    await running.stop()
    assert log[:9] == [
        "start",
        "a:in",
        "b:in",
        "proc:0",
        "b:exit",
        "b:finally",
        "a:exit",
        "a:finally",
        "start",  # the processor restarts only after the chain was finalised
    ]
    assert log[9:12] == ["a:in", "b:in", "proc:1"]


class Exploding(Middleware):
    async def handler(self, parent: AsyncIterator[Any], **kwargs: Any) -> AsyncIterator[Any]:
        async for x in parent:
            if x.data.get(b"data", b"").find(b'"seq":1') >= 0:
                raise RuntimeError("middleware broke")
            yield x


async def test_a_failing_middleware_goes_through_the_policy_and_the_dead_letters(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    dlq = DeadLetterMiddleware(source=ticks)
    seen: list[int] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dlq, Exploding()])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)

    await ticks.send(*[Tick(key="k", seq=i) for i in range(3)])
    running = await workers(app)
    await until(lambda: seen == [0, 2], clock)
    await running.stop()
    sink = await app.backend.log.range(dlq.sink.keys.stream(0))
    assert [e.fields[b"__error_message"] for e in sink] == [b"middleware broke"]


@pytest.mark.parametrize("policy", [ExceptionPolicy.HALT, ExceptionPolicy.QUARANTINE])
async def test_a_processor_that_returns_early_is_a_failure(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, policy: ExceptionPolicy
) -> None:
    app, ticks = one_partition(make_app)
    seen: list[int] = []

    @app.processor(ticks, exception_policy=policy)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)
            break

    await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1))
    running = await workers(app)
    if policy is ExceptionPolicy.HALT:
        assert await running.task == 1
    else:
        await until(lambda: bool(running.worker.executors[0].quarantined), clock)
        assert (await app.quarantined("proc"))[0]["error_type"] == "ProcessorReturned"
        await running.stop()
    assert seen == [0]


async def test_a_processor_raising_before_iterating_is_retried_with_backoff_under_ignore(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    calls: list[float] = []
    seen: list[int] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE)
    async def proc(events: Events) -> None:
        calls.append(clock.now())
        if len(calls) < 4:
            raise ConnectionError("database not ready")
        async for tick in events.records():
            seen.append(tick.seq)

    await ticks.send(Tick(key="k", seq=0))
    running = await workers(app)
    await until(lambda: seen == [0], clock)
    await running.stop()
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps == sorted(gaps)
    assert gaps[0] > 0


async def test_logging_a_failure_never_raises_even_with_a_hostile_exception(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    class Hostile(Exception):
        def __str__(self) -> str:
            raise RuntimeError("cannot print me")

        def __repr__(self) -> str:
            raise RuntimeError("cannot repr me")

    app, ticks = one_partition(make_app)
    seen: list[int] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 0:
                raise Hostile()
            seen.append(tick.seq)

    await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1))
    running = await workers(app)
    await until(lambda: seen == [1], clock)
    assert await running.stop() == 0


async def test_a_failed_dead_letter_write_keeps_the_event_and_retries_it_under_ignore(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks = one_partition(make_app)
    dlq = DeadLetterMiddleware(source=ticks)
    attempts: list[int] = []
    seen: list[int] = []
    log = app.backend.log
    write = log.dead_letter

    async def flaky(letter: Any) -> bytes:
        attempts.append(1)
        if len(attempts) <= 3:
            raise BackendUnavailable("sink unreachable")
        return await write(letter)

    monkeypatch.setattr(log, "dead_letter", flaky)

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dlq])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)
            if tick.seq == 1:
                raise ValueError("bad one")

    ids = await ticks.send(*[Tick(key="k", seq=i) for i in range(3)])
    running = await workers(app)
    await until(lambda: 2 in seen, clock)
    await until(lambda: len(attempts) == 4, clock)
    await until(lambda: seen.count(2) == 1, clock)
    await clock.sleep(1)
    await running.stop()
    # The failing event was redelivered until its dead letter was written, never acked
    # before that, and the events after it waited for it (order kept).
    assert seen == [0, 1, 1, 1, 1, 2]
    (letter,) = await log.range(dlq.sink.keys.stream(0))
    assert letter.fields[b"__error_id"] == ids[1]
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


async def test_a_failed_batch_is_dead_lettered_as_a_whole(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = one_partition(make_app)
    dlq = DeadLetterMiddleware(source=ticks)
    batches: list[list[int]] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dlq])
    async def proc(events: Events) -> None:
        async for batch in events.take(3, within=1).records():
            batches.append([t.seq for t in batch])
            if any(t.seq == 4 for t in batch):
                raise ValueError("bad batch")

    ids = await ticks.send(*[Tick(key="k", seq=i) for i in range(9)])
    running = await workers(app)
    await until(lambda: len(batches) == 3, clock)
    await clock.sleep(1)
    await running.stop()
    assert batches == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    letters = await app.backend.log.range(dlq.sink.keys.stream(0))
    assert [e.fields[b"__error_id"] for e in letters] == ids[3:6]
    assert {e.fields[b"__error_message"] for e in letters} == {b"bad batch"}
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


async def test_a_dead_letter_stream_that_cannot_be_prepared_keeps_the_event(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks = one_partition(make_app)
    dlq = DeadLetterMiddleware(source=ticks)
    store = dlq.sink.store  # what the workers write dead letters through
    prepare = store.prepare
    tries: list[int] = []

    async def flaky_prepare() -> None:
        tries.append(1)
        if len(tries) <= 2:
            raise BackendUnavailable("cannot reach the sink")
        await prepare()

    monkeypatch.setattr(store, "prepare", flaky_prepare)
    seen: list[int] = []

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dlq])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)
            if tick.seq == 0:
                raise ValueError("bad")

    ids = await ticks.send(Tick(key="k", seq=0), Tick(key="k", seq=1))
    running = await workers(app)
    await until(lambda: 1 in seen, clock)
    await clock.sleep(1)
    await running.stop()
    assert seen == [0, 0, 0, 1]
    (letter,) = await app.backend.log.range(dlq.sink.keys.stream(0))
    assert letter.fields[b"__error_id"] == ids[0]
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []
