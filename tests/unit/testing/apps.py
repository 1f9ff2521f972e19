"""Small apps for the harness tests, each built fresh with a unique name."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from runnel import App, Events, Record, Stream, context

UNREACHABLE = "redis://127.0.0.1:1/0"
"""A production-style URL no server answers: the harness must never try it."""


class Tick(Record):
    """An event: ``seq`` numbers each key's events 0, 1, 2, ..."""

    key: str
    seq: int


def new_app(**settings: Any) -> App:
    """An app with a unique name and four partitions, configured for a Redis nobody runs."""
    settings.setdefault("default_partition_count", 4)
    return App(name=f"t{uuid4().hex[:8]}", redis_url=UNREACHABLE, **settings)


def ticks(count: int, keys: int = 4) -> list[Tick]:
    """``count`` ticks spread over ``keys`` keys, numbered per key."""
    return [Tick(key=f"k{i % keys}", seq=i // keys) for i in range(count)]


@dataclass
class Seen:
    """What a processor's own code saw: (worker, key, seq) per event, in order."""

    handled: list[tuple[str, str, int]] = field(default_factory=list)

    def by_key(self) -> dict[str, list[int]]:
        """Per key, the sequence numbers in the order they were handled."""
        result: dict[str, list[int]] = {}
        for _, key, seq in self.handled:
            result.setdefault(key, []).append(seq)
        return result


def counting_app(work: float = 0.0, **settings: Any) -> tuple[App, Stream[Tick], Seen]:
    """An app whose processor ``proc`` notes every tick and sleeps ``work`` seconds on it."""
    app = new_app(**settings)
    stream = app.stream("ticks", record=Tick, partition_by="key")
    seen = Seen()

    @app.processor(stream)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.handled.append((context.worker_id.get(), tick.key, tick.seq))
            if work:
                await asyncio.sleep(work)

    return app, stream, seen
