"""Stable partition routing.

The default hash is XXH64 (seed 0) over the *canonical bytes* of the partition key. It
never depends on the process (unlike the builtin ``hash``), and the pure-Python
implementation here gives bit-for-bit the same value as the ``xxhash`` C library that the
``fast`` extra installs, so a partition never changes with the install. ``HASH_VERSION``
is recorded in each stream's metadata.

Example:
    >>> partition_for(xxh64(canonical_key(42)), 16)
    9
"""

from __future__ import annotations

import struct
import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Final

HASH_VERSION: Final = "xxh64-v1"

_M64: Final = 0xFFFFFFFFFFFFFFFF
_P1: Final = 0x9E3779B185EBCA87
_P2: Final = 0xC2B2AE3D27D4EB4F
_P3: Final = 0x165667B19E3779F9
_P4: Final = 0x85EBCA77C2B2AE63
_P5: Final = 0x27D4EB2F165667C5


def canonical_key(key: object) -> bytes:
    """The bytes a partition key is hashed as.

    ``str`` is UTF-8; ``bytes`` as is; ``int`` (and ``bool``, as 0/1) in decimal; ``float``
    by ``repr``; ``UUID``, ``Decimal``, dates and enums by their text form.

    Example:
        >>> canonical_key("abc"), canonical_key(7), canonical_key(True)
        (b'abc', b'7', b'1')
    """
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes | bytearray | memoryview):
        return bytes(key)
    if isinstance(key, Enum):
        return canonical_key(key.value)
    if isinstance(key, bool | int):
        return str(int(key)).encode()
    if isinstance(key, float):
        return repr(key).encode()
    if isinstance(key, uuid.UUID | Decimal):
        return str(key).encode()
    if isinstance(key, datetime | date):
        return key.isoformat().encode()
    raise TypeError(
        f"cannot use a {type(key).__name__} as a partition key: expected str, bytes, int, "
        "float, UUID, Decimal, date/datetime or an Enum of those"
    )


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _M64
    return (_rotl(acc, 31) * _P1) & _M64


def _merge(acc: int, val: int) -> int:
    acc ^= _round(0, val)
    return (acc * _P1 + _P4) & _M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of ``data``, in pure Python (identical to ``xxhash.xxh64_intdigest``).

    Example:
        >>> hex(xxh64(b""))
        '0xef46db3751d8e999'
    """
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _M64
        v2 = (seed + _P2) & _M64
        v3 = seed & _M64
        v4 = (seed - _P1) & _M64
        limit = n - 32
        while i <= limit:
            a, b, c, d = struct.unpack_from("<4Q", data, i)
            v1, v2, v3, v4 = _round(v1, a), _round(v2, b), _round(v3, c), _round(v4, d)
            i += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M64
        h = _merge(_merge(_merge(_merge(h, v1), v2), v3), v4)
    else:
        h = (seed + _P5) & _M64
    h = (h + n) & _M64
    while i + 8 <= n:
        (lane,) = struct.unpack_from("<Q", data, i)
        h ^= _round(0, lane)
        h = (_rotl(h, 27) * _P1 + _P4) & _M64
        i += 8
    if i + 4 <= n:
        (word,) = struct.unpack_from("<I", data, i)
        h ^= (word * _P1) & _M64
        h = (_rotl(h, 23) * _P2 + _P3) & _M64
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _M64
        h = (_rotl(h, 11) * _P1) & _M64
        i += 1
    h ^= h >> 33
    h = (h * _P2) & _M64
    h ^= h >> 29
    h = (h * _P3) & _M64
    h ^= h >> 32
    return h


def partition_for(key_hash: int, partition_count: int) -> int:
    """The partition number for a key's hash.

    Example:
        >>> partition_for(17, 16)
        1
    """
    if partition_count < 1:
        raise ValueError(f"partition_count must be >= 1, got {partition_count}")
    return key_hash % partition_count
