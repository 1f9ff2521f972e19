"""Counting what happened to every event: pure functions over the producer's attempts and
the ``done`` records the workers wrote (see ``tests/integration/engine/apps/audited.py``).

* **sent**: sends that returned (the event is acknowledged by ``send``);
* **processed**: distinct events with at least one ``done`` record;
* **lost**: sent and never processed;
* **duplicated**: events processed more than once;
* **reordered**: a first delivery of a key's seq after a later seq of that key had been
  delivered (deliveries ordered by the time each reached user code, ``began``);
* **ambiguous**: sends that raised, yet the event was processed (it had been written);
* **recovery** of a fault: from its start until, in every partition, an event sent after
  the start reached user code;
* **drain** after faults: from the start of the last fault until the backlog is gone (every
  event sent more than :data:`CAUGHT_UP_GRACE` earlier processed), looked for from when the
  fault ended and every partition was processed again; without faults: from the end of the
  load until everything was processed.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .load import Attempt

Done = dict[str, Any]
"""A ``done`` record: key, seq, partition, id, epoch, pid, began, done."""
EventKey = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault: what, and when it started and ended (``time.time()``)."""

    kind: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        """Seconds the fault lasted (0 for an instant one, such as SIGKILL)."""
        return self.end - self.start


@dataclass(frozen=True)
class Tally:
    """Every event accounted for (see the module docstring)."""

    sent: int
    failed: int
    failures: dict[str, int]
    ambiguous: int
    processed: int
    lost: list[EventKey]
    duplicated: list[EventKey]
    reordered: list[tuple[str, int, int]]
    phantoms: list[EventKey]


def tally(attempts: Sequence[Attempt], done: Sequence[Done]) -> Tally:
    """Count sent, lost, duplicated, reordered and ambiguous events.

    ``phantoms`` are processed events that were never sent: an audit that finds one is
    reading someone else's records, so callers treat it as a broken test.
    """
    times = Counter(_event(d) for d in done)
    sent = {(a.key, a.seq) for a in attempts if a.ok}
    failed = {(a.key, a.seq) for a in attempts if not a.ok}
    return Tally(
        sent=len(sent),
        failed=len(failed),
        failures=dict(Counter(a.error.split(":", 1)[0] for a in attempts if not a.ok)),
        ambiguous=sum(1 for e in failed if e in times),
        processed=len(times),
        lost=sorted(sent - times.keys()),
        duplicated=sorted(e for e, n in times.items() if n > 1),
        reordered=reorders(done),
        phantoms=sorted(times.keys() - sent - failed),
    )


def _event(d: Done) -> EventKey:
    return (str(d["key"]), int(d["seq"]))


def in_delivery_order(done: Iterable[Done]) -> list[Done]:
    """The records ordered by when each event reached user code (then by when it was done)."""
    return sorted(done, key=lambda d: (d["began"], d["done"]))


def first_deliveries(done: Iterable[Done]) -> dict[str, list[int]]:
    """Per key, the seqs in the order they were first delivered."""
    firsts: dict[str, list[int]] = defaultdict(list)
    seen: set[EventKey] = set()
    for d in in_delivery_order(done):
        event = _event(d)
        if event not in seen:
            seen.add(event)
            firsts[event[0]].append(event[1])
    return dict(firsts)


def reorders(done: Iterable[Done]) -> list[tuple[str, int, int]]:
    """Each first delivery of a seq after a later seq of its key: (key, seq, later seq)."""
    found = []
    for key, seqs in first_deliveries(done).items():
        highest = -1
        for seq in seqs:
            if seq < highest:
                found.append((key, seq, highest))
            highest = max(highest, seq)
    return found


def recovery(attempts: Sequence[Attempt], done: Iterable[Done], since: float) -> float | None:
    """Seconds from ``since`` until, in every partition with a send at or after ``since``,
    an event sent at or after ``since`` reached user code; ``None`` if one never did."""
    waiting = {a.partition for a in attempts if a.ok and a.at >= since}
    firsts = first_began(attempts, done, since)
    if not waiting <= firsts.keys():
        return None
    return max((firsts[p] - since for p in waiting), default=0.0)


def first_began(
    attempts: Sequence[Attempt], done: Iterable[Done], since: float
) -> dict[int, float]:
    """For each partition, when an event sent at or after ``since`` first reached user code
    (events sent earlier do not count: the backlog of a stopping owner is not recovery)."""
    later = {(a.key, a.seq) for a in attempts if a.at >= since}
    firsts: dict[int, float] = {}
    for d in done:
        if _event(d) in later:
            p = int(d["partition"])
            firsts[p] = min(firsts.get(p, math.inf), d["began"])
    return firsts


CAUGHT_UP_GRACE = 0.5
"""Seconds of latency that still count as caught up (an event sent this long ago may be on
its way): well above the milliseconds a healthy run takes, well below a fault's effect."""


def first_done(done: Iterable[Done]) -> dict[EventKey, float]:
    """When each event was first processed (its first ``done``)."""
    finished: dict[EventKey, float] = {}
    for d in done:
        event = _event(d)
        finished[event] = min(finished.get(event, math.inf), d["done"])
    return finished


def caught_up(
    attempts: Sequence[Attempt],
    done: Iterable[Done],
    start: float,
    earliest: float,
    grace: float = CAUGHT_UP_GRACE,
) -> float | None:
    """Seconds from ``start`` to the first moment T, not before ``earliest``, at which every
    acknowledged event sent before T - ``grace`` had been processed: the backlog a fault
    built is drained. ``None`` if that never happened (an event was never processed)."""
    finished = first_done(done)
    events = sorted((a.at, finished.get((a.key, a.seq), math.inf)) for a in attempts if a.ok)
    if not events or earliest < events[0][0] + grace:
        return earliest - start
    highest = -math.inf
    for i, (sent, processed) in enumerate(events):
        highest = max(highest, processed)
        # Between this event's entry into the set and the next one's, the set is fixed.
        until = events[i + 1][0] + grace if i + 1 < len(events) else math.inf
        moment = max(sent + grace, highest, earliest)
        if moment < until:
            return None if math.isinf(moment) else moment - start
    return None


def drained_after(attempts: Sequence[Attempt], done: Iterable[Done], until: float) -> float | None:
    """Seconds from ``until`` until every event sent before ``until`` was processed (0 if
    they all were by then); ``None`` if one never was."""
    finished = first_done(done)
    before = [(a.key, a.seq) for a in attempts if a.ok and a.at < until]
    if any(e not in finished for e in before):
        return None
    return max((max(finished[e] - until, 0.0) for e in before), default=0.0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method; ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Row:
    """One scenario's line in the fault report."""

    scenario: str
    settings: str
    sent: int
    lost: int
    duplicated: int
    reordered: int
    recovery: list[float | None]
    drain: float | None
    peak_rss_mb: float | None
    failed_sends: int = 0
    ambiguous: int = 0
    processed: int = 0
    seconds: float = 0.0
    faults: list[Fault] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        data = dict(vars(self))
        data["faults"] = [
            {"kind": f.kind, "start": f.start, "end": f.end, "duration": round(f.duration, 3)}
            for f in self.faults
        ]
        return data


COLUMNS = (
    ("scenario", 26),
    ("sent", 6),
    ("failed", 6),
    ("lost", 4),
    ("dup", 4),
    ("reord", 5),
    ("recovery s", 22),
    ("drain s", 7),
    ("RSS MB", 6),
)


def recovery_text(values: Sequence[float | None]) -> str:
    """One recovery time, or median and max of several; ``never`` if one did not recover."""
    if not values:
        return "-"
    if any(v is None for v in values):
        return "never"
    known = [v for v in values if v is not None]
    if len(known) == 1:
        return f"{known[0]:.2f}"
    middle = percentile(known, 0.5)
    assert middle is not None
    return f"med {middle:.2f} max {max(known):.2f} n={len(known)}"


def table(rows: Iterable[Row]) -> list[str]:
    """The report as fixed-width text lines, a header first."""

    rows = list(rows)
    widths = [w for _, w in COLUMNS]
    widths[0] = max([widths[0], *(len(r.scenario) for r in rows)])

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = [line([name for name, _ in COLUMNS])]
    for r in rows:
        lines.append(
            line(
                [
                    r.scenario,
                    str(r.sent),
                    str(r.failed_sends),
                    str(r.lost),
                    str(r.duplicated),
                    str(r.reordered),
                    recovery_text(r.recovery),
                    "-" if r.drain is None else f"{r.drain:.2f}",
                    "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
                ]
            )
        )
    return lines
