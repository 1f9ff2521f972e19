"""Large keyed events over 4 partitions; each processed event is recorded with its seq.

Knob: ``ENGINE_TEST_DELAY`` (seconds of work per event, so the fetcher runs ahead).
"""

from __future__ import annotations

import asyncio

from runnel import App, Events, Record, Stream

from .common import Results, app_name, env_float

PARTITIONS = 4


class Blob(Record):
    """An event carrying ``payload`` (megabytes of text)."""

    key: str
    seq: int
    payload: str


def build(name: str, redis_url: str | None = None, delay: float = 0.0) -> tuple[App, Stream[Blob]]:
    """A ``blobs`` stream with one processor, ``proc``, recording every event it handles."""
    app = App(name=name, redis_url=redis_url)
    blobs = app.stream("blobs", record=Blob, partition_by="key", partition_count=PARTITIONS)
    results = Results(app)

    @app.processor(blobs)
    async def proc(events: Events) -> None:
        async for blob in events.records():
            if delay:
                await asyncio.sleep(delay)
            await results.add("seen", key=blob.key, seq=blob.seq, size=len(blob.payload))

    return app, blobs


app, blobs = build(app_name(), delay=env_float("ENGINE_TEST_DELAY", 0.0))
