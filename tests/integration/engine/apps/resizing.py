"""Keyed ticks over 4 partitions, for growing the stream while workers and a sender run.

``app``: processor ``proc`` records every tick it handles (``seen``), after
``ENGINE_TEST_DELAY`` seconds of work. Run as a module (``python -m ...resizing``), it is
the sender: rounds of one tick per key (``ENGINE_TEST_KEYS`` keys, numbered per key) until
the test sets the stop key, awaiting each send so every key is sent in order; then it
records how many rounds it sent (``sent``).
"""

from __future__ import annotations

import asyncio

from runnel import App, Events, Stream

from .common import Results, Tick, app_name, env_float, results_key

PARTITIONS = 4


def build(name: str, delay: float = 0.0) -> tuple[App, Stream[Tick], Results]:
    """The ``ticks`` stream and its recording processor."""
    app = App(name=name)
    ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=PARTITIONS)
    results = Results(app)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            tick = event.record()
            if delay:
                await asyncio.sleep(delay)
            await results.add("seen", key=tick.key, seq=tick.seq, partition=event.partition.number)

    return app, ticks, results


def stop_key(app: str) -> str:
    """Set by the test to stop the sender."""
    return results_key(app, "stop")


app, ticks, results = build(app_name(), delay=env_float("ENGINE_TEST_DELAY", 0.0))


async def send_until_stopped() -> None:
    """The sender process: rounds of one tick per key until the stop key is set."""
    keys = int(env_float("ENGINE_TEST_KEYS", 16))
    pause = env_float("ENGINE_TEST_SEND_PAUSE", 0.01)
    rounds = 0
    try:
        while not await results.client.exists(stop_key(app.name)):
            await ticks.send(*[Tick(key=f"k{k}", seq=rounds) for k in range(keys)])
            rounds += 1
            if rounds == 1 or rounds % 50 == 0:
                await results.add("progress", rounds=rounds, partitions=ticks.partition_count)
            await asyncio.sleep(pause)
    finally:
        await results.add("sent", rounds=rounds, keys=keys, partitions=ticks.partition_count)
        await app.close()


if __name__ == "__main__":
    asyncio.run(send_until_stopped())
