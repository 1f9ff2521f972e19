"""Send throughput: ``stream.send(*records)`` with 1, 100 and 1000 records per call.

The records are nested JSON ``Order``s, built before timing; routing (XXH64 of the id)
and encoding are timed, for runnel and the baseline alike. Runnel is measured with its
default ``trim_mode="lossless"`` (one Lua script call per send: it checks every touched
partition's length against the ``partition_size`` cap and would refuse a send that
trims unacknowledged entries, then XADDs with ``MAXLEN = partition_size``) and with
``trim_mode="lossy"`` (the same script; it trims like MAXLEN and counts unprocessed
entries it drops). The baseline is plain redis-py: one ``XADD ... MAXLEN = partition_size``
per record, pipelined (one round trip) when a call has several. The streams stay below
the cap, so no scenario trims; the cap check is what is measured.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from benchmarks.apps import PARTITIONS, build
from benchmarks.baseline import RawSender
from benchmarks.common import Context, alternate
from benchmarks.harness import keys_of
from benchmarks.records import Order, order
from benchmarks.report import Row, Target
from runnel.settings import TrimMode

Send = Callable[[Sequence[Any]], Awaitable[object]]
_TARGETS = {1: Target(ratio_at_least=0.9), 1000: Target(ratio_at_least=2.0)}
"""What a lossless send must reach against redis-py, by records per call."""
_records: list[Order] = []


def records(n: int) -> list[Order]:
    """The first ``n`` benchmark Orders (built once)."""
    while len(_records) < n:
        _records.append(order(len(_records)))
    return _records[:n]


async def _timed(send: Send, batch: list[Order], per_call: int) -> float:
    await send(batch[:1])  # warm up: metadata, script cache, connection
    started = time.perf_counter()
    for i in range(0, len(batch), per_call):
        await send(batch[i : i + per_call])
    return len(batch) / (time.perf_counter() - started)


async def measure_runnel(ctx: Context, per_call: int, total: int, mode: TrimMode) -> float:
    """Records per second sent by runnel ``per_call`` at a time."""
    await ctx.fresh()
    app, stream = build("nested", "none", name=f"b-send-{mode}", url=ctx.url, trim_mode=mode)

    async def send(batch: Sequence[Any]) -> object:
        return await stream.send(*batch)

    try:
        return await _timed(send, records(total), per_call)
    finally:
        await app.close()


async def measure_raw(ctx: Context, per_call: int, total: int) -> float:
    """Records per second sent by the redis-py baseline ``per_call`` at a time."""
    await ctx.fresh()
    _, stream = build("nested", "none", name="b-send-raw", url=ctx.url)
    sender = RawSender(ctx.client, keys_of("b-send-raw", PARTITIONS), stream.partition_size)
    return await _timed(sender.send, records(total), per_call)


async def throughput(ctx: Context) -> list[Row]:
    """Rows for 1, 100 and 1000 records per call, lossless and lossy, with the baseline."""
    rows = []
    for per_call, total in ctx.sizes.send_totals.items():
        target = _TARGETS.get(per_call)
        lossless = Row(f"send {per_call}/call (lossless)", "records/s", target=target)
        lossy = Row(f"send {per_call}/call (lossy)", "records/s")
        for r, runnel_first in enumerate(alternate(ctx.repeat)):
            ours = [
                partial(measure_runnel, ctx, per_call, total, "lossless"),
                partial(measure_runnel, ctx, per_call, total, "lossy"),
            ]
            raw = partial(measure_raw, ctx, per_call, total)
            if runnel_first:
                a, b, c = await ours[0](), await ours[1](), await raw()
            else:
                c, a, b = await raw(), await ours[0](), await ours[1]()
            lossless.values.append(a)
            lossy.values.append(b)
            lossless.baseline.append(c)
            lossy.baseline.append(c)
            ctx.say(
                f"send {per_call}/call #{r + 1}: lossless {a:,.0f}/s, lossy {b:,.0f}/s, "
                f"raw {c:,.0f}/s"
            )
        rows += [lossless, lossy]
    return rows
