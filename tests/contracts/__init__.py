"""Shared behaviour of the ports, bound by every adapter's tests.

Each ``*Contract`` class holds async test methods that pytest does not collect on its own
(the class names do not start with ``Test``). An adapter binds a suite by subclassing it in
a ``Test*`` class that provides these fixtures:

* ``make_log`` / ``make_locks`` / ``make_kv`` / ``make_membership``: async factories without
  arguments returning a fresh stream log (:class:`~runnel.ports.StreamLog` and
  :class:`~runnel.ports.StreamAdmin`) /
  :class:`~runnel.ports.PartitionLocks` / :class:`~runnel.ports.KeyValue` /
  :class:`~runnel.ports.Membership`. Within one test all three must talk to the same backend:
  the stream-log suite takes fences from ``make_locks`` and reads counters with ``make_kv``.
* ``advance``: an async callable ``advance(seconds)`` that lets backend time pass (advance a
  simulated clock, or really sleep against a real server). The suites keep these short.

Tests never flush the backend: every test names its keys with :func:`key_space`, so the
suites can share one real Redis.

Example:
    >>> keys = key_space()
    >>> keys("orders").endswith(":orders")
    True
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol
from uuid import uuid4

from runnel.domain.model import Entry
from runnel.ports import (
    AckRequest,
    KeyValue,
    Membership,
    PartitionLocks,
    ReadRequest,
    StreamAdmin,
    StreamLog,
)


class LogUnderTest(StreamLog, StreamAdmin, Protocol):
    """A stream log in both of its roles, as every adapter's is."""


MakeLog = Callable[[], Awaitable[LogUnderTest]]
"""Fixture type: returns a fresh stream log (both roles)."""

MakeLocks = Callable[[], Awaitable[PartitionLocks]]
"""Fixture type: returns a fresh PartitionLocks on the same backend."""

MakeKV = Callable[[], Awaitable[KeyValue]]
"""Fixture type: returns a fresh KeyValue on the same backend."""

MakeMembership = Callable[[], Awaitable[Membership]]
"""Fixture type: returns a fresh Membership on the same backend."""

Advance = Callable[[float], Awaitable[None]]
"""Fixture type: lets ``seconds`` of backend time pass."""


def key_space() -> Callable[[str], str]:
    """Return a function naming keys under a prefix unique to the calling test.

    The prefix is a Redis Cluster hash tag, so all keys of one test share a slot.

    Example:
        >>> keys = key_space()
        >>> keys("a").split(":")[0] == keys("b").split(":")[0]
        True
    """
    prefix = f"{{t-{uuid4().hex[:12]}}}"

    def name(suffix: str) -> str:
        return f"{prefix}:{suffix}"

    return name


async def read_slots(
    log: StreamLog, requests: Sequence[ReadRequest]
) -> list[list[Entry] | Exception]:
    """Group reads alone: a fetch round that acknowledges nothing."""
    return (await log.exchange([], requests))[1]


async def ack_slots(log: StreamLog, requests: Sequence[AckRequest]) -> list[int | Exception]:
    """Acknowledgements alone: a fetch round that reads nothing."""
    return (await log.exchange(requests, []))[0]
