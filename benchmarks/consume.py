"""Consumption scenarios: one worker one event at a time, ``take(100)``, two workers, memory,
large events.

Each measured run empties the server, sends the events (not timed), parks the consumer
group, starts the consumer process(es) and times them from the gate to the last
acknowledgement (see :mod:`benchmarks.harness`). The raw baseline is measured the same
way, on the same events, with the same number of processes.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import profile
from benchmarks.apps import LARGE_PARTITIONS, PARTITIONS, Mode, build
from benchmarks.common import Context, alternate, in_order
from benchmarks.harness import (
    BenchError,
    Consumer,
    Watcher,
    cpu_seconds,
    keys_of,
    lock_keys,
    rss_mb,
    start_raw,
    start_worker,
    stop_all,
)
from benchmarks.records import MIB, RecordKind, blob_size, make
from benchmarks.report import Row, Target
from runnel import Stream
from runnel.settings import Settings

PRESEND_CHUNK = 1000


@dataclass(frozen=True)
class Job:
    """One consumption setup: which app module, record kind and how many processes."""

    module: str
    kind: RecordKind
    mode: Mode
    workers: int = 1
    settings: tuple[tuple[str, str], ...] = ()
    """Environment variables of the runnel workers (never of the raw baseline)."""
    partitions: int = PARTITIONS
    events: int | None = None
    """Events per run (None: the sizes' ``consume_events``)."""


@dataclass(frozen=True)
class Measured:
    """One run: throughput, and RSS (MB, all processes summed) idle and at peak."""

    rate: float
    idle_rss: float
    peak_rss: float
    holders: int
    consumer_cpu: float
    """CPU seconds the consumer processes used per 1000 events (gate to done)."""
    server_cpu: float
    """CPU seconds redis-server used per 1000 events (gate to done)."""
    commands: dict[str, float]
    """Redis commands run per 1000 events (gate to done), by command, most first; commands
    run inside Lua scripts count too, and so does the benchmark's own polling."""


async def _presend(ctx: Context, stream: Stream[Any], kind: RecordKind, events: int) -> None:
    """Send ``events`` records with runnel (encoded once per app name and reused; large
    records are made again for each run, in small chunks, rather than kept)."""
    unit = ctx.sizes.large_unit
    if kind == "large":
        for start in range(0, events, LARGE_CHUNK):
            chunk = [
                make(kind, i, unit=unit) for i in range(start, min(events, start + LARGE_CHUNK))
            ]
            await stream.append_encoded(stream.encode_batch(chunk))
        return
    cache_key = (stream.app.name, kind, events)
    appends = ctx.appends.get(cache_key)
    if appends is None:
        appends = []
        for start in range(0, events, PRESEND_CHUNK):
            chunk = [make(kind, i) for i in range(start, min(events, start + PRESEND_CHUNK))]
            appends += stream.encode_batch(chunk)
        ctx.appends[cache_key] = appends
    for start in range(0, len(appends), PRESEND_CHUNK):
        await stream.append_encoded(appends[start : start + PRESEND_CHUNK])


LARGE_CHUNK = 4
"""Large records sent per call while filling the backlog."""


async def measure(ctx: Context, job: Job, impl: str, sample_rss: bool = False) -> Measured:
    """One measured run of ``job`` by ``impl`` (``runnel`` or ``raw``)."""
    events = job.events if job.events is not None else ctx.sizes.consume_events
    partitions = job.partitions
    app_name = f"b-{job.module}-{job.workers}w"
    await ctx.fresh()
    app, stream = build(job.kind, job.mode, name=app_name, url=ctx.url, partition_count=partitions)
    consumers: list[Consumer] = []
    recorders: list[tuple[Path, subprocess.Popen[bytes]]] = []
    try:
        await _presend(ctx, stream, job.kind, events)
        keys = keys_of(app_name, partitions)
        watcher = Watcher(ctx.client, keys)
        await watcher.park()
        if impl == "runnel":
            for i in range(job.workers):
                consumers.append(
                    start_worker(
                        job.module, ctx.url, app_name, ctx.logdir, i, settings=dict(job.settings)
                    )
                )
            holders = await watcher.wait_ready(
                consumers, lock_keys(app_name, partitions), job.workers, ctx.sizes.ready_timeout
            )
        else:
            share = -(-len(keys) // job.workers)
            for i in range(job.workers):
                mine = keys[i * share : (i + 1) * share]
                consumers.append(
                    start_raw(ctx.url, job.kind, mine, ctx.logdir, f"{app_name}-raw", i)
                )
            holders = await watcher.wait_ready(
                consumers, None, job.workers, ctx.sizes.ready_timeout
            )
        idle = sum(rss_mb(c.pid) for c in consumers)
        kick: list[Any] = [
            stream.codec.encode(make(job.kind, events + i, unit=ctx.sizes.large_unit))
            for i in range(partitions)
        ]
        if ctx.profile_dir is not None:
            recorders = _profile(ctx.profile_dir, f"{app_name}-{impl}", consumers)
            await asyncio.sleep(0.5)  # py-spy attaches
        cpu_before = _cpu(ctx, consumers)
        calls_before = await _commands(ctx)
        started = time.perf_counter()
        last_ids = await watcher.open_gate(kick)
        finished, peak = await watcher.wait_done(
            last_ids, consumers, ctx.sizes.done_timeout, sample_rss
        )
        cpu_after = _cpu(ctx, consumers)
        calls_after = await _commands(ctx)
    finally:
        for path, recorder in recorders:
            profile.stop(recorder)
            path.with_suffix(".top.md").write_text(profile.summarize(path), encoding="utf-8")
        codes = stop_all(consumers)
        await app.close()
    bad = [(c, code) for c, code in zip(consumers, codes, strict=True) if code != 0]
    if bad:
        c, code = bad[0]
        raise BenchError(f"{c.name} exited with {code}:\n{c.log_tail()}")
    total = events + partitions
    per = 1000 / total
    return Measured(
        total / (finished - started),
        idle,
        max(peak, idle),
        holders,
        (cpu_after[0] - cpu_before[0]) * per,
        (cpu_after[1] - cpu_before[1]) * per,
        {
            name: (n - calls_before.get(name, 0)) * per
            for name, n in sorted(calls_after.items(), key=lambda kv: -kv[1])
            if n > calls_before.get(name, 0)
        },
    )


async def _commands(ctx: Context) -> dict[str, int]:
    """Calls so far of every Redis command (INFO commandstats)."""
    info = await ctx.client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(stats["calls"])
        for name, stats in info.items()
        if isinstance(stats, dict)
    }


def describe_commands(commands: dict[str, float], top: int = 5) -> str:
    """``evalsha 31.2, xreadgroup 30.1, ...`` (calls per 1000 events)."""
    busiest = sorted(commands.items(), key=lambda kv: -kv[1])[:top]
    total = sum(commands.values())
    return f"{total:.0f} total: " + ", ".join(f"{k} {v:.1f}" for k, v in busiest)


def _cpu(ctx: Context, consumers: list[Consumer]) -> tuple[float, float]:
    """CPU seconds used so far by the consumers and by redis-server."""
    server = cpu_seconds(ctx.server_pid) if ctx.server_pid is not None else 0.0
    return sum(cpu_seconds(c.pid) for c in consumers), server


def _profile(
    directory: Path, tag: str, consumers: list[Consumer]
) -> list[tuple[Path, subprocess.Popen[bytes]]]:
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for n, consumer in enumerate(consumers):
        path = directory / f"{tag}-{n}-{time.strftime('%H%M%S')}.txt"
        out.append((path, profile.start(consumer.pid, path)))
    return out


THROUGHPUT_JOBS = {
    "single": [
        ("one-at-a-time primitive", Job("primitive", "primitive", "single")),
        ("one-at-a-time nested", Job("nested", "nested", "single")),
    ],
    "take": [
        ("take(100) primitive", Job("take_primitive", "primitive", "take")),
        ("take(100) nested", Job("take_nested", "nested", "take")),
    ],
    "two-workers": [
        ("two workers primitive", Job("primitive", "primitive", "single", workers=2)),
    ],
}

TARGETS = {
    "single": Target(at_least=60_000, ratio_at_least=0.85),
    "take": Target(at_least=100_000, ratio_at_least=1.0),
    "two-workers": Target(above_row="one-at-a-time primitive"),
}


async def throughput(ctx: Context, scenario: str) -> list[Row]:
    """The rows of a throughput scenario (``single``, ``take`` or ``two-workers``)."""
    rows = []
    for name, job in THROUGHPUT_JOBS[scenario]:
        row = Row(name, "events/s", target=TARGETS[scenario])
        holders: list[int] = []
        for r, runnel_first in enumerate(alternate(ctx.repeat)):
            ours, raw = await in_order(
                runnel_first,
                partial(measure, ctx, job, "runnel"),
                partial(measure, ctx, job, "raw"),
            )
            row.values.append(ours.rate)
            row.baseline.append(raw.rate)
            holders.append(ours.holders)
            if min(holders) < job.workers:
                row.note = (
                    f"processes holding partition leases in each run: {holders} (of "
                    f"{job.workers} started); fewer means this runnel did not spread them"
                )
            ctx.say(
                f"{name} #{r + 1}: runnel {ours.rate:,.0f}/s, raw {raw.rate:,.0f}/s "
                f"({ours.rate / raw.rate:.2f}); CPU ms per 1000 events: consumer "
                f"{ours.consumer_cpu * 1000:.1f} vs {raw.consumer_cpu * 1000:.1f}, "
                f"redis-server {ours.server_cpu * 1000:.1f} vs {raw.server_cpu * 1000:.1f}; "
                f"Redis commands per 1000 events: runnel {describe_commands(ours.commands)}; "
                f"raw {describe_commands(raw.commands)}"
            )
        rows.append(row)
    return rows


METRICS_ON = (("RUNNEL_METRICS", "true"), ("RUNNEL_HTTP_ADDRESS", "127.0.0.1:0"))
"""A worker with Prometheus metrics collected and the HTTP endpoint listening."""

METRICS_JOBS = [
    ("one-at-a-time primitive", Job("primitive", "primitive", "single")),
    ("one-at-a-time nested", Job("nested", "nested", "single")),
    ("take(100) primitive", Job("take_primitive", "primitive", "take")),
]


async def metrics(ctx: Context) -> list[Row]:
    """The cost of metrics: each job with metrics on, against the same job with them off.

    The baseline column of these rows is runnel itself with metrics off (the default), not
    the raw loop; the target is to keep 95% of its throughput.
    """
    rows = []
    for name, off in METRICS_JOBS:
        on = replace(off, settings=METRICS_ON)
        target = Target(ratio_at_least=0.95, baseline="off")
        row = Row(f"{name}, metrics on", "events/s", target=target)
        row.note = "the raw median column is the same worker with metrics off"
        for r, on_first in enumerate(alternate(ctx.repeat)):
            measured_on, measured_off = await in_order(
                on_first,
                partial(measure, ctx, on, "runnel"),
                partial(measure, ctx, off, "runnel"),
            )
            row.values.append(measured_on.rate)
            row.baseline.append(measured_off.rate)
            ctx.say(
                f"{name} #{r + 1}: metrics on {measured_on.rate:,.0f}/s, off "
                f"{measured_off.rate:,.0f}/s ({measured_on.rate / measured_off.rate:.3f}); CPU "
                f"ms per 1000 events {measured_on.consumer_cpu * 1000:.1f} vs "
                f"{measured_off.consumer_cpu * 1000:.1f}"
            )
        rows.append(row)
    return rows


EFFECTIVELY_ONCE_JOBS = [
    (
        "one-at-a-time, effectively once",
        Job("pipeline_eo", "primitive", "pipeline_eo"),
        Job("pipeline", "primitive", "pipeline"),
    ),
    (
        "take(100), effectively once",
        Job("pipeline_take_eo", "primitive", "pipeline_take_eo"),
        Job("pipeline_take", "primitive", "pipeline_take"),
    ),
]


async def effectively_once(ctx: Context) -> list[Row]:
    """The cost of the effectively-once guarantee: a pipeline (a running amount per account,
    sent to an output stream for every event) committed effectively once, against the same
    pipeline at least once (a dict in memory, the outputs sent directly).

    The baseline column of these rows is runnel at least once, not the raw loop. There is
    no target: the row states the price of the guarantee.
    """
    rows = []
    for name, eo, alo in EFFECTIVELY_ONCE_JOBS:
        row = Row(name, "events/s")
        row.note = "the raw median column is the same pipeline at least once"
        for r, eo_first in enumerate(alternate(ctx.repeat)):
            measured_eo, measured_alo = await in_order(
                eo_first,
                partial(measure, ctx, eo, "runnel"),
                partial(measure, ctx, alo, "runnel"),
            )
            row.values.append(measured_eo.rate)
            row.baseline.append(measured_alo.rate)
            ctx.say(
                f"{name} #{r + 1}: effectively once {measured_eo.rate:,.0f}/s, at least once "
                f"{measured_alo.rate:,.0f}/s ({measured_eo.rate / measured_alo.rate:.3f}); "
                f"redis-server CPU ms per 1000 events {measured_eo.server_cpu * 1000:.1f} vs "
                f"{measured_alo.server_cpu * 1000:.1f}"
            )
        rows.append(row)
    return rows


async def memory(ctx: Context) -> list[Row]:
    """Worker RSS idle (every partition held, nothing to do) and peak over a backlog."""
    events = ctx.sizes.consume_events
    job = Job("nested", "nested", "single")
    idle = Row("worker RSS idle", "MB", target=Target(at_most=60))
    busy = Row(f"worker RSS, {events // 1000}k backlog", "MB")
    for r, runnel_first in enumerate(alternate(ctx.repeat)):
        ours, raw = await in_order(
            runnel_first,
            partial(measure, ctx, job, "runnel", sample_rss=True),
            partial(measure, ctx, job, "raw", sample_rss=True),
        )
        idle.values.append(ours.idle_rss)
        idle.baseline.append(raw.idle_rss)
        busy.values.append(ours.peak_rss)
        busy.baseline.append(raw.peak_rss)
        ctx.say(
            f"memory #{r + 1}: runnel {ours.idle_rss:.1f}/{ours.peak_rss:.1f} MB, "
            f"raw {raw.idle_rss:.1f}/{raw.peak_rss:.1f} MB (idle/peak)"
        )
    return [idle, busy]


LARGE_JOB = Job("large", "large", "single", partitions=LARGE_PARTITIONS)


async def large(ctx: Context) -> list[Row]:
    """One worker draining a backlog of large events (1 to 4 MiB, 4 partitions): throughput
    in MB/s and events/s against the raw loop, and the worker's peak RSS against its idle
    RSS plus the byte budget (``prefetch_bytes``, 64 MiB by default)."""
    events = ctx.sizes.large_events
    unit = ctx.sizes.large_unit
    job = replace(LARGE_JOB, events=events)
    total = events + LARGE_PARTITIONS  # the backlog and the gate's kick events
    mean_mb = sum(blob_size(i, unit) for i in range(total)) / total / 1e6
    budget_mb = (Settings().prefetch_bytes or 0) / MIB  # RSS is in MiB too (kB / 1024)
    size = f"{unit * 1 // 1024:,} KiB-{unit * 4 // 1024:,} KiB" if unit < MIB else "1-4 MiB"
    rate = Row(f"large events ({size}), {events} backlog", "events/s")
    mb = Row(f"large events ({size}), {events} backlog, MB/s", "MB/s")
    idle = Row("large events, worker RSS idle", "MB")
    peak = Row("large events, worker peak RSS", "MB")
    over = Row("large events, peak RSS over idle", "MB")
    bound = Row("large events, peak RSS / (idle RSS + prefetch_bytes)", "x")
    over.note = (
        f"budget prefetch_bytes = {budget_mb:.0f} MiB; the raw loop reads up to 100 entries "
        "per partition per call, with no byte bound"
    )
    small_mb = budget_mb / 4
    small_job = replace(job, settings=(("RUNNEL_PREFETCH_BYTES", str(int(small_mb * MIB))),))
    small = Row(f"large events, peak RSS over idle, prefetch_bytes={small_mb:.0f} MiB", "MB")
    small_rate = Row(f"large events, prefetch_bytes={small_mb:.0f} MiB, MB/s", "MB/s")
    for r, runnel_first in enumerate(alternate(ctx.repeat)):
        ours, raw = await in_order(
            runnel_first,
            partial(measure, ctx, job, "runnel", sample_rss=True),
            partial(measure, ctx, job, "raw", sample_rss=True),
        )
        rate.values.append(ours.rate)
        rate.baseline.append(raw.rate)
        mb.values.append(ours.rate * mean_mb)
        mb.baseline.append(raw.rate * mean_mb)
        idle.values.append(ours.idle_rss)
        idle.baseline.append(raw.idle_rss)
        peak.values.append(ours.peak_rss)
        peak.baseline.append(raw.peak_rss)
        over.values.append(ours.peak_rss - ours.idle_rss)
        over.baseline.append(raw.peak_rss - raw.idle_rss)
        bound.values.append(ours.peak_rss / (ours.idle_rss + budget_mb))
        smaller = await measure(ctx, small_job, "runnel", sample_rss=True)
        small.values.append(smaller.peak_rss - smaller.idle_rss)
        small.baseline.append(raw.peak_rss - raw.idle_rss)
        small_rate.values.append(smaller.rate * mean_mb)
        small_rate.baseline.append(raw.rate * mean_mb)
        ctx.say(
            f"large #{r + 1}: runnel {ours.rate:,.1f} events/s ({ours.rate * mean_mb:,.1f} "
            f"MB/s), raw {raw.rate:,.1f} events/s ({raw.rate * mean_mb:,.1f} MB/s); RSS "
            f"idle/peak runnel {ours.idle_rss:.1f}/{ours.peak_rss:.1f} MB, raw "
            f"{raw.idle_rss:.1f}/{raw.peak_rss:.1f} MB; with prefetch_bytes={small_mb:.0f} MiB "
            f"{smaller.rate * mean_mb:,.1f} MB/s, RSS idle/peak {smaller.idle_rss:.1f}/"
            f"{smaller.peak_rss:.1f} MB"
        )
    return [rate, mb, idle, peak, over, bound, small_rate, small]
