"""Value objects shared by every layer: partitions, entries, events.

Example:
    >>> p = Partition("orders", 3)
    >>> p.number
    3
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeAlias

Fields: TypeAlias = Mapping[bytes, bytes]
"""The raw field/value pairs of one stream entry."""

TrimMode: TypeAlias = Literal["lossless", "wait", "lossy"]
"""How a send to a full partition is taken: ``lossless`` refuses it, ``wait`` waits for
room, ``lossy`` trims the oldest entries anyway and counts the unprocessed ones it drops."""


@dataclass(frozen=True, slots=True, order=True)
class Partition:
    """One partition of a stream: the unit of ordering and of ownership.

    Example:
        >>> Partition("orders", 0) < Partition("orders", 1)
        True
    """

    stream: str
    number: int


class Entry(NamedTuple):
    """An entry as stored in a partition: its id and raw fields.

    ``fields`` is empty when the entry was trimmed after delivery (it is "gone"). A named
    tuple rather than a dataclass: adapters build one per entry read.
    """

    id: bytes
    fields: Fields
    delivery_count: int = 1


class Event:
    """One event handed to a processor: where it came from and its raw fields.

    Attributes:
        partition: the partition the event was read from.
        id: the stream entry id (bytes, e.g. ``b"1700000000000-0"``).
        data: the raw stored fields.
        delivery_count: how many times the entry has been delivered (1 the first time).
        epoch: the fencing epoch of the lease under which it was read; pass it to external
            stores to reject writes from a stale owner.

    Example:
        >>> e = Event(Partition("orders", 0), b"1-0", {b"data": b"{}"})
        >>> e.redelivered
        False
    """

    __slots__ = (
        "_dead",
        "_decoder",
        "_record",
        "data",
        "delivery_count",
        "epoch",
        "id",
        "partition",
    )

    def __init__(
        self,
        partition: Partition,
        id: bytes,
        data: Fields,
        delivery_count: int = 1,
        epoch: int = 0,
        decoder: Any = None,
    ) -> None:
        self.partition = partition
        self.id = id
        self.data = data
        self.delivery_count = delivery_count
        self.epoch = epoch
        self._decoder = decoder
        self._record: Any = None
        self._dead = False  # set once dead-lettered (and so acknowledged)

    @property
    def redelivered(self) -> bool:
        """True when this entry was delivered before (e.g. to a previous owner)."""
        return self.delivery_count > 1

    @property
    def entry_id(self) -> str:
        """The entry id as text."""
        return self.id.decode()

    def record(self) -> Any:
        """Decode the event into its stream's Record (cached).

        Raises:
            runnel.errors.DecodeError: the entry cannot be decoded.
        """
        if self._record is None:
            if self._decoder is None:
                raise TypeError("this event has no decoder attached")
            self._record = self._decoder(self.data)
        return self._record

    def __repr__(self) -> str:
        return (
            f"Event(partition={self.partition.stream}:{self.partition.number}, "
            f"id={self.entry_id}, delivery_count={self.delivery_count})"
        )
