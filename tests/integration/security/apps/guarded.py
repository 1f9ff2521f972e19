"""An app that exercises everything a worker does under a least-privilege ACL user.

``ticks`` (2 partitions) is processed by ``proc`` under IGNORE with the dead-letter
middleware; ticks listed in the poison set fail and are dead-lettered. A leader-only timer
ticks every second. Results go to Redis through ``RESULTS_URL`` (another user), so the app's
own user needs no right beyond runnel's.
"""

from __future__ import annotations

import json
import os

from redis.asyncio import Redis

from runnel import App, Events, ExceptionPolicy
from runnel.middleware import DeadLetterMiddleware

from ...engine.apps.common import Tick, app_name, by_number, poison_key, results_key

RESULTS_URL = "RESULTS_URL"

PARTITIONS = 2


def build(name: str, redis_url: str | None = None) -> App:
    """The app, its stream ``ticks`` and processor ``proc``."""
    app = App(name=name, redis_url=redis_url)
    ticks = app.stream(
        "ticks", record=Tick, partition_by="key", partition_count=PARTITIONS, hasher=by_number
    )
    dead_letter = DeadLetterMiddleware(source=ticks)
    results: list[Redis] = []

    def client() -> Redis:
        if not results:
            results.append(Redis.from_url(os.environ[RESULTS_URL]))
        return results[0]

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead_letter])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if await client().sismember(poison_key(app.name), f"{tick.key}:{tick.seq}"):
                raise ValueError(f"poisoned tick {tick.key}:{tick.seq}")
            await client().rpush(
                results_key(app.name, "seen"), json.dumps({"key": tick.key, "seq": tick.seq})
            )

    @app.timer(interval=1.0, on_leader=True)
    async def beat() -> None:
        await client().rpush(results_key(app.name, "beat"), "1")

    return app


app = build(app_name())
ticks = app.streams["ticks"]
proc = app.processors["proc"].func
