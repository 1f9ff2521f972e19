"""Keyed events for the fault suite: every event handled is recorded with its timings.

Each event is recorded as ``done`` when its work has finished: key, seq, partition, entry
id, lease epoch, pid, ``began`` (when it reached user code) and ``done`` (when the work
finished), both ``time.time()`` on the one host the suite runs on. Events of the slow keys
are also recorded as ``began`` as soon as they arrive, before their awaited work, so a test
can act while one of them is in flight. The payload (``pad``) is never recorded.

Knobs: ``ENGINE_TEST_PARTITIONS`` (default 12), ``ENGINE_TEST_DELAY`` (seconds of awaited
work per event), ``ENGINE_TEST_SLOW_KEYS`` (comma-separated keys) with
``ENGINE_TEST_SLOW_DELAY`` (seconds of awaited work for each of their events), and
``ENGINE_TEST_RESULTS_URL`` (where the records go, see :mod:`.common`).
"""

from __future__ import annotations

import asyncio
import os
import time

from runnel import App, Events, Record, Stream

from .common import Results, app_name, env_float

PARTITIONS = 12
PROCESSOR = "proc"


class Load(Record):
    """A keyed event: ``seq`` numbers each key's events 0, 1, 2, ... in send order; ``pad``
    makes it as large as a test needs."""

    key: str
    seq: int
    pad: str = ""


def build(
    name: str,
    redis_url: str | None = None,
    partitions: int = PARTITIONS,
    delay: float = 0.0,
    slow_keys: frozenset[str] = frozenset(),
    slow_delay: float = 0.0,
) -> tuple[App, Stream[Load]]:
    """A ``loads`` stream of ``partitions`` partitions with one processor, ``proc``."""
    app = App(name=name, redis_url=redis_url)
    loads = app.stream("loads", record=Load, partition_by="key", partition_count=partitions)
    results = Results(app)

    @app.processor(loads, name=PROCESSOR)
    async def proc(events: Events) -> None:
        async for event in events:
            began = time.time()
            load = event.record()
            where = {
                "key": load.key,
                "seq": load.seq,
                "partition": event.partition.number,
                "id": event.id.decode(),
                "epoch": event.epoch,
            }
            work = delay
            if load.key in slow_keys:
                await results.add("began", **where, began=began)
                work = slow_delay
            if work:
                await asyncio.sleep(work)
            await results.add("done", **where, began=began, done=time.time())

    return app, loads


app, loads = build(
    app_name(),
    partitions=int(env_float("ENGINE_TEST_PARTITIONS", PARTITIONS)),
    delay=env_float("ENGINE_TEST_DELAY", 0.0),
    slow_keys=frozenset(k for k in os.environ.get("ENGINE_TEST_SLOW_KEYS", "").split(",") if k),
    slow_delay=env_float("ENGINE_TEST_SLOW_DELAY", 0.0),
)
