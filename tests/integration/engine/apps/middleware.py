"""Two recording middlewares around a processor that fails on its first (poisoned) tick."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from runnel import App, Events, ExceptionPolicy, Middleware, Stream

from .common import Results, Tick, app_name


class Recorder(Middleware):
    """Records entering an item, a GeneratorExit at its yield, and its finalisation."""

    def __init__(self, name: str, results: Results) -> None:
        self.name = name
        self.results = results

    async def handler(self, parent: AsyncIterator[Any], **kwargs: Any) -> AsyncIterator[Any]:
        async for item in parent:
            await self.results.add("log", step=f"{self.name}:in")
            try:
                yield item
            except GeneratorExit:
                await self.results.add("log", step=f"{self.name}:exit")
                raise
            finally:
                await self.results.add("log", step=f"{self.name}:finally")


def build(name: str, redis_url: str | None = None) -> tuple[App, Stream[Tick]]:
    """A one-partition ``ticks`` stream; ``proc`` runs under middleware ``a`` then ``b``."""
    app = App(name=name, redis_url=redis_url)
    ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=1)
    results = Results(app)

    @app.processor(
        ticks,
        exception_policy=ExceptionPolicy.IGNORE,
        middleware=[Recorder("a", results), Recorder("b", results)],
    )
    async def proc(events: Events) -> None:
        await results.add("log", step="start")
        async for tick in events.records():
            await results.add("log", step=f"proc:{tick.seq}")
            if await results.poisoned(tick):
                raise ValueError(f"tick {tick.seq} fails")

    return app, ticks


app, ticks = build(app_name())
