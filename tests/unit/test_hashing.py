"""Partition routing is pinned: the same key goes to the same partition in every version,
process and install (pure-Python or C xxhash), and never through the builtin ``hash``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timezone
from decimal import Decimal
from enum import Enum

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from runnel.adapters.hashers import default_hasher
from runnel.domain.hashing import HASH_VERSION, canonical_key, partition_for, xxh64

# Computed once with the implementation of HASH_VERSION "xxh64-v1" and hard-coded: if a
# row changes, every deployed stream would re-route its keys. The first three hashes are
# also the published XXH64 reference values for "", "a" and "abc".
PINNED: list[tuple[object, int, int]] = [
    # key, XXH64 of its canonical bytes, partition of 16
    ("", 0xEF46DB3751D8E999, 9),
    ("a", 0xD24EC4F1A98C6E5B, 11),
    ("abc", 0x44BC2CF5AD770999, 9),
    ("customer-1", 0x7C29938F9B3E2F98, 8),
    ("customer-2", 0x2E7A7CC2D654702D, 13),
    ("order:42", 0xAA1F6214E0A40FF4, 4),
    ("héllo", 0x3BD06310388EBBE4, 4),
    ("日本語", 0x7179A19F3719F5E1, 1),
    ("🦀", 0x0F0B6053E412E8BC, 12),
    ("x" * 40, 0x926F564E1B3E18D5, 5),
    (0, 0x633457081244AFEC, 12),
    (1, 0xB7B41276360564D4, 4),
    (7, 0x184A52B6A00D7AB7, 7),
    (42, 0x6DE6F5D076D742B9, 9),
    (-1, 0x3D62C7C8A7A6E2D8, 8),
    (2**63, 0x3F4A8FCEA23D52A3, 3),
    (10**30, 0xE593291BEBE67C51, 1),
    (True, 0xB7B41276360564D4, 4),
    (b"", 0xEF46DB3751D8E999, 9),
    (b"\x00", 0xE934A84ADB052768, 8),
    (b"\xff\xfe", 0x1D54D198E3108E1F, 15),
    (b"bytes-key", 0x4DAB29CFA5AA156A, 10),
    (b"a" * 33, 0x18F3FF0C21E3B24B, 11),
    (uuid.UUID("12345678-1234-5678-1234-567812345678"), 0xEB47C2A270EC05DA, 10),
    (uuid.UUID(int=0), 0xFB926CCD4E3E5BC9, 9),
    (uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), 0xE3E8AFE485ADFA1D, 13),
]


def test_the_hash_version_recorded_in_stream_metadata_is_pinned() -> None:
    assert HASH_VERSION == "xxh64-v1"


@pytest.mark.parametrize(("key", "digest", "partition"), PINNED, ids=repr)
def test_a_key_goes_to_its_pinned_partition(key: object, digest: int, partition: int) -> None:
    assert xxh64(canonical_key(key)) == digest
    assert default_hasher()(key) == digest
    assert default_hasher(prefer_fast=False)(key) == digest
    assert partition_for(default_hasher()(key), 16) == partition


def test_the_pinned_table_spreads_over_many_partitions() -> None:
    # A table that pinned everything to one partition would pin very little.
    assert len({partition for _, _, partition in PINNED}) >= 10


@given(data=st.binary(min_size=0, max_size=200))
def test_pure_python_xxh64_equals_the_xxhash_library(data: bytes) -> None:
    assert xxh64(data) == xxhash.xxh64_intdigest(data)


@pytest.mark.parametrize("length", range(0, 201))
def test_pure_python_xxh64_equals_the_xxhash_library_at_every_length(length: int) -> None:
    # Every tail shape (8-, 4- and 1-byte steps) after 0..6 full 32-byte stripes.
    data = bytes((i * 131 + length) % 256 for i in range(length))

    assert xxh64(data) == xxhash.xxh64_intdigest(data)


@given(data=st.binary(max_size=80), seed=st.integers(min_value=0, max_value=2**64 - 1))
def test_pure_python_xxh64_honours_the_seed_like_the_library(data: bytes, seed: int) -> None:
    assert xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)


@given(key=st.one_of(st.text(), st.binary(), st.integers(), st.uuids()))
def test_the_pure_and_fast_hashers_agree(key: object) -> None:
    assert default_hasher(prefer_fast=False)(key) == default_hasher()(key)


def test_partition_for_rejects_a_partition_count_below_one() -> None:
    with pytest.raises(ValueError, match="partition_count must be >= 1, got 0"):
        partition_for(123, 0)


class Colour(Enum):
    RED = "red"
    BLUE = 2


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        ("é", "é".encode()),
        (bytearray(b"\x01\x02"), b"\x01\x02"),
        (memoryview(b"mv"), b"mv"),
        (False, b"0"),
        (-17, b"-17"),
        (0.1, b"0.1"),
        (Decimal("1.50"), b"1.50"),
        (uuid.UUID(int=1), b"00000000-0000-0000-0000-000000000001"),
        (date(2024, 2, 29), b"2024-02-29"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), b"2024-01-02T03:04:05+00:00"),
        (Colour.RED, b"red"),
        (Colour.BLUE, b"2"),
    ],
    ids=repr,
)
def test_canonical_key_of_each_supported_type(key: object, canonical: bytes) -> None:
    assert canonical_key(key) == canonical


@pytest.mark.parametrize(
    ("key", "type_name"),
    [
        (None, "NoneType"),
        ([1, 2], "list"),
        ((1, 2), "tuple"),
        ({"a": 1}, "dict"),
        ({1}, "set"),
        (object(), "object"),
        (1 + 2j, "complex"),
    ],
    ids=repr,
)
def test_canonical_key_rejects_unsupported_types_naming_them(key: object, type_name: str) -> None:
    with pytest.raises(TypeError, match=rf"cannot use a {type_name} as a partition key: expected"):
        canonical_key(key)


def test_the_hasher_rejects_an_unsupported_key_with_the_same_message() -> None:
    with pytest.raises(TypeError, match="cannot use a list as a partition key"):
        default_hasher()([1])
    with pytest.raises(TypeError, match="cannot use a list as a partition key"):
        default_hasher(prefer_fast=False)([1])


_PROBE = """
import json, uuid
from runnel.adapters.hashers import default_hasher
from runnel.domain.hashing import partition_for
keys = ["customer-1", "日本語", b"bytes-key", 42, uuid.UUID(int=0)]
print(json.dumps({
    "builtin": hash("customer-1"),
    "partitions": [
        [partition_for(default_hasher(prefer_fast=fast)(k), 16) for k in keys]
        for fast in (True, False)
    ],
}))
"""


def test_partitions_are_the_same_in_fresh_interpreters_whatever_their_hash_seed() -> None:
    expected = [8, 1, 10, 9, 9]  # the PINNED partitions of the probe's keys
    builtin_hashes: set[int] = set()

    for hash_seed in ("0", "1", "4242", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout)
        builtin_hashes.add(result["builtin"])

        assert result["partitions"] == [expected, expected], f"PYTHONHASHSEED={hash_seed}"

    # The seeds really changed the builtin hash, so a partition derived from it would move.
    assert len(builtin_hashes) >= 3
