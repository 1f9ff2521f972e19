"""The session's fault report: the rows the scenarios add, printed as a table at the end of
the run and written as JSON (``.faults/report.json``, not versioned)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.integration.engine.harness import REPO

from .audit import Row, table

ROWS: list[Row] = []
"""Every row of this session, in the order the scenarios finished."""

JSON_PATH = REPO / ".faults" / "report.json"

_NOTED = (
    "send failures",
    "ambiguous",
    "acks refused",
    "lease losses",
    "pending at end",
    "warning lines",
    "connections killed",
    "leases kept",
    "reaps of live workers logged",
    "in-flight event",
    "stale finishes",
    "stale finish after resume s",
    "stale finish after the new owner's s",
    "late hand-outs under an old lease",
    "latency",
    "events MB",
    "exit after SIGTERM s",
    "xfail",
)
"""Notes shown under the table (in this order; ``latency`` stands for every key starting
with it); the JSON report has them all."""


def lines(rows: Sequence[Row], seconds: float) -> list[str]:
    """The summary: the table, then one line of notes per scenario, then the run time."""
    out = table(rows)
    out.append("")
    for row in rows:
        notes = {"ambiguous": row.ambiguous, **row.notes}
        keys = [k for name in _NOTED for k in notes if k == name or k.startswith(f"{name} ")]
        shown = [f"{k}={_short(notes[k])}" for k in keys if notes[k] not in (None, 0, {}, [])]
        faults = ", ".join(f"{f.kind} {f.duration:.1f}s" for f in row.faults if f.duration > 0.05)
        if faults:
            shown.insert(0, f"fault time: {faults}")
        out.append(f"{row.scenario} [{row.settings}]: {'; '.join(shown) or '-'}")
    out.append("")
    out.append(f"{len(rows)} fault scenario(s) in {seconds:.0f}s; JSON report: {JSON_PATH}")
    return out


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 240 else text[:237] + "..."


def write(rows: Sequence[Row], seconds: float, path: Path = JSON_PATH) -> None:
    """Write the rows and the run time as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"seconds": round(seconds, 1), "scenarios": [row.as_json() for row in rows]}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
