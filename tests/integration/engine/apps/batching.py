"""``take(10, within=1)`` over one partition: every batch is recorded as a list of seqs."""

from __future__ import annotations

from runnel import App, Events, Stream

from .common import Results, Tick, app_name


def build(name: str, redis_url: str | None = None) -> tuple[App, Stream[Tick]]:
    """A one-partition ``ticks`` stream processed in batches of up to 10."""
    app = App(name=name, redis_url=redis_url)
    ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=1)
    results = Results(app)

    @app.processor(ticks)
    async def batches(events: Events) -> None:
        async for batch in events.take(10, within=1).records():
            await results.add("batch", seqs=[tick.seq for tick in batch])

    return app, ticks


app, ticks = build(app_name())
