"""Instructions per event with metrics on and off, counted by valgrind's callgrind.

Wall-clock ratios on a shared machine swing by more than the cost being measured; an
instruction count does not. Each run is an App on the in-memory backend, driven by
:class:`runnel.testing.Harness` (a simulated clock, so valgrind's slowness changes nothing),
sending and processing ``n`` events one at a time; the difference between two sizes cancels
the interpreter's start-up and leaves the instructions per event::

    python -m benchmarks.metrics_instructions          # needs valgrind on PATH
    python -m benchmarks.metrics_instructions --run on 1000   # one run, used by the above

The per-event figure includes sending each event (so the send metrics count too); the
difference between metrics on and off is the whole cost of metrics per event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = (1000, 3000)
REPEATS = 2


async def run(metrics: bool, events: int) -> None:
    """Send and process ``events`` events on the memory backend, metrics on or off."""
    from runnel import App, Events, Record
    from runnel.testing import Harness

    class Tick(Record):
        key: str
        n: int

    app = App(name="instructions", redis_url="memory://instructions", metrics=metrics)
    ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=4)

    @app.processor(ticks)
    async def count(events: Events) -> None:
        async for _ in events:
            pass

    async with Harness(app) as harness:
        await harness.start("w1")
        for start in range(0, events, 500):
            batch = [Tick(key=f"k{i % 16}", n=i) for i in range(start, min(events, start + 500))]
            await ticks.send(*batch)
            await harness.run_until_idle()


def instructions(metrics: bool, events: int, folder: Path) -> int:
    """Instructions of one whole run of :func:`run` under callgrind."""
    out = folder / f"callgrind.{'on' if metrics else 'off'}.{events}"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks.metrics_instructions",
        "--run",
        "on" if metrics else "off",
        str(events),
    ]
    # A fixed hash seed: string hashing decides set and dict layouts, and so instructions.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(command, check=True, capture_output=True, env=env)
    match = re.search(r"^summary: (\d+)$", out.read_text(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no summary line in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--run", nargs=2, metavar=("on|off", "EVENTS"), help="one run only")
    args = parser.parse_args()
    if args.run:
        asyncio.run(run(args.run[0] == "on", int(args.run[1])))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not on PATH (apt-get install -y valgrind)")
    small, large = SIZES
    per_event: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(REPEATS):
            for metrics in (False, True):
                counts = [instructions(metrics, n, Path(folder)) for n in SIZES]
                per_event[metrics].append((counts[1] - counts[0]) / (large - small))
    for metrics, values in per_event.items():
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"instructions per event, metrics {'on' if metrics else 'off'}: {shown}")
    off, on = min(per_event[False]), min(per_event[True])
    print(f"metrics cost (least of each) {on - off:,.0f} per event ({(on - off) / off:.2%})")


if __name__ == "__main__":
    main()
