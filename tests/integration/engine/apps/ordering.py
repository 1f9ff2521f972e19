"""Keyed ticks over 8 partitions; each processed tick is recorded with its entry id.

Knobs: ``ENGINE_TEST_DELAY`` (seconds of work per event) and ``ENGINE_TEST_PARTITION_SIZE``.
"""

from __future__ import annotations

import asyncio
import time

from runnel import App, Events, Stream

from .common import Results, Tick, app_name, env_float

PARTITIONS = 8


def build(
    name: str, redis_url: str | None = None, delay: float = 0.0, partition_size: int | None = None
) -> tuple[App, Stream[Tick]]:
    """A ``ticks`` stream with one processor, ``proc``, recording every tick it handles."""
    app = App(name=name, redis_url=redis_url)
    ticks = app.stream(
        "ticks",
        record=Tick,
        partition_by="key",
        partition_count=PARTITIONS,
        partition_size=partition_size,
    )
    results = Results(app)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            at = time.time()  # when the event reached this code
            tick = event.record()
            if delay:
                await results.add(
                    "began",
                    key=tick.key,
                    seq=tick.seq,
                    partition=event.partition.number,
                    epoch=event.epoch,
                    at=at,
                )
                await asyncio.sleep(delay)
            await results.add(
                "seen",
                key=tick.key,
                seq=tick.seq,
                id=event.id.decode(),
                partition=event.partition.number,
                epoch=event.epoch,
            )

    return app, ticks


_size = env_float("ENGINE_TEST_PARTITION_SIZE", 0)
app, ticks = build(
    app_name(),
    delay=env_float("ENGINE_TEST_DELAY", 0.0),
    partition_size=int(_size) if _size else None,
)
