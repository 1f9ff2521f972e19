"""Four streams whose processors run under one exception policy chosen by the environment.

``HOSTILE_POLICY`` is ``halt``, ``quarantine``, ``ignore`` or ``deadletter`` (IGNORE with
the dead-letter middleware). Every stream has one partition, so a hostile entry and the
good events sent after it share it. Processors record each good event they handle.
"""

from __future__ import annotations

import os
from typing import Any

from runnel import App, Events, ExceptionPolicy, Record, Stream
from runnel.adapters.compressors import GzipCompressor, LZ4Compressor
from runnel.middleware import DeadLetterMiddleware

from ...engine.apps.common import Results, Tick, app_name

POLICY_ENV = "HOSTILE_POLICY"

POLICIES = {
    "halt": ExceptionPolicy.HALT,
    "quarantine": ExceptionPolicy.QUARANTINE,
    "ignore": ExceptionPolicy.IGNORE,
    "deadletter": ExceptionPolicy.IGNORE,
}


class Flat(Record, primitive=True):
    """A primitive record: one stream field per record field."""

    key: str
    seq: int
    ratio: float
    on: bool


def build(
    name: str, policy: str, redis_url: str | None = None
) -> tuple[App, dict[str, Stream[Any]]]:
    """Streams ``plain`` (JSON), ``gz`` (JSON+gzip), ``lz4`` (JSON+LZ4) and ``flat``
    (primitive), each processed by ``<stream>_proc`` under ``policy``."""
    app = App(name=name, redis_url=redis_url)
    results = Results(app)
    streams: dict[str, Stream[Any]] = {
        "plain": app.stream("plain", record=Tick, partition_by="key", partition_count=1),
        "gz": app.stream(
            "gz", record=Tick, partition_by="key", partition_count=1, compressor=GzipCompressor()
        ),
        "lz4": app.stream(
            "lz4", record=Tick, partition_by="key", partition_count=1, compressor=LZ4Compressor()
        ),
        "flat": app.stream("flat", record=Flat, partition_by="key", partition_count=1),
    }
    for stream_name, stream in streams.items():
        middleware = [DeadLetterMiddleware(source=stream)] if policy == "deadletter" else []

        async def proc(events: Events, stream_name: str = stream_name) -> None:
            async for event in events:
                record = event.record()
                await results.add("seen", stream=stream_name, key=record.key, seq=record.seq)

        proc.__name__ = f"{stream_name}_proc"
        app.processor(stream, exception_policy=POLICIES[policy], middleware=middleware)(proc)
    return app, streams


app, streams = build(app_name(), os.environ.get(POLICY_ENV, "ignore"))
