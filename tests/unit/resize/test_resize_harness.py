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
