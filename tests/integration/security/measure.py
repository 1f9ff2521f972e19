"""Measure every hostile entry under every exception policy; print a table, write JSON.

Usage (from the repository root, with a redis-server on PATH)::

    python -m tests.integration.security.measure [--src OTHER/src] [--out FILE.json]
        [--only NAME,...] [--policies halt,...] [--window SECONDS]
    python -m tests.integration.security.measure --table BEFORE.json AFTER.json

The second form prints the Markdown table of docs/security.md from two runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
from pathlib import Path
from typing import Any

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


def table(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """The before/after Markdown table: peak RSS and log bytes per entry and policy."""
    old = {(r["hostile"], r["policy"]): r for r in before}
    lines = [
        "| hostile entry | policy | peak RSS before | after | log bytes before | after "
        "| outcome before | after |",
        "|---|---|--:|--:|--:|--:|---|---|",
    ]
    for new in after:
        was = old.get((new["hostile"], new["policy"]))
        if was is None:
            continue
        lines.append(
            f"| {new['hostile']} | {new['policy']} | {was['peak_rss_mib']:.0f} MiB "
            f"| {new['peak_rss_mib']:.0f} MiB | {_bytes(was)} | {_bytes(new)} "
            f"| {_outcome(was)} | {_outcome(new)} |"
        )
    return "\n".join(lines)


def _bytes(row: dict[str, Any]) -> str:
    text = f"{row['log_bytes']:,}"
    return f"{text} in {row['seconds']:.0f} s" if row["outcome"] == "stuck" else text


def _outcome(row: dict[str, Any]) -> str:
    shown = str(row["outcome"])
    if row["policy"] == "deadletter":
        shown += ", dead-lettered" if row["dead_lettered_intact"] else ", not dead-lettered"
    return shown


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
    parser.add_argument("--table", nargs=2, type=Path, default=None)
    args = parser.parse_args()
    if args.table is not None:
        before, after = (json.loads(p.read_text()) for p in args.table)
        print(table(before, after))
        return
    with (
        tempfile.TemporaryDirectory(prefix="runnel-hostile-") as tmp,
        running_server() as server,
    ):
        rows = asyncio.run(_run(args, server.url, Path(tmp)))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
