"""Shared behaviour of the ports, bound by every adapter's tests.

Each ``*Contract`` class holds async test methods that pytest does not collect on its own
(the class names do not start with ``Test``). An adapter binds a suite by subclassing it in
a ``Test*`` class that provides these fixtures:

* ``make_log`` / ``make_locks`` / ``make_kv`` / ``make_membership``: async factories without
  arguments returning a fresh :class:`~runnel.ports.StreamLog` /
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

from collections.abc import Awaitable, Callable
from uuid import uuid4

from runnel.ports import KeyValue, Membership, PartitionLocks, StreamLog

MakeLog = Callable[[], Awaitable[StreamLog]]
"""Fixture type: returns a fresh StreamLog."""

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


def id_parts(entry_id: bytes) -> tuple[int, int]:
    """Split a stream id ``b"<ms>-<seq>"`` into comparable integers.

    Example:
        >>> id_parts(b"17-3")
        (17, 3)
    """
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or b"0")
