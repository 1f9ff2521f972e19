"""``python -m benchmarks.topologies``: one server against a three-shard Redis Cluster, and
what waiting for a replica costs on a Sentinel-managed primary.

Every topology runs on this machine, on loopback, started for the run and stopped after
it (:mod:`tests.topologies`). Two figures per topology, each the median of ``--repeat``
runs:

* ``send``: events per second one sender reaches with ``Stream.send`` batches of 100
  primitive records (16 partitions);
* ``end-to-end``: events per second from the first send to the last acknowledgement
  with one ``runnel worker`` process consuming (one record at a time) while the sender
  sends.

On a machine with a few cores the cluster's three servers share those cores with the
sender and the worker, so the figures measure the cluster's overhead (a round trip per
node per round, one script call per partition), not how it scales: see docs/scaling.md.

Usage::

    python -m benchmarks.topologies                 # 20,000 events, 3 repeats
    python -m benchmarks.topologies --events 5000 --repeat 1 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tests.servers import running_server
from tests.topologies import running_cluster, running_sentinels

from benchmarks.apps import PARTITIONS, PROCESSOR, build
from benchmarks.harness import start_worker, stop_all
from benchmarks.records import make
from runnel import App, Stream

BATCH = 100


@contextlib.contextmanager
def topology(name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Start the topology ``name``; yield its URL and the App settings to use."""
    if name == "single":
        with running_server() as server:
            yield server.url, {}
    elif name == "cluster-3":
        with running_cluster(masters=3) as cluster:
            yield cluster.url, {}
    elif name == "sentinel":
        with running_sentinels(replicas=1, sentinels=3) as found:
            yield found.url, {}
    elif name == "sentinel-wait-1":
        with running_sentinels(replicas=1, sentinels=3) as found:
            yield found.url, {"redis_wait_replicas": 1}
    else:
        raise SystemExit(f"unknown topology {name!r}")


def _app(url: str, settings: dict[str, Any]) -> tuple[App, Stream[Any]]:
    app, stream = build("primitive", "none", name=f"b{uuid.uuid4().hex[:8]}", url=url)
    if settings:
        app.reconfigure(**settings)
    return app, stream


async def _send_all(stream: Stream[Any], events: int) -> float:
    started = time.perf_counter()
    for start in range(0, events, BATCH):
        await stream.send(*(make("primitive", i) for i in range(start, start + BATCH)))
    return time.perf_counter() - started


async def measure_send(url: str, settings: dict[str, Any], events: int) -> float:
    """Events per second of one sender."""
    app, stream = _app(url, settings)
    try:
        await stream.send(make("primitive", 0))  # connect, check the metadata
        seconds = await _send_all(stream, events)
    finally:
        await app.close()
    return events / seconds


async def _drained(app: App, stream: Stream[Any]) -> bool:
    log = app.backend.log
    for n in range(PARTITIONS):
        groups = await log.groups(stream.keys.stream(n))
        mine = [g for g in groups if g.name == PROCESSOR]
        if not mine or mine[0].pending or (mine[0].lag or 0) > 0:
            return False
    return True


async def measure_end_to_end(
    url: str, settings: dict[str, Any], events: int, logdir: Path
) -> float:
    """Events per second from the first send to the last acknowledgement, one worker."""
    app, stream = _app(url, settings)
    env = {f"RUNNEL_{k.upper()}": str(v) for k, v in settings.items()}
    worker = start_worker("primitive", url, app.name, logdir, settings=env)
    try:
        locks = [stream.keys.lock(PROCESSOR, n) for n in range(PARTITIONS)]
        deadline = time.monotonic() + 60
        while not all(await app.backend.kv.exists(locks)):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker took no partition: {worker.log_tail()}")
            await asyncio.sleep(0.05)
        started = time.perf_counter()
        await _send_all(stream, events)
        deadline = time.monotonic() + 300
        while not await _drained(app, stream):
            worker.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not finish: {worker.log_tail()}")
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        stop_all([worker])
        await app.close()
    return events / seconds


async def run(names: Sequence[str], events: int, repeat: int) -> dict[str, dict[str, Any]]:
    """Every figure of every topology in ``names``."""
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="runnel-bench-topologies-") as logs:
        for name in names:
            sends: list[float] = []
            flows: list[float] = []
            with topology(name) as (url, settings):
                for _ in range(repeat):
                    sends.append(await measure_send(url, settings, events))
                    flows.append(await measure_end_to_end(url, settings, events, Path(logs)))
            out[name] = {
                "send_per_s": round(statistics.median(sends)),
                "send_runs": [round(s) for s in sends],
                "end_to_end_per_s": round(statistics.median(flows)),
                "end_to_end_runs": [round(f) for f in flows],
            }
            print(
                f"{name:16} send {out[name]['send_per_s']:>8}/s   "
                f"end-to-end {out[name]['end_to_end_per_s']:>8}/s",
                flush=True,
            )
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.topologies")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--only",
        default="single,cluster-3,sentinel,sentinel-wait-1",
        help="comma-separated topologies: single, cluster-3, sentinel, sentinel-wait-1",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    results = asyncio.run(run(names, args.events, args.repeat))
    if args.json is not None:
        args.json.write_text(json.dumps({"events": args.events, "results": results}, indent=2))


if __name__ == "__main__":
    main()
