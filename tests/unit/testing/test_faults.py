"""Faults on the simulated clock: kill, pause and resume, restart, graceful stop, HALT."""

from __future__ import annotations

import logging

import pytest

from runnel import Events, ExceptionPolicy
from runnel.errors import MetadataMismatch
from runnel.testing import KILLED, Harness

from .apps import Seen, Tick, counting_app, new_app, ticks

FAST = {"default_lock_expiry": 4.0, "default_prefetch_count": 4}


def first_deliveries_in_order(h: Harness, count: int) -> None:
    """Every tick was handed out, and each key's first hand-outs came in send order."""
    firsts = h.deliveries("proc", first_only=True)
    assert len(firsts) == count
    per_key: dict[str, list[int]] = {}
    for d in firsts:
        per_key.setdefault(d.record.key, []).append(d.record.seq)
    for key, seqs in per_key.items():
        assert seqs == sorted(seqs), f"{key} reordered"


async def test_a_killed_workers_partitions_move_and_its_pending_entries_are_redelivered() -> None:
    app, stream, _ = counting_app(work=1.0, **FAST)
    async with Harness(app) as h:
        w1, w2 = await h.start("w1"), await h.start("w2")
        assert h.owners("proc") == {0: "w1", 1: "w1", 2: "w2", 3: "w2"}
        await stream.send(*ticks(80, keys=8))
        await h.run_until(lambda: len(h.deliveries("proc", worker="w2")) >= 5)
        lost = w2.partitions("proc")
        left_pending = {n: ids for n, ids in h.pending("proc").items() if n in lost}
        await w2.kill()
        assert w2.state == "killed"
        assert w2.partitions("proc") == frozenset()
        await h.run_until_idle()
        assert h.owners("proc") == dict.fromkeys(range(4), "w1")
        again = {d.entry_id for d in h.deliveries("proc", worker="w1") if d.redelivered}
        assert {i for ids in left_pending.values() for i in ids} <= again
        first_deliveries_in_order(h, 80)
        assert h.exit_codes() == {"w1": None, "w2": KILLED}
        assert w1.state == "running"


async def test_a_flushed_broker_is_a_store_reset_that_workers_report_and_survive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, stream, seen = counting_app(**FAST)
    async with Harness(app) as h:
        w1, w2 = await h.start("w1"), await h.start("w2")
        await stream.send(*ticks(20))
        await h.run_until_idle()
        caplog.set_level(logging.CRITICAL, logger="runnel.runtime.executor")
        h.broker.flush()  # Redis restarted without persistence
        await stream.send(*[Tick(key=f"k{i % 4}", seq=5 + i // 4) for i in range(20)])
        await h.run_until_idle()
        assert seen.by_key() == {f"k{i}": list(range(10)) for i in range(4)}
        assert sorted(set(h.owners("proc").values())) == ["w1", "w2"]
        resets = [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL]
        assert len(resets) == 1  # once per stream and process: both share this app
        assert all("lost the data of stream" in m for m in resets)
        assert w1.state == w2.state == "running"


async def test_a_killed_worker_runs_no_more_user_code() -> None:
    app, stream, seen = counting_app(work=1.0, **FAST)
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await stream.send(*ticks(20))
        await h.run_until(lambda: len(seen.handled) >= 3)
        await w1.kill()
        handled = list(seen.handled)
        interrupted = [d for d in h.deliveries("proc") if d.outcome == "interrupted"]
        await h.advance(60)
        assert seen.handled == handled
        assert interrupted  # what it was working on when it died (one per busy partition)
        w2 = await h.start("w2")
        await h.run_until_idle()
        assert {w for w, _, _ in seen.handled[len(handled) :]} == {w2.name}
        again = {d.entry_id for d in h.deliveries("proc", worker="w2") if d.redelivered}
        assert {d.entry_id for d in interrupted} <= again


async def test_a_paused_worker_loses_its_partitions_at_its_deadline_and_rejoins_on_resume() -> None:
    app, stream, _ = counting_app(work=0.5, **FAST)
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await h.start("w2")
        await stream.send(*ticks(40, keys=8))
        await h.run_until(lambda: len(h.deliveries("proc", worker="w1")) >= 2)
        w1.pause()
        assert w1.state == "paused"
        assert w1.partitions("proc")  # still its own until the lease deadline
        await h.run_until(lambda: not w1.partitions("proc"), timeout=FAST["default_lock_expiry"])
        await h.run_until(lambda: h.owners("proc") == dict.fromkeys(range(4), "w2"))
        w1.resume()
        await h.run_until_balanced()
        assert sorted(h.owners("proc").values()) == ["w1", "w1", "w2", "w2"]
        await h.run_until_idle()
        first_deliveries_in_order(h, 40)


async def test_restart_starts_a_fresh_worker_under_the_same_name() -> None:
    app, stream, seen = counting_app(work=1.0, **FAST)
    async with Harness(app) as h:
        old = await h.start("w1")
        await stream.send(*ticks(12))
        await h.run_until(lambda: len(seen.handled) >= 4)
        new = await old.restart()
        assert new is not old
        assert (old.state, new.state, new.name) == ("killed", "running", "w1")
        assert h.worker("w1") is new
        await h.run_until_idle()
        first_deliveries_in_order(h, 12)


async def test_restart_can_bring_the_worker_back_under_another_name() -> None:
    app, _, _ = counting_app(**FAST)
    async with Harness(app) as h:
        old = await h.start("w1")
        new = await old.restart("w9")
        assert h.owners("proc") == dict.fromkeys(range(4), "w9")
        assert h.exit_codes() == {"w1": KILLED, "w9": None}
        assert new.processors == old.processors


async def test_a_graceful_stop_hands_over_without_processing_anything_twice() -> None:
    app, stream, seen = counting_app(work=1.0, **FAST)
    async with Harness(app) as h:
        w1, _ = await h.start("w1"), await h.start("w2")
        await stream.send(*ticks(40, keys=8))
        await h.run_until(lambda: len(seen.handled) >= 6)
        assert await w1.stop() == 0
        assert w1.state == "stopped"
        await h.run_until_idle()
        assert h.owners("proc") == dict.fromkeys(range(4), "w2")
        # Prefetched events come back with a higher delivery count, but user code saw each
        # event once.
        assert len(h.deliveries("proc")) == len(h.deliveries("proc", first_only=True)) == 40
        assert len(seen.handled) == 40


async def test_stopping_a_paused_worker_is_refused() -> None:
    app, _, _ = counting_app()
    async with Harness(app) as h:
        w1 = await h.start("w1")
        w1.pause()
        with pytest.raises(RuntimeError, match="paused"):
            await w1.stop()


async def test_a_halting_processor_ends_its_worker_with_exit_code_1() -> None:
    app = new_app()
    stream = app.stream("ticks", record=Tick, partition_by="key")
    seen = Seen()

    @app.processor(stream, exception_policy=ExceptionPolicy.HALT)
    async def strict(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 1:
                raise ValueError("no second ticks")
            seen.handled.append(("", tick.key, tick.seq))

    async with Harness(app) as h:
        w1 = await h.start("w1")
        await stream.send(Tick(key="a", seq=0), Tick(key="a", seq=1))
        assert await w1.wait() == 1
        assert w1.state == "exited"
        assert isinstance(w1.worker.halt_reason, ValueError)
        assert h.exit_codes() == {"w1": 1}
        assert len(h.pending("strict")) == 1  # the failed event waits for the next owner


async def test_a_worker_that_cannot_start_raises_from_start() -> None:
    app, stream, _ = counting_app()
    async with Harness(app) as h:
        await app.backend.kv.hash_set(stream.keys.meta(), {b"partition_count": b"99"})
        with pytest.raises(MetadataMismatch, match="partition_count"):
            await h.start("w1")
        assert h.worker("w1").exit_code is None
        assert isinstance(h.worker("w1").error, MetadataMismatch)


async def test_two_live_workers_cannot_share_a_name() -> None:
    app, _, _ = counting_app()
    async with Harness(app) as h:
        await h.start("w1")
        with pytest.raises(ValueError, match="running"):
            await h.start("w1")
        assert (await h.start()).name == "w2"
