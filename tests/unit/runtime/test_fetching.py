"""How the fetcher reads and acknowledges: round trips, failures, refused reads, idling."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

from dependency_injector import providers

from runnel import App, Events, Stream
from runnel.adapters.memory.clock import SimulatedClock
from runnel.domain.model import Entry, Partition
from runnel.domain.resize import MARKER_FIELD
from runnel.errors import BackendUnavailable
from runnel.ports import AckRequest, Fence, Lease, ReadRequest
from runnel.runtime.acks import Acker
from runnel.runtime.budget import ByteBudget
from runnel.runtime.feed import NEW, PartitionFeed
from runnel.runtime.fetcher import Fetcher

from .conftest import Tick, drain, ticks_app, until


def recording_app(
    make_app: Callable[..., App], **settings: Any
) -> tuple[App, Stream[Tick], list[int]]:
    """An app whose processor ``proc`` of the stream ``ticks`` notes every tick's seq."""
    app, ticks = ticks_app(make_app, **settings)
    seen: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)

    return app, ticks, seen


def counting_exchange(app: App, monkeypatch: Any) -> list[tuple[int, int]]:
    """Record (acknowledged ids, partitions read) for every exchange round trip."""
    calls: list[tuple[int, int]] = []
    log = app.backend.log
    real = log.exchange

    async def exchange(acks: Sequence[AckRequest], reads: Sequence[ReadRequest]) -> Any:
        calls.append((sum(len(a.ids) for a in acks), len(reads)))
        return await real(acks, reads)

    monkeypatch.setattr(log, "exchange", exchange)
    return calls


async def test_acknowledgements_ride_along_with_reads_under_load(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=4)

    calls = counting_exchange(app, monkeypatch)
    await ticks.send(*[Tick(key=f"k{i % 8}", seq=i) for i in range(2000)])
    running = await workers(app)
    await until(lambda: len(seen) == 2000, clock)
    await until(lambda: running.worker.executors[0].acker.sent == 2000, clock)
    await running.stop()
    carried = sum(ids for ids, reads in calls if reads)
    alone = [ids for ids, reads in calls if not reads]
    # Nearly every acknowledgement travelled in a read round; few round trips were spent
    # on acknowledgements alone (the last ones, once nothing was left to read).
    assert carried + sum(alone) == 2000
    assert carried > 1500
    assert len(alone) <= 5
    assert len(calls) < 2000 / 8  # far fewer round trips than events


async def test_an_idle_worker_waits_on_the_doorbell_instead_of_polling(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=4, default_read_timeout=2000)

    calls = counting_exchange(app, monkeypatch)
    running = await workers(app)
    await until(lambda: len(running.worker.executors[0].feeds) == 4, clock)
    await clock.sleep(5)
    before = len(calls)
    await clock.sleep(60)
    # Caught up: one look at every partition per read_timeout at most, nothing more.
    assert len(calls) - before <= 60 / 2 + 1
    await ticks.send(Tick(key="a", seq=1))
    await until(lambda: seen == [1], clock, within=0.1)  # the doorbell wakes it at once
    await running.stop()


async def test_a_round_that_failed_after_running_skips_nothing_and_keeps_order(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1, default_prefetch_count=4)
    seen: list[int] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            seen.append(tick.seq)
            await clock.sleep(0.01)

    log = app.backend.log
    real = log.exchange
    failed: list[int] = []

    async def lossy_reply(acks: Sequence[AckRequest], reads: Sequence[ReadRequest]) -> Any:
        result = await real(acks, reads)
        if reads and any(r.start == b">" for r in reads) and len(failed) < 3:
            failed.append(1)  # it ran on the server, but the reply was lost
            raise BackendUnavailable("connection dropped before the reply")
        return result

    monkeypatch.setattr(log, "exchange", lossy_reply)
    await ticks.send(*[Tick(key="k", seq=i) for i in range(40)])
    running = await workers(app)
    await until(lambda: len(set(seen)) == 40, clock)
    await until(lambda: running.worker.executors[0].acker.queued() == 0, clock)
    await running.stop()
    assert len(failed) == 3
    firsts: list[int] = []
    for seq in seen:
        if seq not in firsts:
            firsts.append(seq)
    assert firsts == list(range(40))  # nothing skipped, nothing out of order
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


async def test_a_deleted_group_is_created_again_and_processing_goes_on(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=1)

    running = await workers(app)
    await ticks.send(Tick(key="k", seq=0))
    await until(lambda: seen == [0], clock)
    await app.backend.admin.destroy_group(ticks.keys.stream(0), "proc")
    await ticks.send(Tick(key="k", seq=1))
    await until(lambda: 1 in seen, clock, within=10)
    await running.stop()
    groups = await app.backend.log.groups(ticks.keys.stream(0))
    assert [g.name for g in groups] == ["proc"]
    assert seen[0] == 0  # the re-created group starts at the beginning: 0 may come again
    assert seen[-1] == 1


async def test_a_store_reset_is_reported_once_and_processing_goes_on(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, caplog: Any
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=2)

    running = await workers(app)
    await ticks.send(*[Tick(key=f"k{i}", seq=i) for i in range(10)])
    await until(lambda: sorted(seen) == list(range(10)), clock)
    executor = running.worker.executors[0]
    before = ticks.generation
    caplog.set_level(logging.INFO)
    broker = app.backend.log.broker  # type: ignore[attr-defined]
    assert broker.flush() > 0  # Redis restarted empty: streams, groups, leases, metadata
    await ticks.send(*[Tick(key=f"k{i}", seq=i) for i in range(10, 20)])
    await until(lambda: set(range(10, 20)) <= set(seen), clock, within=60)
    await running.stop()
    resets = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(resets) == 1, [r.getMessage() for r in resets]
    assert "lost the data of stream" in resets[0].getMessage()
    assert executor.store_resets == 1
    assert ticks.generation is not None
    assert ticks.generation != before
    meta = await app.backend.kv.hash_get_all(ticks.keys.meta())
    assert meta[b"generation"] == ticks.generation
    assert meta[b"partition_count"] == b"2"  # the metadata is recorded again


async def test_a_store_reset_is_reported_even_when_another_app_re_created_the_groups_first(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, caplog: Any
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=2)

    # Another process of the same app (a worker starting, say): preparing the stream
    # records its metadata and creates the processor's groups.
    other = App(name=app.name, redis_url=f"memory://{app.name}", default_join_delay=0)
    other.container.clock.override(providers.Object(clock))
    other_ticks = other.stream("ticks", record=Tick, partition_by="key", partition_count=2)

    @other.processor(other_ticks, name="proc")
    async def other_proc(events: Events) -> None:
        async for _ in events:
            pass

    running = await workers(app)
    await ticks.send(*[Tick(key=f"k{i}", seq=i) for i in range(10)])
    await until(lambda: sorted(seen) == list(range(10)), clock)
    caplog.set_level(logging.INFO)
    app.backend.log.broker.flush()  # type: ignore[attr-defined]
    await other_ticks.send(*[Tick(key=f"k{i}", seq=i) for i in range(10, 20)])
    await until(lambda: set(range(10, 20)) <= set(seen), clock, within=60)
    await running.stop()
    # The running worker never met a missing group, but found itself out of the
    # membership: the store check behind that tells it the store was reset.
    assert running.worker.executors[0].store_resets == 1
    resets = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert len(resets) == 1, [r.getMessage() for r in resets]
    await other.close()


async def test_a_deleted_group_alone_is_no_store_reset(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, caplog: Any
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=1)

    running = await workers(app)
    await ticks.send(Tick(key="k", seq=0))
    await until(lambda: seen == [0], clock)
    caplog.set_level(logging.INFO)
    await app.backend.admin.destroy_group(ticks.keys.stream(0), "proc")
    await ticks.send(Tick(key="k", seq=1))
    await until(lambda: 1 in seen, clock, within=10)
    await running.stop()
    assert running.worker.executors[0].store_resets == 0
    assert not [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert any("has no group proc" in r.getMessage() for r in caplog.records)


async def test_a_partition_whose_read_is_refused_backs_off_instead_of_spinning(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)

    drain(app, ticks)

    log = app.backend.log
    real = log.exchange
    refused: list[float] = []

    async def refusing(acks: Sequence[AckRequest], reads: Sequence[ReadRequest]) -> Any:
        acked, results = await real(acks, reads)
        if reads:
            refused.append(clock.now())
            results = [BackendUnavailable("WRONGTYPE, say") for _ in reads]
        return acked, results

    monkeypatch.setattr(log, "exchange", refusing)
    running = await workers(app)
    await until(lambda: len(refused) >= 1, clock)
    await clock.sleep(10)
    await running.stop()
    assert 5 <= len(refused) <= 12  # about one attempt a second, not thousands


async def test_a_crash_of_the_fetcher_halts_the_worker_instead_of_stalling_it(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any, caplog: Any
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1)

    drain(app, ticks)

    async def broken(self: Fetcher) -> None:
        await clock.sleep(1)
        raise RuntimeError("a bug in the fetcher")

    monkeypatch.setattr(Fetcher, "run", broken)
    caplog.set_level(logging.CRITICAL)
    running = await workers(app)
    await until(running.task.done, clock, within=30)
    assert running.task.result() == 1  # halted: exit code 1
    assert any(
        "fetcher crashed" in r.getMessage() and "a bug in the fetcher" in r.getMessage()
        for r in caplog.records
    )


# ---------------------------------------------------------------- the doorbell's reads


def seen_all(seen: list[int], count: int) -> bool:
    return len(seen) == count


def spy_doorbell(app: App, monkeypatch: Any, lose: int = 0) -> list[int]:
    """Record the entries each doorbell read returned; the first ``lose`` replies that
    carry entries are lost after the reads ran (as a dropped connection would)."""
    answered: list[int] = []
    log = app.backend.log
    real = log.wait_and_read

    async def wait_and_read(after: Any, timeout: float, reads: Sequence[ReadRequest]) -> Any:
        woken, results = await real(after, timeout, reads)
        got = sum(len(r) for r in results or [] if isinstance(r, list))
        if got and sum(1 for n in answered if n < 0) < lose:
            answered.append(-got)
            raise BackendUnavailable("connection dropped before the reply")
        answered.append(got)
        return woken, results

    monkeypatch.setattr(log, "wait_and_read", wait_and_read)
    return answered


async def test_a_woken_doorbell_delivers_what_it_read_without_a_round(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    # (Without a byte budget: with one, a partition's first read asks for one entry only.)
    app, ticks, seen = recording_app(make_app, default_partition_count=4, prefetch_bytes=None)
    calls = counting_exchange(app, monkeypatch)
    answered = spy_doorbell(app, monkeypatch)
    running = await workers(app)
    await until(lambda: len(running.worker.executors[0].feeds) == 4, clock)
    await clock.sleep(5)  # every partition caught up: only the doorbell is out
    for seq in range(5):
        reads_before = sum(1 for _, reads in calls if reads)
        await ticks.send(Tick(key=f"k{seq}", seq=seq))
        await until(functools.partial(seen_all, seen, seq + 1), clock)
        assert sum(1 for _, reads in calls if reads) == reads_before  # no read round
    await running.stop()
    assert seen == list(range(5))
    assert sum(n for n in answered if n > 0) == 5


async def test_a_doorbell_whose_reply_was_lost_after_its_read_skips_nothing(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock, monkeypatch: Any
) -> None:
    app, ticks = ticks_app(make_app, default_partition_count=1, prefetch_bytes=None)
    seen: list[int] = []
    again: list[bytes] = []

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            seen.append(event.record().seq)
            if event.redelivered:
                again.append(event.entry_id)
            await clock.sleep(0.3)  # the next ones are buffered when a doorbell answers

    answered = spy_doorbell(app, monkeypatch, lose=3)
    running = await workers(app)
    await until(lambda: len(running.worker.executors[0].feeds) == 1, clock)
    await clock.sleep(5)
    for seq in range(20):
        await ticks.send(Tick(key="k", seq=seq))
        await clock.sleep(0.1)
    await until(lambda: len(seen) >= 20, clock)
    await until(lambda: running.worker.executors[0].acker.queued() == 0, clock)
    await running.stop()
    assert len([n for n in answered if n < 0]) == 3
    # The entries a lost reply took are re-read from the pending list, after the last one
    # delivered: each event exactly once, in order (the buffer was kept, not re-read).
    assert seen == list(range(20))
    # Only what the lost replies carried came back a second time (the buffer was kept).
    assert len(again) == 3
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


async def test_a_doorbell_read_after_the_lease_changed_hands_is_fenced(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=1)
    running = await workers(app)
    executor = running.worker.executors[0]
    await until(lambda: len(executor.feeds) == 1, clock)
    await clock.sleep(5)  # caught up: the doorbell reads partition 0 when it answers
    feed = executor.feeds[0]
    await app.backend.kv.set(feed.fence.lock_key, b"someone-else:99")
    await ticks.send(Tick(key="k", seq=1))
    await until(lambda: feed.lost, clock, within=5)
    assert executor.fetcher.fenced == 1
    assert seen == []  # nothing read under the stale lease
    assert await app.backend.kv.get(ticks.keys.fenced("proc")) == b"1"
    await running.stop()


async def test_a_doorbell_gives_back_what_the_byte_budget_set_aside_for_it(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    app, ticks, seen = recording_app(make_app, default_partition_count=4, prefetch_bytes=1 << 20)
    running = await workers(app)
    budget = running.worker.budget
    assert budget is not None
    fetcher = running.worker.executors[0].fetcher
    await until(lambda: len(running.worker.executors[0].feeds) == 4, clock)
    for seq in range(12):
        await ticks.send(Tick(key=f"k{seq}", seq=seq))
        await until(functools.partial(seen_all, seen, seq + 1), clock)
        await clock.sleep(1)  # several doorbells answer and ring again meanwhile
        bell = fetcher._bell
        # Reserved: the doorbell out now, and nothing left over from the ones before it.
        assert budget.reserved == (bell.reserved if bell is not None else 0)
    await running.stop()
    assert budget.reserved == 0
    assert budget.used == 0


def _delivering_fetcher(
    clock: SimulatedClock,
) -> tuple[Fetcher, PartitionFeed, Acker, list[Any]]:
    """A fetcher and one feed with a byte budget, the entries it builds decoded as-is."""
    room = asyncio.Event()
    budget = ByteBudget(1 << 20)
    acker = Acker(cast(Any, None), "g", clock)
    decoded: list[Any] = []
    fetcher = Fetcher(
        cast(Any, None), clock, "g", list, decoded.append, 1.0, room, acker, budget=budget
    )
    lease = Lease("lock", b"w:1", 1)
    fence = Fence("lock", b"w:1", "refused")
    feed = PartitionFeed(
        Partition("s", 0), "key", lease, fence, clock.now() + 60, 8, clock, room, budget
    )
    feed.start = NEW
    return fetcher, feed, acker, decoded


async def test_a_read_buffers_its_entries_in_order_and_acknowledges_trimmed_ones_away(
    clock: SimulatedClock,
) -> None:
    fetcher, feed, acker, _ = _delivering_fetcher(clock)
    entries = [
        Entry(b"1-0", {b"n": b"1"}),
        Entry(b"2-0", {}),  # trimmed after delivery
        Entry(b"3-0", {b"n": b"333"}, 2),
    ]

    fetcher._deliver(feed, entries, 8)

    assert [(e.id, e.delivery_count, e.epoch) for e in feed.buffer] == [
        (b"1-0", 1, 1),
        (b"3-0", 2, 1),
    ]
    assert list(feed.sizes) == [2, 4]
    assert feed.bytes == 6
    assert fetcher.gone == 1
    assert acker.take() == {feed: [b"2-0"]}
    assert feed.last_seen == b"3-0"
    assert feed.caught_up  # 3 entries of the 8 asked


async def test_a_resize_marker_in_a_read_is_acknowledged_and_holds_the_feed(
    clock: SimulatedClock,
) -> None:
    fetcher, feed, acker, _ = _delivering_fetcher(clock)
    grown: list[int] = []
    fetcher.on_marker = grown.append
    entries = [
        Entry(b"1-0", {b"n": b"1"}),
        Entry(b"2-0", {MARKER_FIELD: b"8"}),
        Entry(b"3-0", {b"n": b"3"}),  # after the switch: stays pending
    ]

    fetcher._deliver(feed, entries, 8)

    assert [e.id for e in feed.buffer] == [b"1-0"]
    assert feed.held
    assert grown == [8]
    assert acker.take() == {feed: [b"2-0"]}
