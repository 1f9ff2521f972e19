"""Senders across a resize, on the memory backend: refused, routed again, nothing lost."""

from __future__ import annotations

import logging
from uuid import uuid4

import pytest

from runnel import App, Record, Stream
from runnel.admin import Admin, UnknownName
from runnel.domain.resize import MARKER_FIELD
from runnel.errors import MetadataMismatch
from runnel.runtime.resizing import NotResizable


class Order(Record):
    key: str
    seq: int


def declared(url: str, count: int) -> tuple[App, Stream[Order]]:
    app = App(name="shop", redis_url=url)
    return app, app.stream("orders", record=Order, partition_by="key", partition_count=count)


async def where(stream: Stream[Order]) -> dict[str, list[int]]:
    """Per key, the partitions its entries are stored in, in order (markers left out)."""
    found: dict[str, list[int]] = {}
    for number in range(stream.partition_count):
        for entry in await stream.store.log.range(stream.keys.stream(number)):
            if MARKER_FIELD in entry.fields:
                continue
            key = Order.model_validate_json(entry.fields[b"data"]).key
            found.setdefault(key, [])
            if number not in found[key]:
                found[key].append(number)
    return found


@pytest.fixture
def url() -> str:
    return f"memory://resize-{uuid4().hex[:8]}"


async def test_a_sender_that_routed_with_the_old_count_routes_again(url: str) -> None:
    _, stale = declared(url, 4)
    await stale.send(*[Order(key=f"k{i}", seq=0) for i in range(16)])
    admin_app, _ = declared(url, 4)
    await Admin(admin_app).resize_stream("orders", partitions=8)
    assert stale.partition_count == 4  # it has not looked yet
    await stale.send(*[Order(key=f"k{i}", seq=1) for i in range(16)])
    assert stale.partition_count == 8
    stored = await where(stale)
    assert len(stored) == 16
    for key, numbers in stored.items():
        assert numbers[0] == stale.hasher(key) % 4, key  # seq 0: the old routing
        assert stale.hasher(key) % 8 in numbers, key  # seq 1: where the key routes now
    total = 0
    for number in range(8):
        entries = await stale.store.log.range(stale.keys.stream(number))
        total += sum(1 for e in entries if MARKER_FIELD not in e.fields)
    assert total == 32


async def test_an_app_declaring_the_old_count_adopts_the_grown_one(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    first, stream = declared(url, 4)
    await stream.send(Order(key="a", seq=0))
    await Admin(first).resize_stream("orders", partitions=8)
    _, old_code = declared(url, 4)
    with caplog.at_level(logging.INFO, logger="runnel.runtime.store"):
        await old_code.prepare()
    assert old_code.partition_count == 8
    assert "grown from 4 to 8 partitions" in caplog.text
    _, new_code = declared(url, 8)
    await new_code.prepare()
    _, other = declared(url, 6)
    with pytest.raises(MetadataMismatch):
        await other.prepare()


async def test_shrinking_and_unknown_streams_are_refused(url: str) -> None:
    app, stream = declared(url, 4)
    await stream.send(Order(key="a", seq=0))
    admin = Admin(app)
    with pytest.raises(NotResizable, match="cannot shrink"):
        await admin.resize_stream("orders", partitions=2)
    with pytest.raises(UnknownName, match="unknown stream"):
        await admin.resize_stream("nope", partitions=8)
    never_used, _ = declared(f"{url}-empty", 4)
    with pytest.raises(NotResizable, match="no metadata"):
        await Admin(never_used).resize_stream("orders", partitions=8)
    assert (await admin.resize_stream("orders", partitions=4)).new_partitions == []


async def test_a_dry_run_changes_nothing_and_a_repeat_finishes_nothing_twice(url: str) -> None:
    app, stream = declared(url, 2)
    await stream.send(Order(key="a", seq=0))
    admin = Admin(app)
    plan = await admin.resize_stream("orders", partitions=4, dry_run=True)
    assert plan.new_partitions == [2, 3]
    assert plan.switch_points == {}
    assert stream.partition_count == 2
    done = await admin.resize_stream("orders", partitions=4)
    assert sorted(done.switch_points) == [0, 1]
    again = await admin.resize_stream("orders", partitions=4)
    assert again.new_partitions == []
    status = await admin.status()
    assert status.streams == []  # no processor: nothing to show per stream


async def test_an_interrupted_resize_is_finished_by_running_it_again(url: str) -> None:
    app, stream = declared(url, 4)
    await stream.send(*[Order(key=f"k{i}", seq=0) for i in range(8)])
    backend, keys = app.backend, stream.keys
    # As if a resize to 8 had died after the switch point of partition 0 only.
    await backend.kv.hash_set(keys.meta(), {b"resizing": b"8"})
    first = await backend.admin.switch(keys.stream(0), keys.resize(0), 8)
    admin = Admin(app)
    with pytest.raises(NotResizable, match="a resize to 8 partitions is under way"):
        await admin.resize_stream("orders", partitions=16)
    done = await admin.resize_stream("orders", partitions=8)
    assert done.switch_points[0] == first.decode()  # not switched twice
    assert sorted(done.switch_points) == [0, 1, 2, 3]
    stored = await backend.kv.hash_get_all(keys.meta())
    assert (stored[b"partition_count"], stored[b"resized"]) == (b"8", b"4,8")
    assert b"resizing" not in stored
    assert (await admin.resize_stream("orders", partitions=16)).after == 16
