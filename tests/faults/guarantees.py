"""The guarantees every fault scenario checks on its report row."""

from __future__ import annotations

from .audit import Row


def assert_guarantees(row: Row, *, graceful: bool = False) -> None:
    """Nothing acknowledged lost; first deliveries in order per key; each fault recovered
    from; with ``graceful``, nothing processed twice."""
    assert row.lost == 0, (
        f"{row.scenario}: {row.lost} acknowledged event(s) never processed, e.g. "
        f"{row.notes['lost (first 5)']}"
    )
    assert row.reordered == 0, (
        f"{row.scenario}: {row.reordered} first deliveries after a later seq of their key, "
        f"e.g. (key, seq, later seq) {row.notes['reordered (first 5)']}"
    )
    assert None not in row.recovery, f"{row.scenario}: a partition was never processed again"
    if graceful:
        assert row.duplicated == 0, (
            f"{row.scenario}: {row.duplicated} event(s) processed twice on a graceful path, "
            f"e.g. {row.notes['duplicated (first 5)']}"
        )
