"""Context variables seen by user code, and the fields every log record carries."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runnel import App, Events, context
from runnel.adapters.memory.clock import SimulatedClock
from runnel.entrypoints.logs import ContextFilter, JsonFormatter

from .conftest import Tick, ticks_app, until


def visible() -> dict[str, Any]:
    return {
        "worker": context.worker_id.get(None),
        "executor": context.executor_id.get(None),
        "processor": context.processor_name.get(None),
        "stream": context.stream_name.get(None),
        "partition": context.partition.get(None),
    }


async def test_processors_see_their_own_context_and_tasks_only_the_worker(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=2)
    seen: dict[str, dict[str, Any]] = {}

    @app.processor(ticks, name="one")
    async def one(events: Events) -> None:
        async for event in events:
            seen["one"] = {**visible(), "event": event.partition}

    @app.processor(ticks, name="two")
    async def two(events: Events) -> None:
        async for _ in events:
            seen["two"] = visible()

    @app.task
    async def startup() -> None:
        seen["task"] = visible()

    await ticks.send(Tick(key="a", seq=0))
    running = await workers(app, worker_id="w-ctx")
    await until(lambda: len(seen) == 3, clock)
    await running.stop()
    one_ctx, two_ctx = seen["one"], seen["two"]
    assert one_ctx["worker"] == two_ctx["worker"] == "w-ctx"
    assert one_ctx["processor"] == "one"
    assert two_ctx["processor"] == "two"
    assert one_ctx["executor"] != two_ctx["executor"]
    assert one_ctx["executor"].startswith("w-ctx-one-")
    assert one_ctx["stream"] == "ticks"
    assert one_ctx["partition"] == one_ctx["event"]
    assert seen["task"] == {
        "worker": "w-ctx",
        "executor": None,
        "processor": None,
        "stream": None,
        "partition": None,
    }


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("runnel")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


async def test_json_logs_name_the_worker_executor_stream_and_partition(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, json_log: io.StringIO
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=2)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for _ in events:
            logging.getLogger("runnel.test").info("handled one")

    await ticks.send(Tick(key="a", seq=0))
    running = await workers(app, worker_id="w-log")
    await until(lambda: "handled one" in json_log.getvalue(), clock)
    await running.stop()
    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    acquired = [r for r in records if r["message"].startswith("acquired ticks.")]
    assert sorted(r["partition"] for r in acquired) == [0, 1]
    for record in acquired:
        assert record["worker"] == "w-log"
        assert record["processor"] == "proc"
        assert record["stream"] == "ticks"
        assert record["executor"].startswith("w-log-proc-")
    (handled,) = [r for r in records if r["message"] == "handled one"]
    assert handled["partition"] == ticks.partition_for(Tick(key="a", seq=0))
    assert handled["stream"] == "ticks"
