"""Stream ids: parsing, ordering and stepping agree with Redis' rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnel.domain.ids import MAX_ID, MAX_PART, MIN_ID, StreamId

parts = st.integers(min_value=0, max_value=MAX_PART)
ids = st.builds(StreamId, parts, parts)


@given(ids)
def test_an_id_reads_back_as_it_was_written(sid: StreamId) -> None:
    assert StreamId.parse(sid.encode()) == sid
    assert StreamId.parse(str(sid)) == sid


@given(ids, ids)
def test_ids_order_by_milliseconds_then_sequence(a: StreamId, b: StreamId) -> None:
    assert (a < b) == ((a.ms, a.seq) < (b.ms, b.seq))


@given(ids.filter(lambda s: s != MAX_ID))
def test_next_is_the_smallest_id_above_and_previous_undoes_it(sid: StreamId) -> None:
    after = sid.next()
    assert after > sid
    assert after.previous() == sid


def test_the_bounds_of_a_range_read_as_xrange_reads_them() -> None:
    assert StreamId.parse(b"-") == MIN_ID
    assert StreamId.parse(b"+") == MAX_ID
    assert StreamId.parse(b"7") == StreamId(7, 0)
    assert StreamId.parse(b"7", end=True) == StreamId(7, MAX_PART)


@pytest.mark.parametrize(
    "raw", [b"", b"x", b"1-", b"-1", b"1-2-3", b"1.5", f"{2**64}-0".encode(), "٣-0".encode()]
)
def test_anything_else_is_not_an_id(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a stream entry id"):
        StreamId.parse(raw)


def test_nothing_lies_below_zero() -> None:
    with pytest.raises(ValueError, match="smallest"):
        MIN_ID.previous()
