"""Measure every hostile entry under every exception policy; print a table, write JSON.

Usage (from the repository root, with a redis-server on PATH)::

    python -m tests.integration.security.measure [--src OTHER/src] [--out FILE.json]
        [--only NAME,...] [--policies halt,...] [--window SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path

from tests.servers import running_server

from .hostile import BY_NAME, HOSTILE, POLICIES, as_row, measure


async def _run(args: argparse.Namespace, url: str, workdir: Path) -> list[dict[str, object]]:
    rows = []
    names = args.only.split(",") if args.only else [h.name for h in HOSTILE]
    for name in names:
        for policy in args.policies.split(","):
            m = await measure(url, BY_NAME[name], policy, workdir, args.window, args.src)
            row = as_row(m)
            rows.append(row)
            print(
                f"{m.hostile:15} {m.policy:10} {m.outcome:12} peak {m.peak_rss_mib:8.1f} MiB "
                f"(idle {m.baseline_rss_mib:6.1f}) log {m.log_bytes:12,d} B "
                f"{m.seconds:6.2f}s dlq={m.dead_lettered_intact}",
                flush=True,
            )
    return rows


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the workers and the server are stopped on SIGTERM too


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", default="")
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--window", type=float, default=30.0)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="runnel-hostile-") as tmp,
        running_server() as server,
    ):
        rows = asyncio.run(_run(args, server.url, Path(tmp)))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
