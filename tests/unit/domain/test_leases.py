"""Lease deadlines, renewal cadence and heartbeat liveness."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnel.domain.leases import (
    LeaseClock,
    default_margin,
    renew_every,
)


def test_the_deadline_counts_from_the_send_time_minus_the_margin() -> None:
    clock = LeaseClock(ttl=10.0)

    assert clock.margin == pytest.approx(1.25)  # 10% of ttl + 0.25 s
    assert clock.deadline(sent_at=500.0) == pytest.approx(508.75)


def test_a_two_second_lease_stays_usable() -> None:
    clock = LeaseClock(ttl=2.0)

    assert clock.margin == pytest.approx(0.45)
    assert clock.usable == pytest.approx(1.55)
    assert clock.usable > clock.renew_every  # renewed well before it lapses locally


@pytest.mark.parametrize(("ttl", "margin"), [(0.5, 0.25), (0.4, 0.2), (0.1, 0.05)])
def test_the_default_margin_is_capped_at_half_a_short_ttl(ttl: float, margin: float) -> None:
    assert default_margin(ttl) == pytest.approx(margin)
    assert LeaseClock(ttl).usable == pytest.approx(ttl - margin)


@given(st.floats(min_value=1e-3, max_value=1e6))
def test_every_default_lease_outlives_its_first_renewal(ttl: float) -> None:
    clock = LeaseClock(ttl)

    assert 0 < clock.margin <= ttl / 2
    assert clock.usable >= ttl / 2 > renew_every(ttl)
    assert clock.deadline(sent_at=0.0) < ttl  # never trusts the lease for the full ttl


def test_an_explicit_margin_is_used_as_given() -> None:
    clock = LeaseClock(ttl=8.0, margin=0.0)

    assert clock.deadline(sent_at=1.0) == 9.0


@pytest.mark.parametrize("margin", [-0.1, 6.0, 7.9, float("nan")])
def test_a_margin_that_leaves_no_lease_past_the_first_renewal_is_refused(margin: float) -> None:
    with pytest.raises(ValueError, match=re.escape("margin must be >= 0 and < 6.0")):
        LeaseClock(ttl=8.0, margin=margin)


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("inf"), float("nan")])
def test_ttl_must_be_finite_and_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl must be a finite number of seconds > 0"):
        LeaseClock(ttl)


def test_renewal_is_every_quarter_ttl() -> None:
    assert renew_every(8.0) == 2.0
    assert LeaseClock(8.0).renew_every == 2.0


def test_a_late_reply_does_not_extend_the_lease() -> None:
    # The request went out at t=0 and the reply came back at t=5: the lease still ends
    # relative to t=0, because the backend may have granted it as early as t=0.
    clock = LeaseClock(ttl=8.0)

    assert clock.deadline(sent_at=0.0) < 7.0


def test_lease_clocks_are_frozen_values() -> None:
    clock = LeaseClock(ttl=4.0)

    assert clock == LeaseClock(ttl=4.0, margin=0.65)
    with pytest.raises(AttributeError):
        clock.ttl = 5.0  # type: ignore[misc]  # frozen on purpose
