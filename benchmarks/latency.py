"""End-to-end latency at a steady rate (1000 events/s by default).

The benchmark process sends one primitive ``Tick`` per call on a fixed schedule; each
record carries ``sent_ns``, the monotonic clock (system-wide on Linux) read just before
its send. The consumer notes ``now - sent_ns`` when the record reaches the processor
(runnel: the ``async for`` body; raw: right after validation) and writes the ages out
when stopped. Latency therefore covers the send call, the consumer's wake-up, read,
decoding and hand-over. The first ``latency_warmup`` records are discarded.

Runnel is the worker and ``stream.send``; the baseline is the raw consumer process
(blocking ``XREADGROUP`` over the 16 partitions) fed by plain ``XADD ... MAXLEN``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from benchmarks.apps import PARTITIONS, build
from benchmarks.baseline import RawSender
from benchmarks.common import Context, alternate, in_order
from benchmarks.harness import (
    BenchError,
    Consumer,
    Watcher,
    keys_of,
    lock_keys,
    start_raw,
    start_worker,
    stop_all,
)
from benchmarks.records import Tick, tick
from benchmarks.report import Row, Target
from benchmarks.samples import read_latencies


@dataclass(frozen=True)
class Percentiles:
    """Latency of one run, in milliseconds."""

    p50: float
    p99: float
    max: float
    count: int


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (``q`` in 0..1)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def measure(ctx: Context, impl: str) -> Percentiles:
    """One run of the latency scenario by ``impl`` (``runnel`` or ``raw``)."""
    sizes = ctx.sizes
    app_name = f"b-latency-{impl}"
    await ctx.fresh()
    app, stream = build("primitive", "latency", name=app_name, url=ctx.url)
    await stream.prepare()  # metadata and the consumer group, before the consumer starts
    keys = keys_of(app_name, PARTITIONS)
    out = ctx.logdir / f"{app_name}-{time.monotonic_ns()}.lat"
    watcher = Watcher(ctx.client, keys)
    consumers: list[Consumer] = []
    send: Callable[[Tick], Awaitable[list[bytes]]]
    route: Callable[[Tick], str]
    if impl == "runnel":
        consumers.append(start_worker("latency", ctx.url, app_name, ctx.logdir, 0, str(out)))
        ready_locks: list[str] | None = lock_keys(app_name, PARTITIONS)

        async def send_runnel(record: Tick) -> list[bytes]:
            return await stream.send(record)

        def route_runnel(record: Tick) -> str:
            return stream.partition_key_name(stream.partition_for(record))

        send, route = send_runnel, route_runnel
    else:
        consumers.append(start_raw(ctx.url, "primitive", keys, ctx.logdir, app_name, 0, str(out)))
        ready_locks = None
        sender = RawSender(ctx.client, keys, stream.partition_size)

        async def send_raw(record: Tick) -> list[bytes]:
            return await sender.send([record])

        send, route = send_raw, sender.route

    last = dict.fromkeys(keys, b"0-0")
    try:
        await watcher.wait_ready(consumers, ready_locks, 1, sizes.ready_timeout)
        count = int(sizes.latency_seconds * sizes.latency_rate)
        interval = 1.0 / sizes.latency_rate
        clock = time.monotonic_ns
        start = time.perf_counter()
        for i in range(count):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            record = tick(i, sent_ns=clock())
            (entry_id,) = await send(record)
            last[route(record)] = entry_id
        await watcher.wait_done([last[k] for k in keys], consumers, sizes.done_timeout)
    finally:
        codes = stop_all(consumers)
        await app.close()
    if any(codes):
        raise BenchError(f"{consumers[0].name} exited with {codes[0]}:\n{consumers[0].log_tail()}")
    ages = read_latencies(str(out))
    out.unlink(missing_ok=True)
    kept = sorted(age / 1e6 for i, age in ages.items() if i >= sizes.latency_warmup)
    if len(ages) < count:
        raise BenchError(f"{impl}: only {len(ages)} of {count} records were noted")
    return Percentiles(percentile(kept, 0.5), percentile(kept, 0.99), kept[-1], len(kept))


async def latency(ctx: Context) -> list[Row]:
    """Rows for p50, p99 and max latency at the steady rate."""
    rate = ctx.sizes.latency_rate
    p50 = Row(f"latency p50 @{rate}/s", "ms")
    p99 = Row(f"latency p99 @{rate}/s", "ms", target=Target(at_most=4.0, ratio_at_most=1.5))
    top = Row(f"latency max @{rate}/s", "ms")
    for r, runnel_first in enumerate(alternate(ctx.repeat)):
        ours, raw = await in_order(
            runnel_first, partial(measure, ctx, "runnel"), partial(measure, ctx, "raw")
        )
        pairs = ((p50, ours.p50, raw.p50), (p99, ours.p99, raw.p99), (top, ours.max, raw.max))
        for row, a, b in pairs:
            row.values.append(a)
            row.baseline.append(b)
        ctx.say(
            f"latency #{r + 1}: runnel p50/p99/max {ours.p50:.2f}/{ours.p99:.2f}/{ours.max:.2f} "
            f"ms, raw {raw.p50:.2f}/{raw.p99:.2f}/{raw.max:.2f} ms ({ours.count} samples)"
        )
    return [p50, p99, top]
