"""TakeBuffer: batches by size and by the age of their first item."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnel.domain.take import TakeBuffer


def test_a_burst_of_35_comes_out_as_three_tens_then_five_after_within() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=10, within=2.0)

    batches = [b for b in (buffer.offer(n, now=5.0) for n in range(35)) if b is not None]

    assert batches == [list(range(0, 10)), list(range(10, 20)), list(range(20, 30))]
    assert len(buffer) == 5
    assert buffer.due_at() == 7.0
    assert buffer.poll(now=6.99) is None
    assert buffer.poll(now=7.0) == list(range(30, 35))
    assert len(buffer) == 0


def test_a_full_batch_leaves_on_the_offer_that_completes_it() -> None:
    buffer: TakeBuffer[str] = TakeBuffer(size=3, within=60.0)

    assert buffer.offer("a", now=0.0) is None
    assert buffer.offer("b", now=0.0) is None
    assert buffer.offer("c", now=0.0) == ["a", "b", "c"]


def test_the_window_starts_at_the_first_item_not_the_last() -> None:
    buffer: TakeBuffer[str] = TakeBuffer(size=10, within=1.0)
    buffer.offer("a", now=0.0)
    buffer.offer("b", now=0.9)

    assert buffer.due_at() == 1.0
    assert buffer.poll(now=1.0) == ["a", "b"]


def test_the_next_window_starts_at_its_own_first_item_after_a_full_batch() -> None:
    buffer: TakeBuffer[str] = TakeBuffer(size=2, within=1.0)
    buffer.offer("a", now=0.0)
    assert buffer.offer("b", now=0.5) == ["a", "b"]

    buffer.offer("c", now=0.7)

    # Not 1.0 (the old window) and not 1.5 (a periodic tick after the full batch).
    assert buffer.due_at() == pytest.approx(1.7)
    assert buffer.poll(now=1.6) is None
    assert buffer.poll(now=1.7) == ["c"]


def test_the_next_window_starts_at_its_own_first_item_after_a_poll() -> None:
    buffer: TakeBuffer[str] = TakeBuffer(size=5, within=1.0)
    buffer.offer("a", now=0.0)
    assert buffer.poll(now=3.0) == ["a"]

    buffer.offer("b", now=3.4)

    assert buffer.due_at() == pytest.approx(4.4)
    assert buffer.poll(now=4.0) is None


def test_a_steady_trickle_makes_no_stray_one_item_batches() -> None:
    # One item every 0.1 s, size 4, within 1 s: every batch fills up long before its window.
    buffer: TakeBuffer[int] = TakeBuffer(size=4, within=1.0)
    out: list[list[int]] = []
    for n in range(20):
        now = n * 0.1
        polled = buffer.poll(now)
        if polled is not None:
            out.append(polled)
        full = buffer.offer(n, now)
        if full is not None:
            out.append(full)

    assert out == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15], [16, 17, 18, 19]]


def test_poll_never_returns_an_empty_batch() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=2, within=0.0)

    assert buffer.poll(now=100.0) is None
    buffer.offer(1, now=100.0)
    assert buffer.poll(now=100.0) == [1]
    assert buffer.poll(now=200.0) is None


def test_within_zero_yields_whatever_is_there_when_polled() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=10, within=0.0)
    buffer.offer(1, now=3.0)
    buffer.offer(2, now=3.0)

    assert buffer.due_at() == 3.0
    assert buffer.poll(now=3.0) == [1, 2]


def test_size_one_emits_every_item_on_offer() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=1, within=10.0)

    assert [buffer.offer(n, now=0.0) for n in range(3)] == [[0], [1], [2]]
    assert buffer.due_at() is None


def test_an_overdue_item_joins_the_waiting_batch_and_leaves_with_it_on_poll() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=10, within=1.0)
    buffer.offer(1, now=0.0)

    assert buffer.offer(2, now=5.0) is None
    assert buffer.due_at() == 1.0
    assert buffer.poll(now=5.0) == [1, 2]


def test_len_counts_the_waiting_items() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=3, within=1.0)
    assert len(buffer) == 0
    buffer.offer(1, now=0.0)
    buffer.offer(2, now=0.0)
    assert len(buffer) == 2
    buffer.offer(3, now=0.0)
    assert len(buffer) == 0


@pytest.mark.parametrize("size", [0, -1])
def test_size_must_be_at_least_one(size: int) -> None:
    with pytest.raises(ValueError, match="size must be at least 1"):
        TakeBuffer(size=size, within=1.0)


@pytest.mark.parametrize("within", [-0.001, float("nan"), float("inf")])
def test_within_must_be_finite_and_not_negative(within: float) -> None:
    with pytest.raises(ValueError, match="within must be a finite number of seconds >= 0"):
        TakeBuffer(size=1, within=within)


# --- properties -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    after: float  # seconds since the previous step


@dataclass(frozen=True, slots=True)
class Poll:
    after: float


steps = st.lists(
    st.one_of(
        st.builds(Offer, st.sampled_from([0.0, 0.0, 0.25, 0.5, 1.0, 3.0])),
        st.builds(Poll, st.sampled_from([0.0, 0.25, 0.5, 1.0, 3.0])),
    ),
    max_size=80,
)


@given(
    size=st.integers(min_value=1, max_value=6),
    within=st.sampled_from([0.0, 0.5, 1.0, 2.5]),
    script=steps,
)
def test_every_item_comes_out_once_in_order_in_batches_of_one_to_size(
    size: int, within: float, script: list[Offer | Poll]
) -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=size, within=within)
    arrived: dict[int, float] = {}
    out: list[int] = []
    now = 0.0
    for step in script:
        now += step.after
        if isinstance(step, Offer):
            item = len(arrived)
            arrived[item] = now
            batch = buffer.offer(item, now)
            if batch is not None:
                assert len(batch) == size
        else:
            due = buffer.due_at()
            batch = buffer.poll(now)
            if batch is not None:
                assert due is not None
                # A batch released by poll waited `within` since its FIRST item arrived.
                assert now >= arrived[batch[0]] + within
                assert due == arrived[batch[0]] + within
            else:
                assert due is None or now < due
        if batch is not None:
            assert 1 <= len(batch) <= size
            out.extend(batch)
        assert len(buffer) == len(arrived) - len(out)
        assert len(buffer) < size
    rest = buffer.poll(float("inf")) or []  # whatever still waits, once it is due
    assert len(rest) < size
    assert len(buffer) == 0
    out.extend(rest)

    assert out == list(range(len(arrived)))


def test_items_that_arrive_together_fill_the_batch_in_one_offer() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=10, within=1.0)
    assert buffer.room == 10
    assert buffer.offer_many(list(range(4)), now=5.0) is None
    assert buffer.room == 6
    assert buffer.due_at() == 6.0  # the window starts with the first of them
    assert buffer.offer_many(list(range(4, 10)), now=5.5) == list(range(10))
    assert buffer.room == 10
    assert buffer.due_at() is None


def test_offering_more_than_the_batch_has_room_for_is_refused() -> None:
    buffer: TakeBuffer[int] = TakeBuffer(size=3, within=1.0)
    buffer.offer(0, now=0.0)
    with pytest.raises(ValueError, match="3 items offered, but the batch has room for 2"):
        buffer.offer_many([1, 2, 3], now=0.0)
    assert buffer.offer_many([], now=0.0) is None
    assert len(buffer) == 1
