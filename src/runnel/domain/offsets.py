"""Where an operator moves a processor's position, and what a skip may acknowledge.

How it works
------------

A processor's position on a partition is its consumer group's last-delivered id: the
next entry it reads is the first one above it. (Entries delivered but not acknowledged
wait in the pending entries list and are re-read first, in id order.)

A reset moves that position. The operator names a target; every partition resolves it to
the id the group restarts *after*:

==============  ====================================  ===============================
target          the next entry processed              restart after
==============  ====================================  ===============================
``earliest``    the oldest entry still stored          ``0-0``
``latest``      the next entry sent (none stored)      the newest id (``$``)
``ENTRY_ID``    the first entry at or above the id     the id just below it
``ISO_TIME``    the first entry sent at or after it    the id just below ``<ms>-0``
==============  ====================================  ===============================

A reset forgets the pending entries: those above the new position are read again as new
entries, those at or below it are never processed. Moving back re-reads the entries in
``(to, from]``; moving forward skips those in ``(from, to]``.

A skip acknowledges one entry, and only the one the partition would process next (unless
forced): the oldest pending entry when there is one (the entry a halted or quarantined
partition failed on), else the first entry above the position. :func:`next_entry`
decides which that is, :data:`SKIPPABLE` what the skip then does.

Example:
    >>> parse_target("earliest").restart_after(None)
    b'0-0'
    >>> parse_target("1700000000000-5").restart_after(None)
    b'1700000000000-4'
    >>> parse_target("2023-11-14T22:13:20Z").restart_after(None)
    b'1699999999999-18446744073709551615'
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Final

from runnel.domain.ids import MIN_ID, StreamId


class TargetKind(enum.Enum):
    """The four kinds of reset target."""

    EARLIEST = "earliest"
    LATEST = "latest"
    ENTRY_ID = "id"
    TIME = "time"


@dataclass(frozen=True, slots=True)
class ResetTarget:
    """A parsed reset target (see the module's table).

    Attributes:
        kind: which of the four.
        at: the first id the processor should see (ENTRY_ID and TIME only).
        text: what the operator wrote.
    """

    kind: TargetKind
    at: StreamId | None
    text: str

    def restart_after(self, newest: StreamId | None) -> bytes:
        """The id the group restarts after, given the partition's newest stored id.

        ``latest`` on an empty partition (``newest`` None) is ``$``: the stream's last id
        as the backend knows it.
        """
        if self.kind is TargetKind.EARLIEST:
            return MIN_ID.encode()
        if self.kind is TargetKind.LATEST:
            return newest.encode() if newest is not None else b"$"
        assert self.at is not None
        return (self.at.previous() if self.at > MIN_ID else MIN_ID).encode()


def parse_target(text: str) -> ResetTarget:
    """Parse ``earliest``, ``latest``, an entry id (``1700000000000-0``, or ``<ms>``) or an
    ISO 8601 time (UTC when it names no zone).

    Raises:
        ValueError: none of these (the message lists what is accepted).

    Example:
        >>> parse_target("latest").kind
        <TargetKind.LATEST: 'latest'>
        >>> parse_target("soon")
        Traceback (most recent call last):
        ...
        ValueError: 'soon' is not a reset target: expected earliest, latest, an entry id (1700000000000-0) or an ISO 8601 time (2026-01-31T12:00:00Z)
    """  # noqa: E501
    word = text.strip()
    if word.lower() in ("earliest", "latest"):
        return ResetTarget(TargetKind(word.lower()), None, text)
    if word and all(c.isdigit() or c == "-" for c in word) and word.count("-") <= 1:
        try:
            return ResetTarget(TargetKind.ENTRY_ID, StreamId.parse(word), text)
        except ValueError:
            pass
    else:
        try:
            when = datetime.fromisoformat(word.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            ms = int(when.timestamp() * 1000)
            if ms >= 0:
                return ResetTarget(TargetKind.TIME, StreamId(ms, 0), text)
    raise ValueError(
        f"{text!r} is not a reset target: expected earliest, latest, an entry id "
        "(1700000000000-0) or an ISO 8601 time (2026-01-31T12:00:00Z)"
    )


def parse_entry_id(text: str) -> StreamId:
    """An entry id as an operator types it (``<ms>-<seq>``).

    Raises:
        ValueError: it is not one.

    Example:
        >>> parse_entry_id("17-3")
        StreamId(ms=17, seq=3)
    """
    word = text.strip()
    if word.count("-") == 1 and word.replace("-", "").isdigit():
        try:
            return StreamId.parse(word)
        except ValueError:
            pass
    raise ValueError(f"{text!r} is not an entry id (expected <milliseconds>-<sequence>)")


@dataclass(frozen=True, slots=True)
class Move:
    """What a reset does to one partition: entries re-read or skipped, pending forgotten."""

    reread: int
    skipped: int
    pending_forgotten: int


def entry_time(sid: StreamId) -> datetime:
    """When an entry was appended (the milliseconds of its id), as aware UTC.

    Example:
        >>> entry_time(StreamId(0, 3)).isoformat()
        '1970-01-01T00:00:00+00:00'
    """
    return datetime.fromtimestamp(sid.ms / 1000, tz=timezone.utc)


class NextEntry(enum.Enum):
    """Where the entry a partition processes next comes from."""

    PENDING = "pending"
    """The oldest entry of the pending entries list (delivered, never acknowledged)."""
    UNDELIVERED = "undelivered"
    """The first entry above the group's position (nothing is pending)."""


@dataclass(frozen=True, slots=True)
class SkipAction:
    """What skipping an entry does: acknowledge it, or move the position past it."""

    acknowledge: bool
    move_position: bool


SKIPPABLE: Final = MappingProxyType(
    {
        NextEntry.PENDING: SkipAction(acknowledge=True, move_position=False),
        NextEntry.UNDELIVERED: SkipAction(acknowledge=False, move_position=True),
    }
)
"""Skipping a pending entry acknowledges it; skipping an undelivered one moves the
group's position to it (so it is never delivered)."""


def next_entry(oldest_pending: StreamId | None) -> NextEntry:
    """Where the next entry comes from: the pending list first, as the fetcher reads it.

    Example:
        >>> next_entry(None), next_entry(StreamId(5, 0))
        (<NextEntry.UNDELIVERED: 'undelivered'>, <NextEntry.PENDING: 'pending'>)
    """
    return NextEntry.UNDELIVERED if oldest_pending is None else NextEntry.PENDING
