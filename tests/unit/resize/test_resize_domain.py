"""The resize rules as data: the plan, the history, and the barrier's phases."""

from __future__ import annotations

import pytest

from runnel.domain.ids import MIN_ID, StreamId
from runnel.domain.resize import (
    MARKER_FIELD,
    Position,
    ResizeRefused,
    barrier,
    format_history,
    marker_count,
    parse_history,
    passed,
    plan_resize,
)


def test_growing_creates_the_new_partitions_and_switches_the_old() -> None:
    plan = plan_resize(3, 5)
    assert plan.new_partitions == (3, 4)
    assert plan.switched == (0, 1, 2)
    assert plan.changes


def test_the_same_count_changes_nothing() -> None:
    assert not plan_resize(4, 4).changes


@pytest.mark.parametrize(("current", "requested"), [(8, 4), (2, 1), (4, 0)])
def test_shrinking_is_refused(current: int, requested: int) -> None:
    with pytest.raises(ResizeRefused):
        plan_resize(current, requested)


def test_history_round_trips_and_rejects_what_does_not_end_with_the_count() -> None:
    assert parse_history(format_history((4, 8, 16)), 16) == (4, 8, 16)
    assert parse_history(b"4,8", 16) == (16,)  # stale: not ending with the count
    assert parse_history(b"8,4", 4) == (4,)  # not growing
    assert parse_history(None, 4) == (4,)


def test_only_a_one_field_marker_entry_is_a_marker() -> None:
    assert marker_count({MARKER_FIELD: b"8"}) == 8
    assert marker_count({MARKER_FIELD: b"8", b"data": b"x"}) is None
    assert marker_count({b"data": b"x"}) is None


def test_a_partition_is_passed_once_everything_up_to_its_switch_is_acknowledged() -> None:
    switch = StreamId(100, 0)
    assert not passed(switch, None)
    assert not passed(switch, Position(StreamId(99, 5), None))  # not delivered yet
    assert not passed(switch, Position(StreamId(100, 0), StreamId(100, 0)))  # pending
    assert passed(switch, Position(StreamId(100, 0), None))
    assert passed(switch, Position(StreamId(300, 0), StreamId(101, 0)))  # only later pending


def _points(old: int, grown: int, ms: int) -> dict[tuple[int, int], StreamId]:
    return {(p, grown): StreamId(ms, p) for p in range(old)}


def test_new_partitions_wait_until_every_old_one_passed() -> None:
    switches = _points(4, 8, 100)
    done = {p: Position(StreamId(100, p), None) for p in range(4)}
    waiting = barrier((4, 8), switches, {**done, 2: Position(StreamId(50, 0), None)})
    assert waiting.waiting == {2}
    assert [waiting.allows(p) for p in range(8)] == [True] * 4 + [False] * 4
    assert waiting.limit(0) == StreamId(100, 0)  # passed, yet still stopped at its switch
    assert waiting.held == 8
    released = barrier((4, 8), switches, done)
    assert released.released
    assert released.held == 0
    assert all(released.allows(p) and released.limit(p) is None for p in range(8))


def test_resizes_chain_phase_by_phase() -> None:
    switches = {**_points(2, 4, 100), **_points(4, 8, 200)}
    first_done = {p: Position(StreamId(100, p), None) for p in range(2)}
    b = barrier((2, 4, 8), switches, first_done)
    assert (b.active, b.waiting) == (4, frozenset({0, 1, 2, 3}))
    assert b.limit(3) == StreamId(200, 3)
    nothing = barrier((2, 4, 8), switches, {})
    assert (nothing.active, nothing.waiting) == (2, frozenset({0, 1}))
    everything = {p: Position(StreamId(200, p), None) for p in range(4)}
    assert barrier((2, 4, 8), switches, everything).released


def test_a_missing_switch_point_releases_nothing() -> None:
    switches = _points(4, 8, 100)
    del switches[(1, 8)]
    done = {p: Position(StreamId(900, 0), None) for p in range(4)}
    b = barrier((4, 8), switches, done)
    assert b.waiting == {1}
    assert b.limit(1) == MIN_ID
