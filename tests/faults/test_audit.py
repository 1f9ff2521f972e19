"""The fault suite's audit counts what it claims to (fast, no processes: part of the default
run, so a broken audit cannot make the fault scenarios pass)."""

from __future__ import annotations

from typing import Any

import pytest

from .audit import (
    Fault,
    Row,
    caught_up,
    drained_after,
    first_deliveries,
    percentile,
    recovery,
    recovery_text,
    table,
    tally,
)
from .load import Attempt


def sent(key: str, seq: int, at: float, partition: int = 0, ok: bool = True) -> Attempt:
    return Attempt(key, seq, partition, at, ok, "" if ok else "BackendUnavailable: gone")


def done(key: str, seq: int, began: float, partition: int = 0, pid: int = 1) -> dict[str, Any]:
    return {
        "key": key,
        "seq": seq,
        "partition": partition,
        "id": f"{seq}-0",
        "epoch": 1,
        "pid": pid,
        "began": began,
        "done": began + 0.01,
    }


def test_a_clean_run_counts_nothing_wrong() -> None:
    attempts = [sent("a", n, n) for n in range(3)]
    t = tally(attempts, [done("a", n, n + 0.1) for n in range(3)])
    assert (t.sent, t.processed, t.lost, t.duplicated, t.reordered) == (3, 3, [], [], [])


def test_an_acknowledged_event_never_processed_is_lost() -> None:
    t = tally([sent("a", 0, 0), sent("a", 1, 1)], [done("a", 0, 0.1)])
    assert t.lost == [("a", 1)]


def test_a_failed_send_is_not_lost_but_ambiguous_when_processed_all_the_same() -> None:
    attempts = [sent("a", 0, 0, ok=False), sent("a", 1, 1, ok=False)]
    t = tally(attempts, [done("a", 0, 0.1)])
    assert (t.sent, t.failed, t.ambiguous, t.lost) == (0, 2, 1, [])
    assert t.failures == {"BackendUnavailable": 2}


def test_an_event_processed_twice_is_one_duplicate() -> None:
    records = [done("a", 0, 0.1), done("a", 0, 5.0, pid=2), done("a", 1, 5.1, pid=2)]
    t = tally([sent("a", 0, 0), sent("a", 1, 1)], records)
    assert t.duplicated == [("a", 0)]
    assert t.reordered == []  # a redelivery is not a reorder of first deliveries


def test_a_first_delivery_after_a_later_seq_is_a_reorder() -> None:
    # Recorded in this order, but delivery order is by when user code got each event.
    records = [done("a", 2, 0.3), done("a", 0, 0.1), done("a", 1, 0.5), done("b", 0, 0.2)]
    t = tally([sent("a", n, n / 10) for n in range(3)] + [sent("b", 0, 0)], records)
    assert first_deliveries(records) == {"a": [0, 2, 1], "b": [0]}
    assert t.reordered == [("a", 1, 2)]


def test_records_of_events_never_sent_are_phantoms() -> None:
    assert tally([sent("a", 0, 0)], [done("a", 0, 0.1), done("z", 9, 1)]).phantoms == [("z", 9)]


def test_recovery_waits_for_every_partition_with_later_sends() -> None:
    attempts = [
        sent("b", 0, 8, partition=1),
        sent("a", 0, 10, partition=0),
        sent("b", 1, 10, partition=1),
    ]
    # b#0 was sent before the fault: processing it (a backlog) is not recovery.
    records = [done("a", 0, 10.1, partition=0), done("b", 0, 9.5, partition=1)]
    assert recovery(attempts, records, since=9.0) is None
    records.append(done("b", 1, 12.5, partition=1))
    assert recovery(attempts, records, since=9.0) == 3.5


def test_caught_up_is_when_the_backlog_of_a_fault_is_gone() -> None:
    # Sends every 0.1 s; a fault at 1.0 stalls processing until 4.0, then the backlog goes.
    attempts = [sent("a", n, n / 10) for n in range(80)]
    records = []
    for n in range(80):
        at = n / 10
        began = at + 0.01 if at < 1.0 else max(at + 0.01, 4.0 + (n - 10) * 0.02)
        records.append(done("a", n, began))
    assert recovery(attempts, records, since=1.0) == pytest.approx(3.0)
    # Event n is processed at 4.01 + (n - 10) * 0.02 and counts once sent 0.5 s ago: the
    # backlog is gone from event 41 on, processed at 4.63, before 42 counts (at 4.7).
    assert caught_up(attempts, records, start=1.0, earliest=4.0) == pytest.approx(3.63)
    # An event of the backlog never processed: never caught up (one sent later does not
    # change when the backlog was gone).
    assert caught_up(attempts, [r for r in records if r["seq"] != 20], 1.0, 4.0) is None
    assert caught_up(attempts, records[:-1], start=1.0, earliest=4.0) == pytest.approx(3.63)
    # Nothing was late yet when the fault began: the earliest moment is the caller's choice.
    assert caught_up(attempts, records, start=1.0, earliest=1.0) == 0.0


def test_drained_after_the_load_counts_from_its_end() -> None:
    attempts = [sent("a", 0, 0), sent("a", 1, 1)]
    records = [done("a", 0, 0.1), done("a", 1, 3.0)]
    assert drained_after(attempts, records, until=2.0) == pytest.approx(1.01)
    assert drained_after(attempts, [done("a", 0, 0.1)], until=2.0) is None


def test_the_report_shows_one_recovery_or_the_median_and_max_of_several() -> None:
    assert recovery_text([2.0]) == "2.00"
    assert recovery_text([1.0, 3.0, 2.0]) == "med 2.00 max 3.00 n=3"
    assert recovery_text([1.0, None]) == "never"
    assert percentile([5.0, 1.0, 3.0, 2.0], 0.99) == 5.0
    row = Row("s", "fast", 10, 0, 1, 0, [1.5], 2.0, 70.0, faults=[Fault("sigkill", 1, 1)])
    header, line = table([row])
    assert header.split()[:3] == ["scenario", "sent", "failed"]
    assert line.split() == ["s", "10", "0", "0", "1", "0", "1.50", "2.00", "70"]
