"""IGNORE plus the dead-letter middleware: failed and undecodable ticks go to ``ticks.dead``."""

from __future__ import annotations

from runnel import App, Events, ExceptionPolicy, Stream
from runnel.middleware import DeadLetterMiddleware

from .common import Results, Tick, app_name, by_number

PARTITIONS = 2


def build(name: str, redis_url: str | None = None) -> tuple[App, Stream[Tick]]:
    """A ``ticks`` stream whose ``proc`` fails on poisoned ticks, dead-lettering them."""
    app = App(name=name, redis_url=redis_url)
    ticks = app.stream(
        "ticks", record=Tick, partition_by="key", partition_count=PARTITIONS, hasher=by_number
    )
    dead_letter = DeadLetterMiddleware(source=ticks)
    results = Results(app)

    @app.processor(ticks, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead_letter])
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if await results.poisoned(tick):
                raise KeyError(f"no such thing as {tick.key}:{tick.seq}")
            await results.add("seen", key=tick.key, seq=tick.seq)

    return app, ticks


app, ticks = build(app_name())
