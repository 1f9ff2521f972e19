"""The outbox path of effectively-once commits, simulated on the memory backend.

The memory backend is told that some pairs of keys are not colocated (as partitions in
different Redis Cluster slots are not), so the commits of those outputs go through the
input partition's outbox and are relayed. Whatever fails (a worker killed with entries
in its outbox, a relay cut between its append and its delete, a worker paused past its
lease), every order has exactly one committed output, the totals are exact and each
customer's outputs come in order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.errors import BackendUnavailable
from runnel.ports import Fence
from runnel.testing import Harness
from tests.unit.runtime.test_effectively_once import (
    check_exactly_once,
    committed_totals,
    orders_for,
    totals_app,
)


def split_slots(key: str, other: str) -> bool:
    """Partitions 0 and 1 of the two streams share a "slot" with the same number of the
    other stream; partitions 2 and 3 share none (their outputs take the outbox)."""
    n, m = key.rsplit(".", 1)[1], other.rsplit(".", 1)[1]
    return n == m and n in ("0", "1")


def memory_log(h: Harness) -> MemoryStreamLog:
    """The harness's memory stream log, behind its gate."""
    log = cast(Any, h.backend.log)._inner
    assert isinstance(log, MemoryStreamLog)
    return log


def outbox_lengths(h: Harness) -> dict[int, int]:
    """Entries left in each partition's outbox."""
    spec = h.app.processors["running_totals"]
    out = {}
    for n in range(spec.stream.partition_count):
        stream = h.broker.stream(spec.stream.keys.outbox(spec.name, n))
        out[n] = 0 if stream is None else len(stream)
    return out


def relayed(h: Harness) -> int:
    return sum(
        executor.commits.relayed for w in h.workers.values() for executor in w.worker.executors
    )


async def test_other_slot_outputs_are_relayed_once_in_order() -> None:
    app, orders, totals = totals_app()
    sent = orders_for(60)
    async with Harness(app) as h:
        memory_log(h).colocate = split_slots
        w1 = await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        assert outbox_lengths(h) == {0: 0, 1: 0, 2: 0, 3: 0}
        (executor,) = w1.worker.executors
        by_partition = {n: len(entries) for n, entries in h.entries(totals).items()}
        assert executor.commits.relayed == by_partition.get(2, 0) + by_partition.get(3, 0) > 0
        assert executor.commits.outputs == len(sent)


async def test_a_relay_cut_between_append_and_delete_appends_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The relay appended, and the delete's reply never came (a connection lost): the
    # entries are relayed again under the same idempotency keys, and added once.
    real = MemoryStreamLog.drop_relayed
    cut: list[int] = []

    async def lost_every_third(
        self: MemoryStreamLog, outbox: str, fence: Fence, ids: Sequence[bytes]
    ) -> int:
        cut.append(len(ids))
        if len(cut) % 3 == 1:
            raise BackendUnavailable("connection lost before the delete")
        return await real(self, outbox, fence, ids)

    # The memory backend is built inside the harness: there is no port to inject into.
    monkeypatch.setattr(MemoryStreamLog, "drop_relayed", lost_every_third)
    app, orders, totals = totals_app()
    sent = orders_for(48)
    async with Harness(app) as h:
        memory_log(h).colocate = split_slots
        w1 = await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        (executor,) = w1.worker.executors
        assert executor.commits.relay_failures >= 1
        assert outbox_lengths(h) == {0: 0, 1: 0, 2: 0, 3: 0}


async def test_a_new_owner_relays_what_a_killed_one_left_in_its_outbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = MemoryStreamLog.drop_relayed
    broken = [True]

    async def unreachable_while_broken(
        self: MemoryStreamLog, outbox: str, fence: Fence, ids: Sequence[bytes]
    ) -> int:
        if broken[0]:
            raise BackendUnavailable("the outbox's node does not answer")
        return await real(self, outbox, fence, ids)

    monkeypatch.setattr(MemoryStreamLog, "drop_relayed", unreachable_while_broken)
    app, orders, totals = totals_app()
    sent = orders_for(36)
    async with Harness(app) as h:
        memory_log(h).colocate = split_slots
        w1 = await h.start("w1")
        await orders.send(*sent)
        # w1 commits to its outboxes, relays (appends) and cannot delete: it retries.
        await h.run_until(lambda: sum(outbox_lengths(h).values()) > 0)
        await w1.kill()
        assert sum(outbox_lengths(h).values()) > 0
        broken[0] = False
        await h.start("w2")
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        assert outbox_lengths(h) == {0: 0, 1: 0, 2: 0, 3: 0}


async def test_killed_and_paused_owners_leave_every_output_once_across_both_paths() -> None:
    app, orders, totals = totals_app(work=0.5)
    sent = orders_for(120)
    async with Harness(app) as h:
        memory_log(h).colocate = split_slots
        w1, w2, w3 = await h.start("w1"), await h.start("w2"), await h.start("w3")
        await orders.send(*sent)
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 20)
        await w2.kill()
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 50)
        w3.pause()  # its leases run out with commits and relays in flight
        await h.advance(12)
        w3.resume()  # its late commits and relay deletes are refused by the fence
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 80)
        await w1.kill()
        await h.start("w4")
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        assert outbox_lengths(h) == {0: 0, 1: 0, 2: 0, 3: 0}
        assert relayed(h) > 0


async def test_a_relay_after_a_commit_does_not_read_back_what_the_commit_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The commit's reply gives the outbox entries' ids: when they are all the outbox
    # holds, the relay appends them without reading the outbox (one round trip less).
    real = MemoryStreamLog.read_outbox
    reads: list[str] = []

    async def counted(self: MemoryStreamLog, outbox: str, fence: Fence, count: int) -> list[Any]:
        reads.append(outbox)
        return await real(self, outbox, fence, count)

    monkeypatch.setattr(MemoryStreamLog, "read_outbox", counted)
    app, orders, totals = totals_app()
    sent = orders_for(60)
    async with Harness(app) as h:
        memory_log(h).colocate = split_slots
        w1 = await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        (executor,) = w1.worker.executors
        assert executor.commits.relayed > 0
        assert len(reads) == len(set(reads)) == 4  # once per partition, when it is taken
