"""The operations tests' app: a HALT processor, a dead-lettering one and its collector.

Keys ``k<n>`` go to partition ``n`` of 4. Ticks in the poison set fail.
"""

from __future__ import annotations

from runnel import App, Events, ExceptionPolicy
from runnel.middleware import DeadLetterMiddleware, UndecodableLetter
from tests.integration.engine.apps.common import Results, Tick, app_name, by_number

PARTITIONS = 4


def build(name: str, redis_url: str | None = None) -> App:
    """``orders`` charged by ``charge`` (HALT); ``actions`` acted on by ``act`` (IGNORE,
    dead letters to ``actions.dead``), whose letters ``collect`` reads with records()."""
    app = App(name=name, redis_url=redis_url)
    results = Results(app)
    orders = app.stream(
        "orders", record=Tick, partition_by="key", partition_count=PARTITIONS, hasher=by_number
    )
    actions = app.stream(
        "actions", record=Tick, partition_by="key", partition_count=PARTITIONS, hasher=by_number
    )
    dead = DeadLetterMiddleware(source=actions)

    @app.processor(orders, exception_policy=ExceptionPolicy.HALT)
    async def charge(events: Events) -> None:
        async for tick in events.records():
            if await results.poisoned(tick):
                raise ValueError(f"cannot charge {tick.key}:{tick.seq}")
            await results.add("charged", key=tick.key, seq=tick.seq)

    @app.processor(actions, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead])
    async def act(events: Events) -> None:
        async for tick in events.records():
            if await results.poisoned(tick):
                raise KeyError(f"{tick.key}:{tick.seq}")
            await results.add("acted", key=tick.key, seq=tick.seq)

    @app.processor(dead.sink)
    async def collect(events: Events) -> None:
        async for letter in events.records():
            if isinstance(letter, UndecodableLetter):
                await results.add(
                    "undecodable",
                    raw=letter.fields.get(b"data", b"").decode("latin-1"),
                    error=letter.decode_error,
                    source_id=letter.failure.source_id,
                )
            else:
                await results.add("letter", key=letter.key, seq=letter.seq)

    async def twice(events: Events) -> None:
        async for _ in events:
            pass

    app.processor(orders, name="first")(twice)
    app.processor(orders, name="second")(twice)
    return app


app = build(app_name())
twice = app.processors["first"].func
orders = app.streams["orders"]
actions = app.streams["actions"]
