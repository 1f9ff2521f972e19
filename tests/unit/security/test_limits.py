"""Decoding limits apply before the work: nothing oversized is allocated or quoted."""

from __future__ import annotations

import contextlib
import gzip
import tracemalloc
from collections.abc import Callable

import pytest

from runnel import App, Record
from runnel.adapters.compressors import GzipCompressor, LZ4Compressor
from runnel.adapters.serializers import JSONSerializer
from runnel.codec import RecordCodec
from runnel.domain.excerpt import excerpt
from runnel.domain.limits import DecodeLimits, check_fields
from runnel.errors import DecodeError, LimitExceeded
from runnel.interfaces import Compressor

MiB = 1 << 20


class Tick(Record):
    key: str
    seq: int


class Flat(Record, primitive=True):
    key: str
    ratio: float
    on: bool


def peak_allocated(call: Callable[[], object]) -> int:
    """Bytes allocated at the peak of ``call`` (its result is dropped)."""
    tracemalloc.start()
    try:
        with contextlib.suppress(Exception):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_too_many_fields_are_refused_naming_the_limit() -> None:
    codec = RecordCodec(Flat, JSONSerializer(), None, DecodeLimits(max_field_count=10))
    fields = {b"f%05d" % i: b"1" for i in range(20_000)}
    with pytest.raises(
        LimitExceeded, match=r"entry has 20000 fields, over max_field_count \(10\)"
    ) as e:
        codec.decode(fields)
    assert e.value.limit == "max_field_count"


def test_a_field_too_large_is_refused_before_it_is_parsed() -> None:
    codec = RecordCodec(Flat, JSONSerializer(), None, DecodeLimits(max_field_size=MiB))
    huge = {b"key": b"k", b"ratio": b"1" * (20 * MiB), b"on": b"1"}
    with pytest.raises(
        LimitExceeded, match=r"field 'ratio' is 20971520 bytes, over max_field_size"
    ):
        codec.decode(huge)
    assert peak_allocated(lambda: codec.decode(huge)) < MiB


@pytest.mark.parametrize("compressor", [GzipCompressor(), LZ4Compressor()], ids=["gzip", "lz4"])
def test_a_compression_bomb_is_refused_without_inflating_it(compressor: Compressor) -> None:
    limits = DecodeLimits(max_decompressed_size=MiB)
    codec = RecordCodec(Tick, JSONSerializer(), compressor, limits)
    body = b'{"key":"k","seq":1,"pad":"' + b"a" * (64 * MiB) + b'"}'
    fields = {b"data": f"#!json+{compressor.name}\n".encode() + compressor.compress(body)}
    del body
    with pytest.raises(LimitExceeded, match="over max_decompressed_size") as refused:
        codec.decode(fields)
    assert refused.value.limit == "max_decompressed_size"
    assert peak_allocated(lambda: codec.decode(fields)) < 4 * MiB  # not 64 MiB


@pytest.mark.parametrize("compressor", [GzipCompressor(), LZ4Compressor()], ids=["gzip", "lz4"])
def test_bounded_decompression_gives_what_decompress_gives(compressor: Compressor) -> None:
    data = compressor.compress(b"abc" * 1000)
    assert compressor.decompress_limited(data, 3000) == compressor.decompress(data)
    assert compressor.decompress_limited(data, 2999) is None
    with pytest.raises((OSError, ValueError), match="ended before the end"):
        compressor.decompress_limited(data[: len(data) // 2], 3000)


def test_gzip_members_are_inflated_one_after_another_within_one_budget() -> None:
    data = gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10)
    assert GzipCompressor().decompress_limited(data, 20) == b"a" * 10 + b"b" * 10
    assert GzipCompressor().decompress_limited(data, 19) is None


def test_a_custom_compressor_is_checked_after_inflating() -> None:
    class Reverse(Compressor):
        name = "rev"

        def compress(self, data: bytes) -> bytes:
            return data[::-1]

        def decompress(self, data: bytes) -> bytes:
            return data[::-1]

    assert Reverse().decompress_limited(b"cba", 3) == b"abc"
    assert Reverse().decompress_limited(b"cba", 2) is None


def test_send_refuses_a_record_the_workers_would_refuse() -> None:
    app = App(name="limits-send", redis_url="memory://limits-send", max_field_size=100)
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    with pytest.raises(
        LimitExceeded, match=r"record is \d+ bytes once encoded, over max_field_size"
    ):
        ticks.encode_batch([Tick(key="k" * 200, seq=1)])
    squeezed = App(
        name="limits-gz",
        redis_url="memory://limits-gz",
        max_decompressed_size=100,
        default_compressor="gzip",
    )
    compressed = squeezed.stream("ticks", record=Tick, partition_by="key")
    with pytest.raises(LimitExceeded, match="max_decompressed_size"):
        compressed.encode_batch([Tick(key="k" * 200, seq=1)])


def test_reconfigured_limits_reach_existing_streams() -> None:
    app = App(name="limits-re", redis_url="memory://limits-re")
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    app.reconfigure(max_field_count=3)
    assert ticks.codec.limits.max_field_count == 3


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({b"key": b"k", b"ratio": b"1" * (20 * MiB) + b"x", b"on": b"1"}, "as float"),
        ({b"key": b"k", b"ratio": b"1.5", b"on": b"y" * (20 * MiB)}, "as bool"),
        ({b"key": b"\xff" * (20 * MiB), b"ratio": b"1.5", b"on": b"1"}, "as str"),
    ],
)
def test_decode_errors_quote_values_by_short_marked_excerpts(
    fields: dict[bytes, bytes], expected: str
) -> None:
    codec = RecordCodec(Flat, JSONSerializer(), None, DecodeLimits(max_field_size=64 * MiB))
    with pytest.raises(DecodeError, match=expected) as refused:
        codec.decode(fields)
    message = str(refused.value)
    assert len(message) < 400
    assert "...(20971521 bytes)" in message or "...(20971520 bytes)" in message
    chain = refused.value.__cause__ or refused.value.__context__
    assert chain is None or len(str(chain)) < 1000  # no oversized cause in the traceback


def test_a_json_entry_without_data_lists_a_few_field_names() -> None:
    codec = RecordCodec(Tick, JSONSerializer(), None, DecodeLimits(max_field_count=100_000))
    with pytest.raises(DecodeError, match=r"entry has no 'data' field") as refused:
        codec.decode({b"f%05d" % i: b"v" for i in range(20_000)})
    assert "... 20000 fields in all" in str(refused.value)
    assert len(str(refused.value)) < 600


def test_check_fields_accepts_what_is_within_the_limits() -> None:
    check_fields({b"a": b"x" * 8, b"b": b""}, DecodeLimits(2, 8, 1))


def test_excerpts_are_marked_with_the_full_length() -> None:
    assert excerpt(b"x" * 100, 4) == "b'xxxx'...(100 bytes)"
    assert excerpt("é" * 10, 2) == "'éé'...(10 chars)"
    assert excerpt(b"ok") == "b'ok'"
