"""A partition's feed hands events out only while its lease may still be relied on."""

from __future__ import annotations

import asyncio

from runnel.adapters.memory.clock import SimulatedClock
from runnel.domain.leases import LeaseClock
from runnel.domain.model import Event, Partition
from runnel.ports import Fence, Lease
from runnel.runtime.feed import PartitionFeed

PARTITION = Partition("ticks", 0)


def feed_on(clock: SimulatedClock, deadline: float) -> PartitionFeed:
    lease = Lease("lock", b"w1:1", 1)
    return PartitionFeed(
        PARTITION,
        "stream",
        lease,
        Fence("lock", b"w1:1", "fenced"),
        deadline,
        prefetch=4,
        clock=clock,
        room=asyncio.Event(),
    )


def events(count: int) -> list[Event]:
    return [Event(PARTITION, f"{n}-0".encode(), {b"n": b"1"}) for n in range(1, count + 1)]


async def test_events_are_handed_out_strictly_before_the_deadline_and_never_at_it() -> None:
    clock = SimulatedClock()
    deadline = LeaseClock(ttl=8.0).deadline(sent_at=0.0)
    feed = feed_on(clock, deadline)
    feed.put(events(3))

    await clock.advance(deadline - 0.001)
    handed = feed.take_now()
    await clock.advance(0.001)

    assert handed is not None
    assert handed.id == b"1-0"
    assert feed.take_now() is None
    assert feed.take_upto(2) == []
    assert feed.lost  # stopped at once: the buffered events are dropped, not handed out
    assert len(feed.buffer) == 0
