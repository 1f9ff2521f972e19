"""Keyed ticks whose processor records when user code received each one.

Like :mod:`ordering`, but every ``seen`` result is written as soon as the processor gets the
event (before any work) and also carries ``at``, the wall-clock time (``time.time()``) at
that moment: the test runs on the same host, so it can time handoffs and recoveries from
the processes' own records. The partition count is a knob too.

Knobs: ``ENGINE_TEST_PARTITIONS`` (default 8), ``ENGINE_TEST_DELAY`` (seconds of awaited
work per event) and ``ENGINE_TEST_BLOCK`` (seconds of blocking work per event: it holds the
event loop like a CPU-bound handler does).
"""

from __future__ import annotations

import asyncio
import time

from runnel import App, Events, Stream

from .common import Results, Tick, app_name, env_float

PARTITIONS = 8


def build(
    name: str,
    redis_url: str | None = None,
    partitions: int = PARTITIONS,
    delay: float = 0.0,
    block: float = 0.0,
) -> tuple[App, Stream[Tick]]:
    """A ``ticks`` stream of ``partitions`` partitions with one processor, ``proc``."""
    app = App(name=name, redis_url=redis_url)
    ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=partitions)
    results = Results(app)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            at = time.time()
            tick = event.record()
            await results.add(
                "seen",
                key=tick.key,
                seq=tick.seq,
                id=event.id.decode(),
                partition=event.partition.number,
                epoch=event.epoch,
                at=at,
            )
            if delay:
                await asyncio.sleep(delay)
            if block:
                time.sleep(block)  # noqa: ASYNC251 - holding the loop is the point

    return app, ticks


app, ticks = build(
    app_name(),
    partitions=int(env_float("ENGINE_TEST_PARTITIONS", PARTITIONS)),
    delay=env_float("ENGINE_TEST_DELAY", 0.0),
    block=env_float("ENGINE_TEST_BLOCK", 0.0),
)
