"""Lease and heartbeat rules, judged on the local monotonic clock.

How it works:
    A partition lease is granted by the backend for ``ttl`` seconds, timed on the backend's
    clock from the moment the acquire (or extend) request reaches it. The worker cannot see
    that moment, but it can see an earlier one: when it *sent* the request. Counting from the
    send time is therefore always conservative, however slow the network was. The worker then
    trusts the lease for a little less than ``ttl``::

        deadline(sent_at) = sent_at + ttl - margin
        margin (default)  = min(0.1 * ttl + 0.25, ttl / 2)

    The margin covers what counting from the send time does not: the two clocks running at
    slightly different rates (the 10 %) and the time between checking the deadline and the
    last write that relies on it landing (the fixed 0.25 s). For a short ``ttl`` the cap keeps
    at least half the lease usable: ``ttl=2`` gives a 0.45 s margin and 1.55 s of lease,
    ``ttl=0.5`` gives 0.25 s of each. An explicit ``margin`` must leave the lease valid past
    the first renewal.

    Renewals are sent every ``ttl / 4`` (:func:`renew_every`), so a healthy worker renews three
    times before its lease would run out and one lost or slow renewal costs nothing. At its
    deadline (the deadline itself is already too late), the worker stops processing the
    partition whether or not the backend still shows it as the owner: a stale owner that
    keeps going is the one way ordering could break.

    Heartbeats are the backend's side of the same rule: a member's heartbeat key expires
    with its TTL, and a member whose key is gone is dead.

Example:
    >>> clock = LeaseClock(ttl=8.0)
    >>> clock.margin, clock.deadline(sent_at=100.0)
    (1.05, 106.95)
    >>> renew_every(8.0)
    2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

RATE_ALLOWANCE: Final = 0.1
"""Share of ``ttl`` kept back for the two clocks running at different rates."""

FIXED_ALLOWANCE: Final = 0.25
"""Seconds kept back for the last write that relies on the lease to land."""

RENEWALS_PER_TTL: Final = 4
"""How many renewals are sent per ``ttl``; see :func:`renew_every`."""


def default_margin(ttl: float) -> float:
    """The margin :class:`LeaseClock` uses when none is given.

    ``min(0.1 * ttl + 0.25, ttl / 2)``: a share for clock-rate differences plus a fixed
    allowance, capped so that at least half of a short lease stays usable.

    Example:
        >>> default_margin(2.0), default_margin(30.0), default_margin(0.4)
        (0.45, 3.25, 0.2)
    """
    return min(RATE_ALLOWANCE * ttl + FIXED_ALLOWANCE, ttl / 2)


def renew_every(ttl: float) -> float:
    """How often to renew a lease (or heartbeat) that lasts ``ttl`` seconds.

    Example:
        >>> renew_every(8.0)
        2.0
    """
    return ttl / RENEWALS_PER_TTL


@dataclass(frozen=True, slots=True)
class LeaseClock:
    """Turns the send time of an acquire or extend request into a local lease deadline.

    Args:
        ttl: the lease length the backend grants, in seconds; finite and positive.
        margin: seconds to trust the lease less than ``ttl``; defaults to
            :func:`default_margin`. It must be at least 0 and leave the lease valid past the
            first renewal (``margin < ttl - renew_every(ttl)``).

    Raises:
        ValueError: ``ttl`` or ``margin`` is out of range.

    Example:
        >>> LeaseClock(ttl=2.0).usable
        1.55
        >>> LeaseClock(ttl=2.0, margin=0.5).deadline(sent_at=10.0)
        11.5
    """

    ttl: float
    margin: float

    def __init__(self, ttl: float, margin: float | None = None) -> None:
        if not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl must be a finite number of seconds > 0, got {ttl!r}")
        if margin is None:
            margin = default_margin(ttl)
        limit = ttl - renew_every(ttl)
        if not (math.isfinite(margin) and 0 <= margin < limit):
            raise ValueError(
                f"margin must be >= 0 and < {limit!r} (ttl - renew_every(ttl)) so the lease "
                f"outlives its first renewal, got {margin!r} for ttl {ttl!r}"
            )
        object.__setattr__(self, "ttl", float(ttl))
        object.__setattr__(self, "margin", float(margin))

    @property
    def usable(self) -> float:
        """How long after sending a request the lease may be relied on: ``ttl - margin``.

        Example:
            >>> LeaseClock(ttl=10.0).usable
            8.75
        """
        return self.ttl - self.margin

    @property
    def renew_every(self) -> float:
        """How often to extend this lease; see the module-level :func:`renew_every`.

        Example:
            >>> LeaseClock(ttl=10.0).renew_every
            2.5
        """
        return renew_every(self.ttl)

    def deadline(self, sent_at: float) -> float:
        """The local monotonic time until which a lease requested at ``sent_at`` holds.

        Pass the time the acquire or extend request was *sent*, never when its reply came.

        Example:
            >>> LeaseClock(ttl=8.0).deadline(sent_at=0.0)
            6.95
        """
        return sent_at + self.usable
