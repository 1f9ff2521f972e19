"""A local timer every 0.5 s whose first run raises and whose second overruns its interval."""

from __future__ import annotations

import asyncio

from runnel import App

from .common import Results, app_name, results_key


def build(name: str, redis_url: str | None = None) -> App:
    """An app with one background timer, ``ticker``, recording each run's start and end."""
    app = App(name=name, redis_url=redis_url)
    results = Results(app)

    @app.timer(interval=0.5)
    async def ticker() -> None:
        run = int(await results.client.incr(results_key(app.name, "runs")))
        await results.add("log", step="start", run=run)
        if run == 1:
            raise RuntimeError("the first run of ticker fails")
        if run == 2:
            await asyncio.sleep(0.8)  # overruns the next tick: it must not start meanwhile
        await results.add("log", step="end", run=run)

    return app


app = build(app_name())
