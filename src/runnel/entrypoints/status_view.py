"""``runnel status`` as a table for a terminal (the JSON form is the model itself).

Example:
    >>> from datetime import datetime, timezone
    >>> from runnel.admin import AppStatus
    >>> print(render_status(AppStatus(app="shop", time=datetime(2026, 1, 1, tzinfo=timezone.utc),
    ...                               leader=None, streams=[]), colour=False))
    app shop at 2026-01-01T00:00:00+00:00  leader: (none)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from runnel.admin import AppStatus, PartitionStatus, ProcessorStatus

COLUMNS = ("part", "owner", "epoch", "lease", "last delivered", "lag", "pending",
           "oldest pending", "age", "deliv", "dead", "state")  # fmt: skip


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}m"
    return f"{value / 3600:.1f}h"


def _row(partition: PartitionStatus) -> tuple[list[str], str | None]:
    owner = partition.owner
    who = "-"
    if owner is not None:
        who = f"{owner.host}:{owner.pid}" if owner.host else owner.executor
    state, colour = "ok", None
    if partition.quarantine is not None:
        entry = partition.quarantine.get("entry_id")
        state, colour = f"QUARANTINED at {entry}", "red"
    elif partition.halted is not None:
        error = f"{partition.halted.get('error_type')}: {partition.halted.get('error')}"
        where = partition.oldest_pending_id or "?"
        state, colour = f"HALTED at {where} ({error})", "red"
    elif partition.oldest_pending_deliveries >= 3:
        times = partition.oldest_pending_deliveries
        state, colour = f"redelivered x{times}", "yellow"
    elif owner is None and (partition.lag or partition.pending):
        state, colour = "UNOWNED", "yellow"
    elif partition.pending and (partition.oldest_pending_age or 0) > 60:
        state, colour = "stale pending", "yellow"
    cells = [
        str(partition.number),
        who,
        "-" if owner is None or owner.epoch is None else str(owner.epoch),
        "-" if owner is None else _seconds(owner.lease_left),
        partition.last_delivered_id or "-",
        "?" if partition.lag is None else str(partition.lag),
        str(partition.pending),
        partition.oldest_pending_id or "-",
        _seconds(partition.oldest_pending_age),
        str(partition.oldest_pending_deliveries or "-"),
        "-" if partition.dead_letters is None else str(partition.dead_letters),
        state,
    ]
    return cells, colour


def _processor(proc: ProcessorStatus, colour: bool) -> list[str]:
    lines = [
        f"  processor {proc.name} ({proc.exception_policy}): fenced refusals "
        f"{proc.fenced_refusals}, skips {proc.skips}"
        + (f", dead letters in {proc.dead_letter_stream}" if proc.dead_letter_stream else "")
    ]
    rows = [list(COLUMNS)]
    colours: list[str | None] = [None]
    for partition in proc.partitions:
        cells, hue = _row(partition)
        rows.append(cells)
        colours.append(hue)
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    for row, hue in zip(rows, colours, strict=True):
        text = "    " + "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        )
        text = text.rstrip()
        lines.append(click.style(text, fg=hue) if colour and hue else text)
    if not proc.members:
        lines.append("    members: none")
    if proc.resize_waiting:
        text = (
            f"    resize pending: new partitions held until partition(s) "
            f"{','.join(map(str, proc.resize_waiting))} are processed up to their switch point"
        )
        lines.append(click.style(text, fg="yellow") if colour else text)
    for member in proc.members:
        where = f"{member.host}:{member.pid}" if member.host else member.worker
        alive = "alive" if member.alive else "DEAD (no heartbeat)"
        text = (
            f"    member {member.executor} on {where}: partitions "
            f"{','.join(map(str, member.partitions)) or '-'}, heartbeat "
            f"{_seconds(member.heartbeat_age)} ago, {alive}"
        )
        lines.append(click.style(text, fg="red") if colour and not member.alive else text)
    return lines


def render_status(report: AppStatus, colour: bool) -> str:
    """The status as aligned text, coloured where something needs attention."""
    leader = "(none)"
    if report.leader is not None:
        leader = f"{report.leader.worker} (epoch {report.leader.epoch})"
    lines = [f"app {report.app} at {report.time.isoformat()}  leader: {leader}"]
    for stream in report.streams:
        resized = ""
        if stream.resize_history:
            resized = f", grown {' -> '.join(map(str, stream.resize_history))}"
        if stream.resize_under_way is not None:
            resized += f", RESIZE TO {stream.resize_under_way} NOT FINISHED (run it again)"
        lines.append(
            f"stream {stream.name}: {stream.partition_count} partition(s), lossy-trimmed "
            f"{stream.lossy_trimmed}{resized}"
        )
        for proc in stream.processors:
            lines.extend(_processor(proc, colour))
    return "\n".join(lines)
