"""Growing a stream's partition count without reordering any key.

How it works:
    A key's partition is ``hash(key) % count``: growing ``count`` from M to N moves most
    keys to another partition while their earlier events wait, unprocessed, in the old
    one. Three rules keep every key in order across the change.

    **1. One switch point per old partition.** A resize (:func:`plan_resize`) first
    creates the new partitions and their consumer groups, then, for each old partition
    ``i`` in one atomic step in ``i``'s own slot, appends a *marker* entry to ``i``
    (:data:`MARKER_FIELD`; its id is ``i``'s *switch point*) and records in
    ``__rsz:...{i}`` the count senders must route with (``count = N``) and the switch
    point (field ``N``). Last, the stream's metadata gets ``partition_count = N`` and
    the history of counts (``resized = "M,N"``). A worker that reads a marker before it
    knows of the resize stops the partition there until it does, so no worker, however
    late it reads the metadata, processes an entry past a switch point too early.

    **2. Senders route with the count the partition expects.** Every append carries the
    count it was routed with, and a partition whose ``count`` differs refuses it
    (:class:`runnel.errors.StreamResized`) before writing anything. The sender reads the
    metadata again, routes the refused events with the new count and sends them again.
    So after ``i``'s switch point only N-routed events enter ``i``, and no N-routed event
    exists before every old partition has its switch point (the metadata changes last).

    **3. Nothing after a switch point is processed before every old partition is
    processed up to its own.** Each processor (consumer group) derives a
    :class:`Barrier` from the stream's history, the switch points and its group's
    position on every old partition (:func:`barrier`): while some old partition has not
    been *passed* (every entry up to its switch point delivered and acknowledged), the
    old partitions hand out entries only up to their switch points and the new ones
    nothing. Once all are passed, everything flows. A key's events before the resize
    are all at or before the switch point of its old partition; its events after it are
    all after a switch point, or in a new partition: so they are processed after.

    With several resizes (M -> N -> P) the phases chain: the partitions below M are
    processed up to their M -> N switch points, then all partitions below N up to their
    N -> P switch points, then everything.

    ============================== ===========================================
    partition p, phase M -> N       what the processor may hand to user code
    ============================== ===========================================
    p < M (old)                     entries up to p's switch point for N
    M <= p (new)                    nothing
    every old partition passed      everything (the next phase, or no limit)
    ============================== ===========================================

Example:
    >>> plan = plan_resize(4, 8)
    >>> plan.new_partitions, plan.switched
    ((4, 5, 6, 7), (0, 1, 2, 3))
    >>> switches = {(p, 8): StreamId(10, p) for p in range(4)}
    >>> done = {p: Position(StreamId(10, p), None) for p in range(3)}
    >>> b = barrier((4, 8), switches, done)
    >>> sorted(b.waiting), b.limit(3), b.allows(5)
    ([3], StreamId(ms=10, seq=3), False)
    >>> barrier((4, 8), switches, {**done, 3: Position(StreamId(11, 0), None)}).released
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Final

from runnel.domain.ids import MIN_ID, StreamId

PARTITION_COUNT: Final = b"partition_count"
"""Metadata field holding the stream's partition count."""

COUNT_FIELD: Final = b"count"
"""Field of ``__rsz:...{n}`` holding the count senders must route with."""

HISTORY_FIELD: Final = b"resized"
"""Metadata field holding the stream's partition counts in order (``"4,8"``)."""

RESIZING_FIELD: Final = b"resizing"
"""Metadata field present while a resize to that count is under way."""

MARKER_FIELD: Final = b"__runnel_resize"
"""The one field of a partition's switch marker entry (its value: the count grown to).

Workers never hand a marker to user code: they acknowledge it, and a worker that meets
one before it knows of the resize holds the partition there until it does."""


def marker_count(fields: Mapping[bytes, bytes]) -> int | None:
    """The count a switch marker entry records; None for any other entry.

    Example:
        >>> marker_count({MARKER_FIELD: b"8"}), marker_count({b"data": b"{}"})
        (8, None)
    """
    if len(fields) != 1:
        return None
    raw = fields.get(MARKER_FIELD)
    return int(raw) if raw is not None and raw.isdigit() else None


class ResizeRefused(ValueError):
    """A resize that cannot be done (shrinking, or a count below 1)."""


@dataclass(frozen=True, slots=True)
class ResizePlan:
    """What growing a stream from ``current`` to ``requested`` partitions does.

    Attributes:
        current: the stored partition count.
        requested: the count asked for.
        new_partitions: the partitions to create (empty when nothing changes).
        switched: the old partitions that get a switch point.
    """

    current: int
    requested: int
    new_partitions: tuple[int, ...]
    switched: tuple[int, ...]

    @property
    def changes(self) -> bool:
        """Whether the plan changes anything (False when the count is already that)."""
        return bool(self.new_partitions)


def plan_resize(current: int, requested: int) -> ResizePlan:
    """The plan to grow a stream of ``current`` partitions to ``requested``.

    Raises:
        ResizeRefused: ``requested`` is smaller than ``current`` (shrinking would leave
            entries in partitions no key routes to any more) or below 1.

    Example:
        >>> plan_resize(4, 4).changes
        False
        >>> plan_resize(8, 4)
        Traceback (most recent call last):
        ...
        runnel.domain.resize.ResizeRefused: cannot shrink a stream from 8 to 4 partitions: ...
    """
    if requested < 1:
        raise ResizeRefused(f"a stream needs at least 1 partition, not {requested}")
    if requested < current:
        raise ResizeRefused(
            f"cannot shrink a stream from {current} to {requested} partitions: entries of "
            "the removed partitions would be stranded and keys would be reordered; only "
            "growing is supported"
        )
    if requested == current:
        return ResizePlan(current, requested, (), ())
    return ResizePlan(current, requested, tuple(range(current, requested)), tuple(range(current)))


def parse_history(raw: bytes | None, current: int) -> tuple[int, ...]:
    """The partition counts a stream has had, in order, ending with ``current``.

    ``raw`` is the metadata's ``resized`` field (missing on a stream never resized).

    Example:
        >>> parse_history(None, 4), parse_history(b"4,8", 8), parse_history(b"junk", 8)
        ((4,), (4, 8), (8,))
    """
    if not raw:
        return (current,)
    try:
        counts = tuple(int(part) for part in raw.split(b","))
    except ValueError:
        return (current,)
    if not counts or counts[-1] != current or list(counts) != sorted(set(counts)):
        return (current,)
    return counts


def format_history(counts: Sequence[int]) -> bytes:
    """The metadata's ``resized`` field for ``counts``.

    Example:
        >>> format_history((4, 8, 16))
        b'4,8,16'
    """
    return ",".join(str(c) for c in counts).encode()


@dataclass(frozen=True, slots=True)
class Position:
    """A consumer group's position on one partition.

    Attributes:
        delivered: the group's last-delivered id (None when the group is missing).
        oldest_pending: the lowest id the group has delivered and not acknowledged.
    """

    delivered: StreamId | None
    oldest_pending: StreamId | None


def passed(switch: StreamId, position: Position | None) -> bool:
    """Whether a group has processed and acknowledged a partition up to ``switch``.

    Example:
        >>> passed(StreamId(5, 0), Position(StreamId(7, 0), StreamId(6, 0)))
        True
        >>> passed(StreamId(5, 0), Position(StreamId(7, 0), StreamId(5, 0)))
        False
        >>> passed(MIN_ID, None)
        True
    """
    if switch == MIN_ID:
        return True  # the partition was empty at the switch
    if position is None or position.delivered is None or position.delivered < switch:
        return False
    return position.oldest_pending is None or position.oldest_pending > switch


@dataclass(frozen=True, slots=True)
class Barrier:
    """What one processor may hand to user code, per partition, during a resize.

    Attributes:
        count: the stream's partition count (the last of its history).
        active: partitions below this number may be consumed; the others are held.
        limits: per active partition with a limit, the last id it may hand out.
        waiting: the old partitions not yet processed up to their switch point.
    """

    count: int
    active: int
    limits: Mapping[int, StreamId] = field(default_factory=dict)
    waiting: frozenset[int] = frozenset()

    @property
    def released(self) -> bool:
        """Whether nothing is held back any more."""
        return not self.limits and self.active >= self.count

    def allows(self, partition: int) -> bool:
        """Whether ``partition`` may be consumed at all now."""
        return partition < self.active

    def limit(self, partition: int) -> StreamId | None:
        """The last id ``partition`` may hand out now (None: no limit)."""
        return self.limits.get(partition)

    @property
    def held(self) -> int:
        """How many partitions are held back entirely or in part."""
        return self.count - self.active + len(self.limits)


def unlimited(count: int) -> Barrier:
    """The barrier of a stream with no resize pending: everything flows."""
    return Barrier(count, count)


def barrier(
    history: Sequence[int],
    switches: Mapping[tuple[int, int], StreamId],
    positions: Mapping[int, Position],
) -> Barrier:
    """The barrier of one processor.

    Args:
        history: the stream's partition counts, in order (:func:`parse_history`).
        switches: ``(partition, grown_to) -> switch point`` for every old partition of
            every resize.
        positions: the processor's group position per old partition.

    A missing switch point is treated as not passed (the resize did not finish writing
    it), so nothing past the phase is released on a guess.
    """
    count = history[-1]
    for old, grown in pairwise(history):
        points = {p: switches.get((p, grown)) for p in range(old)}
        waiting = frozenset(
            p for p, point in points.items() if point is None or not passed(point, positions.get(p))
        )
        if waiting:
            limits = {p: point if point is not None else MIN_ID for p, point in points.items()}
            return Barrier(count, old, limits, waiting)
    return unlimited(count)
