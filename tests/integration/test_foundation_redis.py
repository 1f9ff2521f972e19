"""The foundation on a real redis-server: key layout, stored shapes, metadata, the CLI,
and Redis errors surfacing as runnel errors.

Every test names its own app (``t<hex>``), so its keys are its own; nothing is flushed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from runnel import App, Record, Stream
from runnel.adapters.compressors import GzipCompressor
from runnel.errors import (
    BackendError,
    BackendProtocolError,
    BackendUnavailable,
    BackpressureError,
    MetadataMismatch,
)
from tests.kit import Click, unique, write_user_module


class Order(Record):
    customer: str
    seq: int


MakeApp = Callable[..., App]


@pytest.fixture
def name() -> str:
    return unique()


@pytest.fixture
async def make_app(name: str, redis_url: str) -> AsyncIterator[MakeApp]:
    """Apps called ``name`` on the test server; their connections are closed at the end."""
    made: list[App] = []

    def make(**settings: Any) -> App:
        settings.setdefault("redis_url", redis_url)
        app = App(name=name, **settings)
        made.append(app)
        return app

    yield make
    for app in made:
        await app.close()


async def noop(events: object) -> None:
    pass


def key_as_partition(key: object) -> int:
    """A hasher that sends key ``"3"`` to partition 3."""
    return int(str(key))


def orders_of(app: App, **options: Any) -> Stream[Order]:
    options.setdefault("partition_count", 4)
    options.setdefault("hasher", key_as_partition)
    return app.stream("orders", record=Order, partition_by="customer", **options)


async def keys_of(client: Redis, app_name: str) -> set[str]:
    return {key.decode() async for key in client.scan_iter(match=f"*:{app_name}.*")}


async def xrange_fields(client: Redis, key: str) -> list[dict[bytes, bytes]]:
    """The fields of every entry of ``key`` (XRANGE - +), as Redis stores them."""
    # redis-py types replies loosely; with decode_responses=False they are bytes.
    entries = cast("list[tuple[bytes, dict[bytes, bytes]]]", await client.xrange(key))
    return [fields for _, fields in entries]


# --------------------------------------------------------------------------- layout


async def test_a_send_writes_exactly_the_partition_keys_and_metadata(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    orders = orders_of(make_app())

    await orders.send(Order(customer="1", seq=1), Order(customer="3", seq=2))

    assert await keys_of(redis_client, name) == {
        f"__strm:{name}.orders.1",
        f"__strm:{name}.orders.3",
        f"__meta:{name}.orders",
    }
    assert await redis_client.type(f"__strm:{name}.orders.1") == b"stream"
    assert await redis_client.xlen(f"__strm:{name}.orders.3") == 1


async def test_a_declared_processor_has_its_group_on_every_partition_after_a_send(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    app = make_app()
    orders = orders_of(app)
    app.processor(orders, name="billing")(noop)

    await orders.send(Order(customer="0", seq=1))

    for n in range(4):
        groups = await redis_client.xinfo_groups(f"__strm:{name}.orders.{n}")
        assert [(g["name"], g["pending"]) for g in groups] == [(b"billing", 0)]
    assert [await redis_client.xlen(f"__strm:{name}.orders.{n}") for n in range(4)] == [1, 0, 0, 0]


async def test_a_json_record_is_stored_under_the_single_field_data(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    orders = orders_of(make_app())

    await orders.send(Order(customer="2", seq=7))

    assert await xrange_fields(redis_client, f"__strm:{name}.orders.2") == [
        {b"data": b'{"customer":"2","seq":7}'}
    ]


async def test_a_primitive_record_is_stored_as_native_fields_with_bools_as_1_or_0(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    app = make_app()
    clicks = app.stream("clicks", record=Click, partition_by="user_id", partition_count=1)

    await clicks.send(
        Click(user_id=5, clicked=True, score=0.1, page="/café", token=b"\x00\xff"),
        Click(user_id=5, clicked=False, score=-0.0, page="", token=b""),
    )

    assert await xrange_fields(redis_client, f"__strm:{name}.clicks.0") == [
        {
            b"user_id": b"5",
            b"clicked": b"1",
            b"score": b"0.1",
            b"page": "/café".encode(),
            b"token": b"\x00\xff",
        },
        {b"user_id": b"5", b"clicked": b"0", b"score": b"-0.0", b"page": b"", b"token": b""},
    ]


async def test_stream_metadata_is_a_hash_of_count_hash_and_codec(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    app = make_app()
    orders = app.stream("orders", record=Order, partition_by="customer", partition_count=6)
    clicks = app.stream("clicks", record=Click, partition_by="user_id", partition_count=2)

    await orders.send(Order(customer="a", seq=1))
    await clicks.send(Click(user_id=1, clicked=True, score=1.0, page="/", token=b""))

    meta = await redis_client.hgetall(f"__meta:{name}.orders")
    assert len(meta.pop(b"generation")) == 16
    assert meta == {
        b"partition_count": b"6",
        b"hash": b"xxh64-v1",
        b"codec": b"json",
    }
    meta = await redis_client.hgetall(f"__meta:{name}.clicks")
    assert len(meta.pop(b"generation")) == 16
    assert meta == {
        b"partition_count": b"2",
        b"hash": b"xxh64-v1",
        b"codec": b"primitive",
    }


# --------------------------------------------------------------------------- metadata


async def test_a_second_app_with_another_partition_count_gets_a_metadata_mismatch(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    await orders_of(make_app(), partition_count=4).send(Order(customer="1", seq=1))
    other = orders_of(make_app(), partition_count=8)

    with pytest.raises(MetadataMismatch) as caught:
        await other.send(Order(customer="5", seq=2))

    assert f"stream {name}.orders: partition_count is '4' in the backend but '8'" in str(
        caught.value
    )
    assert not await redis_client.exists(f"__strm:{name}.orders.5")
    assert await redis_client.hget(f"__meta:{name}.orders", "partition_count") == b"4"


async def test_a_second_app_with_another_codec_gets_a_metadata_mismatch(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    await orders_of(make_app()).send(Order(customer="1", seq=1))
    other = orders_of(make_app(), compressor=GzipCompressor())

    with pytest.raises(MetadataMismatch, match=r"codec is 'json' in the backend but 'json\+gzip'"):
        await other.send(Order(customer="1", seq=2))

    assert await redis_client.xlen(f"__strm:{name}.orders.1") == 1


# --------------------------------------------------------------------------- caps


async def test_a_lossless_cap_refuses_an_append_over_unacknowledged_entries(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    app = make_app()
    orders = orders_of(app, partition_size=3)
    app.processor(orders, name="billing")(noop)
    await orders.send(*[Order(customer="0", seq=n) for n in range(3)])

    with pytest.raises(BackpressureError, match="'billing' has not acknowledged"):
        await orders.send(Order(customer="2", seq=99), Order(customer="0", seq=3))

    assert await redis_client.xlen(f"__strm:{name}.orders.0") == 3
    assert await redis_client.xlen(f"__strm:{name}.orders.2") == 0


# --------------------------------------------------------------------------- errors


async def test_a_redis_error_surfaces_as_a_backend_error_with_the_redis_message(
    make_app: MakeApp, redis_client: Redis, name: str
) -> None:
    orders = orders_of(make_app(), partition_count=1)
    await redis_client.set(f"__strm:{name}.orders.0", b"not a stream")

    with pytest.raises(BackendProtocolError) as caught:
        await orders.send(Order(customer="0", seq=1))

    assert isinstance(caught.value, BackendError)
    assert "WRONGTYPE" in str(caught.value)
    assert await redis_client.get(f"__strm:{name}.orders.0") == b"not a stream"


async def test_an_unreachable_server_is_backend_unavailable(make_app: MakeApp) -> None:
    orders = orders_of(make_app(redis_url="redis://127.0.0.1:1/0"))

    with pytest.raises(BackendUnavailable, match="Redis is unreachable"):
        await orders.send(Order(customer="1", seq=1))


# --------------------------------------------------------------------------- CLI


def runnel_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runnel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def cli_module(tmp_path: Path, name: str) -> str:
    return write_user_module(tmp_path, name)


async def test_cli_sendmany_sends_a_file_to_the_server_given_by_redis_url(
    tmp_path: Path, cli_module: str, redis_url: str, redis_client: Redis, name: str
) -> None:
    lines = [f'{{"user_id": {n}, "type": "t{n}"}}' for n in range(10)]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")

    done = runnel_cli(
        tmp_path, "sendmany", f"{cli_module}:actions", "data.jsonl", "--redis-url", redis_url
    )

    assert done.returncode == 0, done.stderr
    keys = [f"__strm:{name}.actions.{n}" for n in range(4)]
    counts = [await redis_client.xlen(key) for key in keys]
    assert sum(counts) == 10
    used = sum(1 for count in counts if count)
    assert done.stdout == f"sent 10 event(s) to {used} partition(s) of {name}.actions\n"
    assert await redis_client.hget(f"__meta:{name}.actions", "partition_count") == b"4"


async def test_cli_sendmany_reports_bad_lines_and_sends_nothing_to_the_server(
    tmp_path: Path, cli_module: str, redis_url: str, redis_client: Redis, name: str
) -> None:
    lines = [
        '{"user_id": 1, "type": "ok"}',
        '{"user_id": 2, "type": ',
        '{"user_id": 3, "type": "ok"}',
        '{"user_id": 4, "type": "ok"}',
        '{"user_id": 5}',
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")

    done = runnel_cli(
        tmp_path, "sendmany", f"{cli_module}:actions", "data.jsonl", "--redis-url", redis_url
    )

    assert done.returncode == 1
    assert "line 2: Invalid JSON" in done.stderr
    assert "line 5: type: Field required" in done.stderr
    assert "2 invalid line(s); nothing was sent" in done.stderr
    assert await keys_of(redis_client, name) == set()


async def test_cli_send_reports_a_redis_error(
    tmp_path: Path, cli_module: str, redis_url: str, redis_client: Redis, name: str
) -> None:
    await redis_client.set(f"__meta:{name}.actions", b"not a hash")

    done = runnel_cli(
        tmp_path,
        "send",
        f"{cli_module}:actions",
        '{"user_id": 1, "type": "a"}',
        "--redis-url",
        redis_url,
    )

    assert done.returncode == 1
    assert "Error: BackendProtocolError: Redis refused the command: WRONGTYPE" in done.stderr
    assert await keys_of(redis_client, name) == {f"__meta:{name}.actions"}


async def test_cli_sendmany_refused_midway_says_what_the_server_already_has(
    tmp_path: Path, cli_module: str, redis_url: str, redis_client: Redis, name: str
) -> None:
    lines = [f'{{"user_id": 1, "type": "t{n}"}}' for n in range(1, 8)]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")

    done = runnel_cli(
        tmp_path,
        "sendmany",
        f"{cli_module}:capped",
        "data.jsonl",
        "--chunk-size",
        "2",
        "--redis-url",
        redis_url,
    )

    assert done.returncode == 1
    assert "Error: BackpressureError: append to stream " in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.endswith(
        f"\n4 of 7 event(s), up to line 4, were sent to 1 partition(s) of {name}.capped "
        "before the error; the chunk of 2 event(s) from line 5 was not written, and nothing "
        "after it was sent. Sending the whole file again would send those 4 event(s) twice: "
        "resume from line 5 instead.\n"
    )
    assert await redis_client.xlen(f"__strm:{name}.capped.0") == 4


# --------------------------------------------------------------------------- store resets


async def test_concurrent_store_checks_report_one_reset_and_re_create_the_groups(
    make_app: MakeApp, name: str, redis_client: Redis
) -> None:
    app = make_app()
    orders = app.stream("orders", record=Order, partition_by="customer", partition_count=3)
    app.processor(orders, name="proc")(noop)
    await orders.prepare()
    assert await orders.check_store() is False  # nothing happened
    first = orders.generation
    gone = [k async for k in redis_client.scan_iter(match=f"__*:{name}.*")]
    await redis_client.delete(*gone)  # the store lost everything
    found = await asyncio.gather(*(orders.check_store() for _ in range(4)))
    assert sorted(found) == [False, False, False, True]  # one reset, reported once
    assert orders.generation not in (None, first)
    assert await redis_client.hget(f"__meta:{name}.orders", "generation") == orders.generation
    for n in range(3):
        groups = await redis_client.xinfo_groups(f"__strm:{name}.orders.{n}")
        assert [(g["name"], g["last-delivered-id"]) for g in groups] == [(b"proc", b"0-0")]
