"""Results: rows of repeated measurements, targets, the printed table and the JSON file."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Target:
    """What a row must reach (every given bound must hold)."""

    at_least: float | None = None
    at_most: float | None = None
    ratio_at_least: float | None = None
    ratio_at_most: float | None = None
    above_row: str | None = None
    """The median must exceed the median of this other row of the same run."""
    baseline: str = "raw"
    """What the row's baseline is, as the target names it."""

    def describe(self) -> str:
        """Short text for the table (``>=60k, >=50% raw``)."""
        parts = []
        if self.at_least is not None:
            parts.append(f">={_short(self.at_least)}")
        if self.at_most is not None:
            parts.append(f"<={_short(self.at_most)}")
        if self.ratio_at_least is not None:
            parts.append(f">={self.ratio_at_least:.0%} {self.baseline}")
        if self.ratio_at_most is not None:
            parts.append(f"<={self.ratio_at_most:.0%} {self.baseline}")
        if self.above_row is not None:
            parts.append(f"> {self.above_row}")
        return ", ".join(parts)


@dataclass
class Row:
    """One line of the table: a scenario's repeated measurements and its baseline's."""

    scenario: str
    unit: str
    values: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    target: Target | None = None
    note: str = ""

    @property
    def median(self) -> float | None:
        """Median of the measurements (None when there are none)."""
        return statistics.median(self.values) if self.values else None

    @property
    def baseline_median(self) -> float | None:
        """Median of the baseline's measurements (None without a baseline)."""
        return statistics.median(self.baseline) if self.baseline else None

    @property
    def ratio(self) -> float | None:
        """median / baseline median."""
        m, b = self.median, self.baseline_median
        if m is None or b is None or b == 0:
            return None
        return m / b

    def verdict(self, rows: Mapping[str, Row]) -> str | None:
        """``pass``/``fail`` against the target; ``None`` without one (``n/a`` if it
        refers to a row that was not run)."""
        t, m, r = self.target, self.median, self.ratio
        if t is None or m is None:
            return None
        checks: list[bool] = []
        if t.at_least is not None:
            checks.append(m >= t.at_least)
        if t.at_most is not None:
            checks.append(m <= t.at_most)
        if t.ratio_at_least is not None:
            checks.append(r is not None and r >= t.ratio_at_least)
        if t.ratio_at_most is not None:
            checks.append(r is not None and r <= t.ratio_at_most)
        if t.above_row is not None:
            other = rows.get(t.above_row)
            if other is None or other.median is None:
                return "n/a"
            checks.append(m > other.median)
        return "pass" if all(checks) else "fail"


def _short(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def fmt(value: float | None, unit: str) -> str:
    """A number formatted for its unit."""
    if value is None:
        return "-"
    if unit in ("events/s", "records/s"):
        return f"{value:,.0f}"
    if unit in ("ms", "x"):
        return f"{value:.2f}"
    return f"{value:.1f}"


HEADER = (
    "scenario",
    "unit",
    "median",
    "min",
    "max",
    "raw median",
    "ratio",
    "target",
    "result",
)


def table_rows(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """Every row as the table's text cells."""
    by_name = {r.scenario: r for r in rows}
    out: list[tuple[str, ...]] = []
    for r in rows:
        ratio = r.ratio
        out.append(
            (
                r.scenario,
                r.unit,
                fmt(r.median, r.unit),
                fmt(min(r.values) if r.values else None, r.unit),
                fmt(max(r.values) if r.values else None, r.unit),
                fmt(r.baseline_median, r.unit),
                "-" if ratio is None else f"{ratio:.2f}",
                r.target.describe() if r.target else "",
                r.verdict(by_name) or "",
            )
        )
    return out


def text_table(rows: Sequence[Row]) -> str:
    """A fixed-width table for the terminal."""
    cells = [HEADER, *table_rows(rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = []
    for n, line in enumerate(cells):
        lines.append(
            "  ".join(
                c.ljust(w) if i in (0, 1, 7, 8) else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row]) -> str:
    """The same table in Markdown (for docs/benchmarks.md)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    lines += ["| " + " | ".join(line) + " |" for line in table_rows(rows)]
    return "\n".join(lines)


def write_json(
    path: Path, rows: Sequence[Row], machine: Mapping[str, Any], config: Mapping[str, Any]
) -> None:
    """Every measurement, the machine and the run's settings, as JSON."""
    by_name = {r.scenario: r for r in rows}
    data = {
        "machine": dict(machine),
        "config": dict(config),
        "rows": [
            {
                "scenario": r.scenario,
                "unit": r.unit,
                "values": r.values,
                "baseline": r.baseline,
                "median": r.median,
                "baseline_median": r.baseline_median,
                "ratio": r.ratio,
                "target": r.target.describe() if r.target else None,
                "result": r.verdict(by_name),
                "note": r.note,
            }
            for r in rows
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
