"""Leader-only background work: a 0.5 s timer and a crontab every second.

Each run records the tick it claimed: the slot the engine stored in ``__sched:{app}.{task}``
just before calling the function.
"""

from __future__ import annotations

from runnel import App
from runnel.domain.keys import schedule_key

from .common import Results, app_name


def build(name: str, redis_url: str | None = None) -> App:
    """An app with ``leader_tick`` (timer) and ``leader_cron`` (crontab), both on_leader."""
    app = App(name=name, redis_url=redis_url)
    results = Results(app)

    async def record(task: str) -> None:
        claimed = await results.client.get(schedule_key(app.name, task))
        text = claimed.decode() if isinstance(claimed, bytes) else str(claimed or "")
        slot = text.split("|", 1)[0]
        await results.add(task, slot=slot)

    @app.timer(interval=0.5, on_leader=True)
    async def leader_tick() -> None:
        await record("leader_tick")

    @app.crontab("* * * * * */1", on_leader=True)
    async def leader_cron() -> None:
        await record("leader_cron")

    return app


app = build(app_name())
