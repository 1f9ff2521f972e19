"""The apps the benchmark's worker processes run (``python -m runnel worker MODULE:app``).

Every app has one stream, ``events`` (16 partitions, runnel's defaults), and one processor,
``consume``. The app name comes from ``BENCH_APP_NAME`` so that each measured run uses its
own keys; the Redis URL is given to the worker with ``--redis-url``. Settings are runnel's
defaults except ``default_join_delay=0``, which only shortens start-up (the benchmark gates
the events until every partition is held, so no measured event waits for it).
"""

from __future__ import annotations

import atexit
import os
import time
from array import array
from typing import Any, Literal

from benchmarks.records import RecordKind, record_type
from benchmarks.samples import write_latencies
from runnel import App, Events, Record, Stream
from runnel.settings import TrimMode

Mode = Literal[
    "single",
    "take",
    "latency",
    "none",
    "pipeline",
    "pipeline_eo",
    "pipeline_take",
    "pipeline_take_eo",
]

STREAM = "events"
PROCESSOR = "consume"
PARTITIONS = 16
LARGE_PARTITIONS = 4
"""Partitions of the large-events app (``benchmarks.apps.large``)."""
TAKE_SIZE = 100
TAKE_WITHIN = 0.05
"""Seconds ``take(100, within=...)`` waits for a batch to fill before yielding it short."""

APP_NAME_ENV = "BENCH_APP_NAME"
LATENCY_OUT_ENV = "BENCH_LATENCY_OUT"


def app_name() -> str:
    """The app name for this process (``BENCH_APP_NAME``, default ``bench``)."""
    return os.environ.get(APP_NAME_ENV, "bench")


def build(
    kind: RecordKind,
    mode: Mode,
    name: str | None = None,
    url: str | None = None,
    trim_mode: TrimMode | None = None,
    partition_count: int = PARTITIONS,
) -> tuple[App, Stream[Any]]:
    """An App with the ``events`` stream of ``kind`` records and a ``consume`` processor.

    ``mode``: ``single`` iterates records one at a time, ``take`` in batches of 100,
    ``latency`` one at a time noting each record's age, ``none`` declares no processor.
    The ``pipeline`` modes keep a running amount per account and send it to the
    ``outputs`` stream for every record, at least once (``pipeline``: a dict in memory,
    a send per record, or per batch with ``pipeline_take``) or effectively once
    (``pipeline_eo``, ``pipeline_take_eo``: keyed state, outputs committed with the
    acknowledgement).
    """
    settings: dict[str, Any] = {"default_join_delay": 0}
    if url is not None:
        settings["redis_url"] = url
    app = App(name=name or app_name(), **settings)
    stream: Stream[Any] = app.stream(
        STREAM,
        record=record_type(kind),
        partition_by="id",
        partition_count=partition_count,
        trim_mode=trim_mode,
    )
    if mode.startswith("pipeline"):
        _pipeline(app, stream, mode)
    elif mode == "single":

        @app.processor(stream, name=PROCESSOR)
        async def consume_single(events: Events) -> None:
            async for _record in events.records():
                pass

    elif mode == "take":

        @app.processor(stream, name=PROCESSOR)
        async def consume_take(events: Events) -> None:
            async for _batch in events.take(TAKE_SIZE, within=TAKE_WITHIN).records():
                pass

    elif mode == "latency":
        ids, ages = _latency_sink()

        @app.processor(stream, name=PROCESSOR)
        async def consume_latency(events: Events) -> None:
            clock = time.monotonic_ns
            async for record in events.records():
                ages.append(clock() - record.sent_ns)
                ids.append(record.id)

    return app, stream


def _pipeline(app: App, stream: Stream[Any], mode: Mode) -> None:
    """The running-amount pipeline of a ``pipeline`` mode (see :func:`build`)."""
    outputs = app.stream("outputs", record=Amount, partition_by="account", partition_count=4)
    if mode == "pipeline":
        totals: dict[str, float] = {}

        @app.processor(stream, name=PROCESSOR)
        async def at_least_once(events: Events) -> None:
            async for r in events.records():
                totals[r.account] = total = totals.get(r.account, 0.0) + r.amount
                await outputs.send(Amount(account=r.account, total=total))

    elif mode == "pipeline_take":
        sums: dict[str, float] = {}

        @app.processor(stream, name=PROCESSOR)
        async def at_least_once_batches(events: Events) -> None:
            async for batch in events.take(TAKE_SIZE, within=TAKE_WITHIN).records():
                out = []
                for r in batch:
                    sums[r.account] = total = sums.get(r.account, 0.0) + r.amount
                    out.append(Amount(account=r.account, total=total))
                await outputs.send(*out)

    elif mode == "pipeline_eo":

        @app.processor(stream, name=PROCESSOR, guarantee="effectively_once", state=float)
        async def effectively_once(events: Events) -> None:
            async for r in events.records():
                total = events.state.increment(r.account, r.amount)
                await outputs.send(Amount(account=r.account, total=total))

    else:

        @app.processor(stream, name=PROCESSOR, guarantee="effectively_once", state=float)
        async def effectively_once_batches(events: Events) -> None:
            async for batch in events.take(TAKE_SIZE, within=TAKE_WITHIN).records():
                out = [
                    Amount(account=r.account, total=events.state.increment(r.account, r.amount))
                    for r in batch
                ]
                await outputs.send(*out)


class Amount(Record, primitive=True):
    """A running amount of one account (the pipelines' output)."""

    account: str
    total: float


def _latency_sink() -> tuple[array[int], array[int]]:
    """Arrays of (record id, age in ns), written to ``BENCH_LATENCY_OUT`` at exit."""
    ids: array[int] = array("q")
    ages: array[int] = array("q")
    path = os.environ.get(LATENCY_OUT_ENV)
    if path:
        atexit.register(write_latencies, path, ids, ages)
    return ids, ages
