"""What a harness shows: deliveries, dead letters, output streams, processors by function."""

from __future__ import annotations

import pytest

from runnel import Events, ExceptionPolicy, Record
from runnel.middleware import DeadLetterMiddleware
from runnel.testing import Harness

from .apps import Tick, new_app


class Receipt(Record):
    key: str
    total: int


def shop_app() -> tuple[Harness, DeadLetterMiddleware]:
    app = new_app()
    stream = app.stream("ticks", record=Tick, partition_by="key")
    receipts = app.stream("receipts", record=Receipt, partition_by="key")
    dead = DeadLetterMiddleware(source=stream)

    @app.processor(stream, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead])
    async def totals(events: Events) -> None:
        running: dict[str, int] = {}
        async for tick in events.records():
            if tick.seq < 0:
                raise ValueError(f"negative seq {tick.seq} for {tick.key}")
            running[tick.key] = running.get(tick.key, 0) + tick.seq
            await receipts.send(Receipt(key=tick.key, total=running[tick.key]))

    @app.processor(dead.sink)
    async def rejected(events: Events) -> None:
        async for _ in events:
            pass

    return Harness(app), dead


async def test_a_failing_event_is_dead_lettered_with_its_error_and_the_rest_go_on() -> None:
    harness, dead = shop_app()
    stream = harness.app.streams["ticks"]
    async with harness as h:
        await h.start("w1")
        ids = await stream.send(Tick(key="a", seq=1), Tick(key="a", seq=-5), Tick(key="a", seq=2))
        await h.run_until_idle()
        (letter,) = h.dead_letters(dead)
        assert (letter.error_type, letter.error_message) == ("ValueError", "negative seq -5 for a")
        assert letter.record == Tick(key="a", seq=-5)
        assert (letter.stream, letter.source_id, letter.processor) == (
            "ticks",
            ids[1].decode(),
            "totals",
        )
        assert letter.source_partition == letter.partition == stream.partition_for(letter.record)
        assert letter.time.startswith("2026-01-01T00:00:0")
        assert b"__error_type" not in letter.data
        assert h.dead_letters("ticks.dead") == h.dead_letters(dead.sink) == [letter]
        assert h.pending("totals") == {}
        outcomes = [(d.record.seq, d.outcome) for d in h.deliveries("totals")]
        assert outcomes == [(1, "done"), (-5, "failed"), (2, "done")]
        assert isinstance(h.deliveries("totals")[1].error, ValueError)
        assert [t.seq for ts in h.processed("totals").values() for t in ts] == [1, 2]
        assert len(h.deliveries("rejected")) == 1


async def test_entries_show_what_processors_wrote_to_other_streams() -> None:
    harness, _ = shop_app()
    async with harness as h:
        await h.start("w1")
        await h.app.streams["ticks"].send(*[Tick(key="b", seq=n) for n in (1, 2, 3)])
        await h.run_until_idle()
        (events,) = h.entries("receipts").values()
        assert [e.record().total for e in events] == [1, 3, 6]


async def test_processors_can_be_named_by_their_function_or_by_name() -> None:
    app = new_app()
    stream = app.stream("ticks", record=Tick, partition_by="key")

    @app.processor(stream)
    async def only(events: Events) -> None:
        async for _ in events:
            pass

    async with Harness(app) as h:
        await h.start("w1")
        await stream.send(Tick(key="a", seq=0))
        await h.run_until_idle()
        assert h.deliveries(only) == h.deliveries("only") == h.deliveries()
        with pytest.raises(ValueError, match="unknown processor"):
            h.deliveries("other")


async def test_an_app_with_several_processors_needs_a_name() -> None:
    harness, _ = shop_app()
    async with harness as h:
        with pytest.raises(ValueError, match="name one of: rejected, totals"):
            h.owners()


async def test_deliveries_can_be_filtered_by_partition_and_worker() -> None:
    harness, _ = shop_app()
    stream = harness.app.streams["ticks"]
    async with harness as h:
        await h.start("w1")
        await h.start("w2")
        await stream.send(*[Tick(key=f"k{i}", seq=1) for i in range(12)])
        await h.run_until_idle()
        everything = h.deliveries("totals")
        for name in ("w1", "w2"):
            theirs = h.deliveries("totals", worker=name)
            assert {d.partition for d in theirs} <= h.worker(name).partitions("totals")
        for number in range(4):
            assert [d for d in everything if d.partition == number] == h.deliveries(
                "totals", partition=number
            )
