"""Membership of a processor's executors, as stored in ``__memb:{app}.{stream}.{proc}``.

How it works:
    The membership key holds one JSON object keyed by executor id; each value holds the
    executor's worker id and the partitions assigned to it. Every change (a join, a
    graceful leave, the reaping of members whose heartbeat expired) is computed here as a
    new mapping, with the assignment recomputed by :func:`runnel.domain.rebalance.assign`,
    and written with a compare-and-set on the previous bytes. Since the encoding is
    canonical (sorted keys and partitions), two executors computing the same change write
    the same bytes, and a lost race is simply re-read and re-applied.

Example:
    >>> m = joined({}, "e1", "w1", 4)
    >>> sorted(m["e1"].partitions)
    [0, 1, 2, 3]
    >>> m = joined(m, "e2", "w2", 4)
    >>> sorted(m["e1"].partitions), sorted(m["e2"].partitions)
    ([0, 1], [2, 3])
    >>> decode(encode(m)) == m
    True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from runnel.domain.rebalance import assign


@dataclass(frozen=True, slots=True)
class Member:
    """One executor in the membership: its worker and assigned partitions."""

    worker: str
    partitions: frozenset[int]


Members = dict[str, Member]


def decode(raw: bytes | None) -> Members:
    """Parse the stored membership (missing or empty -> no members).

    Raises:
        ValueError: the stored value is not a membership object.
    """
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"membership must be a JSON object, got {type(data).__name__}")
    members: Members = {}
    for executor, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("partitions"), list):
            raise ValueError(f"membership entry for {executor!r} has no partition list")
        members[str(executor)] = Member(
            str(value.get("worker", "")), frozenset(int(p) for p in value["partitions"])
        )
    return members


def encode(members: Mapping[str, Member]) -> bytes:
    """Canonical JSON for ``members`` (sorted keys, sorted partitions)."""
    data = {
        executor: {"worker": m.worker, "partitions": sorted(m.partitions)}
        for executor, m in sorted(members.items())
    }
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def rebalanced(members: Mapping[str, Member], partition_count: int) -> Members:
    """The same members with a balanced, sticky assignment of every partition."""
    current = {executor: m.partitions for executor, m in members.items()}
    after = assign(list(members), range(partition_count), current)
    return {
        executor: Member(m.worker, after.get(executor, frozenset()))
        for executor, m in members.items()
    }


def joined(
    members: Mapping[str, Member],
    executor: str,
    worker: str,
    partition_count: int,
    holding: frozenset[int] = frozenset(),
) -> Members:
    """Membership after ``executor`` joins (a no-op for a member already present).

    ``holding``: partitions the executor still holds leases on (it is re-joining after it
    was reaped while paused); it keeps those nobody else was given meanwhile.
    """
    if executor in members:
        return rebalanced(members, partition_count)
    claimed = frozenset().union(*(m.partitions for m in members.values()))
    updated = dict(members)
    updated[executor] = Member(worker, holding - claimed)
    return rebalanced(updated, partition_count)


def without(members: Mapping[str, Member], gone: Iterable[str], partition_count: int) -> Members:
    """Membership after the executors in ``gone`` left or died."""
    dropped = set(gone)
    return rebalanced({e: m for e, m in members.items() if e not in dropped}, partition_count)


@dataclass(frozen=True, slots=True)
class Announcement:
    """One control-stream message: a membership change, or partitions handed back.

    ``kind`` is ``join``, ``leave``, ``reap`` or ``rejoin`` for membership changes (the
    stored record changed, ``version`` is the new one) and ``released`` when ``executor``
    let go of ``partitions`` so their new owners can take them at once.

    Example:
        >>> note = Announcement("released", "e1", frozenset({3, 1}))
        >>> note.fields()[b"partitions"]
        b'1,3'
        >>> Announcement.parse({**note.fields(), b"version": b"7"})
        Announcement(kind='released', executor='e1', partitions=frozenset({1, 3}), version=7)
    """

    kind: str
    executor: str
    partitions: frozenset[int] = frozenset()
    version: int = 0

    def fields(self) -> dict[bytes, bytes]:
        """The stream fields (the backend adds ``version``)."""
        return {
            b"type": self.kind.encode(),
            b"executor": self.executor.encode(),
            b"partitions": ",".join(map(str, sorted(self.partitions))).encode(),
        }

    @classmethod
    def parse(cls, fields: Mapping[bytes, bytes]) -> Announcement:
        """Read a control entry; unknown or damaged fields give an ``unknown`` note.

        Example:
            >>> Announcement.parse({b"junk": b"1"}).kind
            'unknown'
        """
        try:
            raw = fields.get(b"partitions", b"")
            partitions = frozenset(int(p) for p in raw.split(b",") if p)
            return cls(
                fields[b"type"].decode(),
                fields.get(b"executor", b"").decode(),
                partitions,
                int(fields.get(b"version", b"0")),
            )
        except (KeyError, ValueError, UnicodeDecodeError):
            return cls("unknown", "")


def assigned_to(members: Mapping[str, Member], executor: str) -> frozenset[int]:
    """The partitions assigned to ``executor`` (empty if it is not a member)."""
    member = members.get(executor)
    return member.partitions if member is not None else frozenset()
