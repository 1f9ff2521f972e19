"""Growing a stream while workers run, on the memory backend in simulated time."""

from __future__ import annotations

from runnel.testing import Harness

from ..testing.apps import Tick, counting_app


def keyed(keys: int, first: int, count: int) -> list[Tick]:
    """``count`` rounds of one tick per key, numbered from ``first``."""
    return [Tick(key=f"k{k}", seq=s) for s in range(first, first + count) for k in range(keys)]


async def test_a_resize_mid_stream_keeps_every_key_in_order() -> None:
    app, stream, seen = counting_app(work=0.1)
    async with Harness(app) as h:
        await h.start("w1")
        await h.start("w2")
        await h.run_until_balanced()
        await stream.send(*keyed(40, 0, 20))
        await h.advance(0.5)  # part of the backlog is processed, most is not
        report = await h.resize(stream, 8)
        assert (report.before, report.after) == (4, 8)
        assert stream.partition_count == 8
        await stream.send(*keyed(40, 20, 20))
        await h.run_until_idle()
        await h.run_until_balanced()
        assert set(h.owners("proc")) == set(range(8))
        moved = h.processed("proc")
        assert all(moved.get(n) for n in range(4, 8))  # the new partitions took events
    assert seen.by_key() == {f"k{k}": list(range(40)) for k in range(40)}


async def test_a_worker_stops_at_a_switch_marker_until_it_knows_the_resize() -> None:
    app, stream, seen = counting_app(work=0.05)
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await h.run_until_balanced()
        await stream.send(*keyed(8, 0, 5))
        await h.resize(stream, 8)
        await stream.send(*keyed(8, 5, 5))
        # Well before the watch's next metadata read (10 simulated seconds): the markers
        # told the worker, which processed everything in order over all 8 partitions.
        await h.run_until_idle(timeout=5.0)
        (executor,) = w1.worker.executors
        assert executor.resize.resizes == 1
        assert executor.resize.barrier.released
        assert all(h.processed("proc").get(n) for n in range(8))
    assert seen.by_key() == {f"k{k}": list(range(10)) for k in range(8)}


async def test_a_worker_started_after_the_resize_still_waits_for_the_switch_points() -> None:
    app, stream, seen = counting_app(work=0.05)
    async with Harness(app) as h:
        await stream.send(*keyed(16, 0, 10))
        await h.resize(stream, 8)
        await stream.send(*keyed(16, 10, 10))
        await h.start("w1")
        await h.start("w2")
        await h.run_until_idle()
    assert seen.by_key() == {f"k{k}": list(range(20)) for k in range(16)}
