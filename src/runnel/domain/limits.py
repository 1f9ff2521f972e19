"""Decoding limits: what an entry may cost a worker before it is decoded at all.

Anyone who may ``XADD`` to a stream can write an entry that is cheap to store and
expensive to decode: a 260 KB gzip payload that inflates to 256 MB, a 20 MB field, 20,000
fields. Three limits (settings of the same names) refuse such entries *before* the work:

================================  =========================================================
``max_field_count``               fields in one entry; checked first, on the field count
``max_field_size``                bytes in one field; checked on every field's length
``max_decompressed_size``         bytes a compressed payload may inflate to; the
                                  decompressor stops at the limit (it never allocates more)
================================  =========================================================

An entry over a limit raises :class:`~runnel.errors.LimitExceeded` (a ``DecodeError``)
naming the limit, so it goes through the processor's exception policy like any entry that
cannot be decoded, and the dead-letter middleware keeps its raw fields. The same limits
refuse a record at ``send`` that the workers would refuse.

Example:
    >>> limits = DecodeLimits(max_field_count=2, max_field_size=8, max_decompressed_size=64)
    >>> check_fields({b"data": b"{}"}, limits)
    >>> check_fields({b"data": b"x" * 9}, limits)
    Traceback (most recent call last):
    ...
    runnel.errors.LimitExceeded: field 'data' is 9 bytes, over max_field_size (8 bytes)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from runnel.domain.excerpt import excerpt
from runnel.errors import LimitExceeded

MiB: Final = 1 << 20

DEFAULT_MAX_FIELD_COUNT: Final = 1024
DEFAULT_MAX_FIELD_SIZE: Final = 16 * MiB
DEFAULT_MAX_DECOMPRESSED_SIZE: Final = 32 * MiB


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """The three decoding limits of a stream (from the app's settings).

    Example:
        >>> DecodeLimits().max_field_count
        1024
    """

    max_field_count: int = DEFAULT_MAX_FIELD_COUNT
    max_field_size: int = DEFAULT_MAX_FIELD_SIZE
    max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE


def check_fields(fields: Mapping[bytes, bytes], limits: DecodeLimits) -> None:
    """Refuse ``fields`` if there are too many or one is too large.

    Raises:
        LimitExceeded: over ``max_field_count`` or ``max_field_size`` (the message names
            the limit, and the field by a short excerpt of its name).

    Example:
        >>> check_fields({b"a": b"1", b"b": b"2", b"c": b"3"}, DecodeLimits(max_field_count=2))
        Traceback (most recent call last):
        ...
        runnel.errors.LimitExceeded: entry has 3 fields, over max_field_count (2)
    """
    if len(fields) > limits.max_field_count:
        raise too_many_fields(len(fields), limits)
    most = limits.max_field_size
    for name, value in fields.items():
        if len(value) > most:
            raise field_too_large(name, len(value), limits)


def too_many_fields(count: int, limits: DecodeLimits) -> LimitExceeded:
    """The error for an entry of ``count`` fields, over ``max_field_count``."""
    return LimitExceeded(
        f"entry has {count} fields, over max_field_count ({limits.max_field_count})",
        "max_field_count",
    )


def field_too_large(name: bytes, size: int, limits: DecodeLimits) -> LimitExceeded:
    """The error for a field of ``size`` bytes, over ``max_field_size``."""
    return LimitExceeded(
        f"field {_name(name)} is {size} bytes, over max_field_size ({limits.max_field_size} bytes)",
        "max_field_size",
    )


def decompressed_too_large(limits: DecodeLimits) -> LimitExceeded:
    """The error for a payload that inflates past ``max_decompressed_size``.

    Example:
        >>> limits = DecodeLimits(max_decompressed_size=10)
        >>> print(decompressed_too_large(limits))  # doctest: +ELLIPSIS
        payload inflates to more than 10 bytes, over max_decompressed_size; ...
    """
    return LimitExceeded(
        f"payload inflates to more than {limits.max_decompressed_size} bytes, over "
        "max_decompressed_size; it was not inflated further",
        "max_decompressed_size",
    )


def record_too_large(size: int, limit: str, most: int) -> LimitExceeded:
    """The error for a record that ``send`` refuses because the workers would.

    Example:
        >>> print(record_too_large(20, "max_field_size", 16))
        record is 20 bytes once encoded, over max_field_size (16 bytes): workers would refuse it
    """
    return LimitExceeded(
        f"record is {size} bytes once encoded, over {limit} ({most} bytes): workers would "
        "refuse it",
        limit,
    )


def _name(raw: bytes) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return excerpt(raw, 32)
    return excerpt(text, 32)
