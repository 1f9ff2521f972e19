"""Stream.send on the in-memory backend: ids, type checks, routing, storage, metadata, caps."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from dependency_injector import providers

from runnel import App, Record, Stream
from runnel.adapters.compressors import GzipCompressor
from runnel.adapters.hashers import default_hasher
from runnel.adapters.memory.clock import SimulatedClock
from runnel.errors import BackpressureError, MetadataMismatch, Misconfigured
from runnel.ports import AckRequest, ReadRequest
from tests.contracts import ack_slots, read_slots
from tests.kit import Click, unique


class Order(Record):
    customer: str
    seq: int
    note: str = ""


MakeApp = Callable[..., App]


@pytest.fixture
def name() -> str:
    return unique()


@pytest.fixture
def make_app(name: str) -> MakeApp:
    """Apps called ``name`` on the memory broker ``memory://name`` (so they share it)."""

    def make(**settings: Any) -> App:
        return App(name=name, redis_url=f"memory://{name}", **settings)

    return make


@pytest.fixture
def app(make_app: MakeApp) -> App:
    return make_app()


async def noop(events: object) -> None:
    pass


def orders_of(app: App, **options: Any) -> Stream[Order]:
    options.setdefault("partition_count", 4)
    return app.stream("orders", record=Order, partition_by="customer", **options)


async def lengths(stream: Stream[Any]) -> list[int]:
    admin = stream.app.backend.admin
    return [await admin.length(stream.keys.stream(n)) for n in range(stream.partition_count)]


async def stored(stream: Stream[Any], partition: int) -> list[Any]:
    """The records in ``partition``, decoded, in stream order."""
    entries = await stream.app.backend.log.range(stream.keys.stream(partition))
    return [stream.codec.decode(entry.fields) for entry in entries]


def key_as_partition(key: object) -> int:
    """A hasher that sends key ``"3"`` to partition 3 (tests choose partitions by key)."""
    return int(str(key))


# --------------------------------------------------------------------------- ids and order


async def test_send_returns_one_id_per_record_in_the_order_given(app: App) -> None:
    orders = orders_of(app)
    records = [Order(customer=f"c{i % 3}", seq=i) for i in range(12)]

    ids = await orders.send(*records)

    assert len(ids) == len(records)
    for record, entry_id in zip(records, ids, strict=True):
        key = orders.keys.stream(orders.partition_for(record))
        (entry,) = await app.backend.log.range(key, entry_id, entry_id)
        assert orders.codec.decode(entry.fields) == record


async def test_records_of_one_partition_keep_the_order_given(app: App) -> None:
    orders = orders_of(app)
    first = [Order(customer=f"c{i % 5}", seq=i) for i in range(40)]
    second = [Order(customer=f"c{i % 5}", seq=i) for i in range(40, 60)]

    await orders.send(*first)
    await orders.send(*second)

    everything = first + second
    for n in range(orders.partition_count):
        expected = [r for r in everything if orders.partition_for(r) == n]
        assert await stored(orders, n) == expected
    assert sum(await lengths(orders)) == 60


async def test_sending_nothing_writes_nothing(app: App) -> None:
    orders = orders_of(app)

    assert await orders.send() == []
    assert await app.backend.kv.hash_get_all(orders.keys.meta()) == {}


async def test_every_records_type_is_checked_before_anything_is_written(app: App) -> None:
    orders = orders_of(app)
    await orders.send(Order(customer="a", seq=0), Order(customer="b", seq=1))
    before = await lengths(orders)
    click = Click(user_id=1, clicked=True, score=0.5, page="/", token=b"")
    batch: list[Any] = [Order(customer="a", seq=2), Order(customer="b", seq=3), click]

    with pytest.raises(TypeError) as caught:
        await orders.send(*batch, Order(customer="c", seq=4))

    assert str(caught.value) == (
        "stream 'orders' takes Order records; record 2 is a Click (nothing was sent)"
    )
    assert await lengths(orders) == before


async def test_a_plain_dict_is_refused_too(app: App) -> None:
    orders = orders_of(app)
    not_a_record: Any = {"customer": "a", "seq": 1}

    with pytest.raises(TypeError, match="record 0 is a dict"):
        await orders.send(not_a_record)

    assert await lengths(orders) == [0, 0, 0, 0]


# --------------------------------------------------------------------------- routing


async def test_records_are_routed_by_the_hash_of_the_named_field(app: App) -> None:
    orders = orders_of(app, partition_count=16)
    hasher = default_hasher()

    await orders.send(Order(customer="customer-1", seq=1), Order(customer="customer-2", seq=2))

    # 8 and 13 are the pinned partitions of these keys (tests/unit/test_hashing.py).
    assert orders.partition_for(Order(customer="customer-1", seq=0)) == 8
    assert [r.seq for r in await stored(orders, 8)] == [1]
    assert [r.seq for r in await stored(orders, 13)] == [2]
    assert hasher("customer-2") % 16 == 13
    assert sum(await lengths(orders)) == 2


async def test_records_are_routed_by_a_callable(app: App) -> None:
    orders = app.stream(
        "orders",
        record=Order,
        partition_by=lambda order: order.customer.lower(),
        partition_count=16,
    )

    await orders.send(Order(customer="CUSTOMER-1", seq=1), Order(customer="Customer-1", seq=2))

    assert [r.seq for r in await stored(orders, 8)] == [1, 2]
    assert orders.partition_key(Order(customer="CUSTOMER-1", seq=1)) == "customer-1"


async def test_a_hasher_argument_overrides_the_default(app: App) -> None:
    orders = orders_of(app, hasher=key_as_partition, partition_count=4)

    await orders.send(*[Order(customer=str(n), seq=n) for n in (3, 1, 3, 0, 6)])

    assert await lengths(orders) == [1, 1, 1, 2]
    assert [r.seq for r in await stored(orders, 2)] == [6]  # 6 % 4
    meta = await app.backend.kv.hash_get_all(orders.keys.meta())
    assert meta[b"hash"] == f"custom:{__name__}.key_as_partition".encode()


def test_partition_by_a_missing_field_is_misconfigured_at_definition(app: App) -> None:
    with pytest.raises(Misconfigured) as caught:
        app.stream("orders", record=Order, partition_by="customer_id")

    assert str(caught.value) == (
        "stream 'orders': partition_by='customer_id' is not a field of Order "
        "(fields: customer, seq, note)"
    )
    assert "orders" not in app.streams


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"partition_by": 3}, "partition_by must be a field name or a callable"),
        ({"partition_count": 0}, "partition_count must be >= 1"),
        ({"partition_size": 0}, "partition_size must be >= 1"),
        ({"record": dict}, "record must be a Record subclass"),
    ],
)
def test_bad_stream_definitions_are_misconfigured(
    app: App, options: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"record": Order, "partition_by": "customer", **options}

    with pytest.raises(Misconfigured, match=message):
        app.stream("orders", **arguments)


# --------------------------------------------------------------------------- storage


async def test_a_json_record_is_stored_under_the_single_field_data(app: App) -> None:
    orders = orders_of(app, partition_count=1)

    await orders.send(Order(customer="Zoë", seq=1, note="日本"))

    (entry,) = await app.backend.log.range(orders.keys.stream(0))
    assert entry.fields == {b"data": '{"customer":"Zoë","seq":1,"note":"日本"}'.encode()}
    assert orders.keys.stream(0) == f"__strm:{app.name}.orders.0"


async def test_a_compressed_json_record_is_stored_under_data_with_its_codec(app: App) -> None:
    orders = orders_of(app, partition_count=1, compressor=GzipCompressor())

    await orders.send(Order(customer="a", seq=1))

    (entry,) = await app.backend.log.range(orders.keys.stream(0))
    assert list(entry.fields) == [b"data"]
    assert entry.fields[b"data"].startswith(b"#!json+gzip\n")
    assert orders.codec.decode(entry.fields) == Order(customer="a", seq=1)


async def test_a_primitive_record_is_stored_as_native_fields(app: App) -> None:
    clicks = app.stream("clicks", record=Click, partition_by="user_id", partition_count=1)

    await clicks.send(Click(user_id=7, clicked=False, score=-0.25, page="/café", token=b"\xff"))

    (entry,) = await app.backend.log.range(clicks.keys.stream(0))
    assert entry.fields == {
        b"user_id": b"7",
        b"clicked": b"0",
        b"score": b"-0.25",
        b"page": "/café".encode(),
        b"token": b"\xff",
    }


# --------------------------------------------------------------------------- metadata


async def test_stream_metadata_is_recorded_on_the_first_send(app: App) -> None:
    orders = orders_of(app)
    meta_key = f"__meta:{app.name}.orders"
    assert await app.backend.kv.hash_get_all(meta_key) == {}

    await orders.send(Order(customer="a", seq=1))

    meta = await app.backend.kv.hash_get_all(meta_key)
    generation = meta.pop(b"generation")  # a random id of the store's life
    assert re.fullmatch(rb"[0-9a-f]{16}", generation)
    assert generation == orders.generation
    assert meta == {
        b"partition_count": b"4",
        b"hash": b"xxh64-v1",
        b"codec": b"json",
    }


async def test_a_second_app_with_the_same_definition_shares_the_stream(
    make_app: MakeApp,
) -> None:
    first, second = make_app(), make_app()
    await orders_of(first).send(Order(customer="a", seq=1))

    await orders_of(second).send(Order(customer="a", seq=2))

    assert sum(await lengths(orders_of(make_app()))) == 2


async def test_another_partition_count_is_a_metadata_mismatch_naming_both(
    make_app: MakeApp,
) -> None:
    first = make_app()
    await orders_of(first, partition_count=4).send(Order(customer="a", seq=1))
    other = orders_of(make_app(), partition_count=8)

    with pytest.raises(MetadataMismatch) as caught:
        await other.send(Order(customer="a", seq=2))

    assert f"stream {first.name}.orders: partition_count is '4' in the backend but '8'" in str(
        caught.value
    )
    assert sum(await lengths(other)) == 1  # only the first app's record


async def test_another_codec_is_a_metadata_mismatch_naming_both(make_app: MakeApp) -> None:
    await orders_of(make_app()).send(Order(customer="a", seq=1))
    other = orders_of(make_app(), compressor=GzipCompressor())

    with pytest.raises(MetadataMismatch, match=r"codec is 'json' in the backend but 'json\+gzip'"):
        await other.send(Order(customer="a", seq=2))


async def test_another_hasher_is_a_metadata_mismatch_naming_both(make_app: MakeApp) -> None:
    await orders_of(make_app()).send(Order(customer="1", seq=1))
    other = orders_of(make_app(), hasher=key_as_partition)

    with pytest.raises(MetadataMismatch, match=r"hash is 'xxh64-v1' in the backend but 'custom:"):
        await other.send(Order(customer="1", seq=2))


# --------------------------------------------------------------------------- caps


async def test_a_lossless_cap_refuses_the_send_that_would_drop_unprocessed_entries(
    app: App,
) -> None:
    orders = orders_of(app, partition_count=2, partition_size=5, hasher=key_as_partition)
    app.processor(orders, name="billing")(noop)
    for seq in range(5):
        await orders.send(Order(customer="0", seq=seq))

    with pytest.raises(BackpressureError) as caught:
        await orders.send(Order(customer="1", seq=100), Order(customer="0", seq=5))

    assert "'billing'" in str(caught.value)
    assert f"__strm:{app.name}.orders.0" in str(caught.value)
    assert await lengths(orders) == [5, 0]  # nothing of the batch was written
    assert [r.seq for r in await stored(orders, 0)] == [0, 1, 2, 3, 4]


async def test_a_lossless_cap_makes_room_once_the_processor_acknowledges(app: App) -> None:
    orders = orders_of(app, partition_count=1, partition_size=5)
    app.processor(orders, name="billing")(noop)
    ids = await orders.send(*[Order(customer="a", seq=seq) for seq in range(5)])
    key = orders.keys.stream(0)
    (delivered,) = await read_slots(app.backend.log, [ReadRequest(key, "billing", "c1", count=2)])
    assert not isinstance(delivered, Exception)
    await ack_slots(app.backend.log, [AckRequest(key, "billing", [e.id for e in delivered])])

    await orders.send(Order(customer="a", seq=5), Order(customer="a", seq=6))

    assert [r.seq for r in await stored(orders, 0)] == [2, 3, 4, 5, 6]
    assert [e.id for e in delivered] == ids[:2]
    with pytest.raises(BackpressureError):
        await orders.send(Order(customer="a", seq=7))


async def test_without_a_declared_processor_the_cap_trims_like_maxlen(app: App) -> None:
    orders = orders_of(app, partition_count=1, partition_size=3)

    await orders.send(*[Order(customer="a", seq=seq) for seq in range(5)])

    assert [r.seq for r in await stored(orders, 0)] == [2, 3, 4]
    assert await orders.lost() == 0


async def test_a_lossy_cap_counts_the_unprocessed_entries_it_drops(app: App) -> None:
    orders = orders_of(app, partition_count=1, partition_size=3, trim_mode="lossy")
    app.processor(orders, name="billing")(noop)
    key = orders.keys.stream(0)

    await orders.send(*[Order(customer="a", seq=seq) for seq in range(5)])
    assert [r.seq for r in await stored(orders, 0)] == [2, 3, 4]
    assert await orders.lost() == 2

    (delivered,) = await read_slots(app.backend.log, [ReadRequest(key, "billing", "c1", count=10)])
    assert not isinstance(delivered, Exception)
    await ack_slots(app.backend.log, [AckRequest(key, "billing", [e.id for e in delivered])])
    await orders.send(*[Order(customer="a", seq=seq) for seq in range(5, 8)])
    assert await orders.lost() == 2  # the three trimmed entries had been acknowledged

    await orders.send(Order(customer="a", seq=8))
    assert [r.seq for r in await stored(orders, 0)] == [6, 7, 8]
    assert await orders.lost() == 3


async def test_a_declared_processors_group_exists_from_the_first_send(app: App) -> None:
    orders = orders_of(app, partition_count=4)
    app.processor(orders, name="billing")(noop)

    await orders.send(Order(customer="a", seq=1))

    for n in range(4):
        groups = await app.backend.log.groups(f"__strm:{app.name}.orders.{n}")
        assert [(g.name, g.last_delivered_id) for g in groups] == [("billing", b"0-0")]


async def test_a_processor_declared_later_gets_its_group_on_the_next_send_from_the_start(
    app: App,
) -> None:
    orders = orders_of(app, partition_count=1)
    app.processor(orders, name="billing")(noop)
    await orders.send(Order(customer="a", seq=1))
    app.processor(orders, name="audit")(noop)

    await orders.send(Order(customer="a", seq=2))

    key = orders.keys.stream(0)
    assert sorted(g.name for g in await app.backend.log.groups(key)) == ["audit", "billing"]
    (delivered,) = await read_slots(app.backend.log, [ReadRequest(key, "audit", "c1", count=10)])
    assert not isinstance(delivered, Exception)
    assert [orders.codec.decode(e.fields).seq for e in delivered] == [1, 2]


# --------------------------------------------------------------------------- waiting for room


def on_clock(app: App, clock: SimulatedClock) -> App:
    app.container.clock.override(providers.Object(clock))
    return app


async def fill(app: App, size: int) -> Stream[Order]:
    """A one-partition ``wait`` stream of ``size`` entries that ``billing`` has not read."""
    orders = orders_of(app, partition_count=1, partition_size=size, trim_mode="wait")
    app.processor(orders, name="billing")(noop)
    await orders.send(*[Order(customer="a", seq=seq) for seq in range(size)])
    return orders


async def until_sleeping(clock: SimulatedClock) -> None:
    """Let the loop run until some task sleeps on ``clock`` (a bounded number of rounds)."""
    for _ in range(100):
        if clock.next_deadline() is not None:
            return
        await asyncio.sleep(0)
    raise AssertionError("nothing went to sleep on the clock")


async def acknowledge(orders: Stream[Order], count: int) -> None:
    key = orders.keys.stream(0)
    log = orders.app.backend.log
    (delivered,) = await read_slots(log, [ReadRequest(key, "billing", "c1", count=count)])
    assert not isinstance(delivered, Exception)
    await ack_slots(log, [AckRequest(key, "billing", [e.id for e in delivered])])


async def test_a_wait_send_to_a_full_partition_waits_until_room_appears(app: App) -> None:
    clock = SimulatedClock()
    orders = await fill(on_clock(app, clock), size=3)

    sending = asyncio.create_task(orders.send(Order(customer="a", seq=3)))
    await until_sleeping(clock)  # the first attempt was refused
    await clock.advance(10.0)
    assert not sending.done()
    assert [r.seq for r in await stored(orders, 0)] == [0, 1, 2]

    await acknowledge(orders, 1)
    await clock.advance(1.0)

    assert sending.done()
    (entry_id,) = await sending
    assert [r.seq for r in await stored(orders, 0)] == [1, 2, 3]
    assert (await app.backend.log.range(orders.keys.stream(0)))[-1].id == entry_id
    assert clock.now() == 11.0


async def test_a_wait_send_gives_up_after_the_send_wait_timeout_saying_so(
    make_app: MakeApp,
) -> None:
    clock = SimulatedClock(autojump=True)
    app = on_clock(make_app(default_send_wait_timeout=5), clock)
    orders = await fill(app, size=3)

    with pytest.raises(BackpressureError) as caught:
        await orders.send(Order(customer="a", seq=3), Order(customer="a", seq=4))

    assert clock.now() == pytest.approx(5.0)
    assert str(caught.value).startswith(
        f"stream {app.name}.orders: still no room for the batch after waiting 5s "
        "(default_send_wait_timeout) for its processors to acknowledge entries; nothing was "
        "sent: lossless cap of 3 on stream "
    )
    assert [r.seq for r in await stored(orders, 0)] == [0, 1, 2]


async def test_a_wait_send_with_a_zero_timeout_tries_once(make_app: MakeApp) -> None:
    clock = SimulatedClock(autojump=True)
    orders = await fill(on_clock(make_app(default_send_wait_timeout=0), clock), size=2)

    with pytest.raises(BackpressureError, match="after waiting 0s"):
        await orders.send(Order(customer="a", seq=2))

    assert clock.now() == 0.0


async def test_a_wait_send_larger_than_the_partition_size_fails_at_once(app: App) -> None:
    clock = SimulatedClock(autojump=True)
    orders = orders_of(
        on_clock(app, clock),
        partition_count=2,
        partition_size=3,
        hasher=key_as_partition,
        trim_mode="wait",
    )
    app.processor(orders, name="billing")(noop)
    batch = [Order(customer="0", seq=0)] + [Order(customer="1", seq=n) for n in range(4)]

    with pytest.raises(BackpressureError) as caught:
        await orders.send(*batch)

    assert clock.now() == 0.0
    assert str(caught.value) == (
        f"stream {app.name}.orders: the batch has 4 events for partition 1, more than its "
        "partition_size of 3, so it can never fit under the lossless cap; nothing was sent "
        "(send fewer events at a time)"
    )
    assert await lengths(orders) == [0, 0]
