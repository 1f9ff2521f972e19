"""One stream and processor per exception policy; ticks listed in the poison set fail.

Keys ``k<n>`` go to partition ``n`` of 2, so a test knows which partition a tick is in.
Run one processor per worker with ``--processors halting|quarantining|ignoring``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runnel import App, Events, ExceptionPolicy

from .common import Results, Tick, app_name, by_number

PARTITIONS = 2


def build(name: str, redis_url: str | None = None) -> App:
    """Streams ``halt``, ``quarantine`` and ``ignore``, processed by ``halting``,
    ``quarantining`` and ``ignoring`` under the policy of the same name."""
    app = App(name=name, redis_url=redis_url)
    results = Results(app)

    def register(stream_name: str, policy: ExceptionPolicy) -> Callable[..., Any]:
        stream = app.stream(
            stream_name,
            record=Tick,
            partition_by="key",
            partition_count=PARTITIONS,
            hasher=by_number,
        )

        async def proc(events: Events) -> None:
            async for event in events:
                tick = event.record()
                if await results.poisoned(tick):
                    raise ValueError(f"poisoned tick {tick.key}:{tick.seq}")
                await results.add("seen", key=tick.key, seq=tick.seq, id=event.id.decode())

        proc.__name__ = {
            ExceptionPolicy.HALT: "halting",
            ExceptionPolicy.QUARANTINE: "quarantining",
            ExceptionPolicy.IGNORE: "ignoring",
        }[policy]
        return app.processor(stream, exception_policy=policy)(proc)

    register("halt", ExceptionPolicy.HALT)
    register("quarantine", ExceptionPolicy.QUARANTINE)
    register("ignore", ExceptionPolicy.IGNORE)
    return app


app = build(app_name())
# The CLI names processors as module:function (``runnel quarantine list ...:quarantining``).
halting = app.processors["halting"].func
quarantining = app.processors["quarantining"].func
ignoring = app.processors["ignoring"].func
