"""``python -m benchmarks``: every scenario against a throwaway redis-server.

Usage::

    python -m benchmarks                      # everything, 5 repeats (make bench)
    python -m benchmarks --smoke              # a few seconds per scenario (make bench-smoke)
    python -m benchmarks --only send,latency --repeat 3 --json results.json

Scenarios: send, single, take, two-workers, latency, memory, large, metrics,
effectively-once.
Each is measured ``--repeat`` times for runnel and for the raw redis-py baseline,
alternating which goes first; the table shows runnel's median, min and max, the
baseline's median, their ratio, and the target. The ``metrics`` scenario compares runnel
with metrics on against runnel with metrics off instead, and the ``effectively-once``
scenario a pipeline committed effectively once against the same pipeline at least once.
The exit code is 0 even when a target is missed (the table says so); it is 1 only when a
scenario could not be run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path

from benchmarks import consume, latency, send
from benchmarks.baseline import raw_client, run
from benchmarks.common import FULL, SMOKE, Context
from benchmarks.harness import BenchError
from benchmarks.machine import details
from benchmarks.report import Row, text_table, write_json
from benchmarks.server import ServerError, redis_server

Scenario = Callable[[Context], Awaitable[list[Row]]]

SCENARIOS: dict[str, Scenario] = {
    "send": send.throughput,
    "single": partial(consume.throughput, scenario="single"),
    "take": partial(consume.throughput, scenario="take"),
    "two-workers": partial(consume.throughput, scenario="two-workers"),
    "latency": latency.latency,
    "memory": consume.memory,
    "large": consume.large,
    "metrics": consume.metrics,
    "effectively-once": consume.effectively_once,
}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark runnel against a raw redis-py baseline on its own redis-server.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes and one repeat (a few seconds each)"
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per scenario (default 5)")
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated scenarios to run (of: {', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per consumption run (default 100000; 2000 with --smoke)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--redis-server", default=None, help="redis-server binary (default: PATH)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record the consumers of the throughput and memory scenarios with py-spy into DIR",
    )
    args = parser.parse_args(argv)
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        unknown = [s for s in wanted if s not in SCENARIOS]
        if unknown:
            parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {list(SCENARIOS)}")
        args.only = wanted
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.events is not None and args.events < 1:
        parser.error("--events must be at least 1")
    return args


async def _run(
    args: argparse.Namespace, url: str, server_pid: int, logdir: Path
) -> tuple[list[Row], list[str]]:
    sizes = SMOKE if args.smoke else FULL
    if args.events is not None:
        sizes = replace(sizes, consume_events=args.events)
    repeat = args.repeat or (1 if args.smoke else 5)
    client = raw_client(url)
    ctx = Context(
        url,
        client,
        repeat,
        sizes,
        logdir,
        verbose=not args.quiet,
        profile_dir=args.profile,
        server_pid=server_pid,
    )
    rows: list[Row] = []
    failed: list[str] = []
    try:
        for name in args.only or SCENARIOS:
            ctx.say(f"scenario {name}: {repeat} repeat(s)")
            try:
                rows += await SCENARIOS[name](ctx)
            except BenchError as exc:
                failed.append(name)
                print(f"scenario {name} failed: {exc}", file=sys.stderr)
            except Exception:
                failed.append(name)
                traceback.print_exc()
    finally:
        await client.aclose()
    return rows, failed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; print the table and the machine details."""
    args = parse(argv)
    try:
        server = redis_server(args.redis_server)
        with server as redis, tempfile.TemporaryDirectory(prefix="runnel-bench-") as tmp:
            result: list[tuple[list[Row], list[str]]] = []

            async def go() -> None:
                result.append(await _run(args, redis.url, redis.pid, Path(tmp)))

            run(go())
            rows, failed = result[0]
            machine = details(redis.version)
    except ServerError as exc:
        print(f"cannot start redis-server: {exc}", file=sys.stderr)
        return 1
    print()
    print(text_table(rows))
    for row in rows:
        if row.note:
            print(f"note: {row.scenario}: {row.note}")
    print()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in machine.items()))
    config = {
        "smoke": args.smoke,
        "repeat": args.repeat or (1 if args.smoke else 5),
        "sizes": asdict(SMOKE if args.smoke else FULL),
        "events": args.events,
        "scenarios": args.only or list(SCENARIOS),
        "failed": failed,
    }
    if args.json is not None:
        write_json(args.json, rows, machine, config)
        print(f"results written to {args.json}")
    if failed:
        print(f"failed scenario(s): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
