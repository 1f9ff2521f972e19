"""The wire format of stored entries.

JSON records
    One field, ``data``. With the JSON serializer and no compressor the value is the bare
    UTF-8 JSON object (it starts with ``{``), readable by any tool. Any other combination
    starts with a header line naming the codec, ``#!<serializer>[+<compressor>]\\n``,
    followed by the payload; a JSON object never starts with ``#``, so the two cannot be
    confused. A reader configured differently gets :class:`CodecMismatch` naming both.

Primitive records
    One stream field per record field: ``int`` in decimal, ``float`` by ``repr`` (exact
    round trip), ``bool`` as ``1``/``0``, ``str`` as UTF-8, ``bytes`` unchanged.

Example:
    >>> split_payload(b'{"a":1}')
    ('json', None, b'{"a":1}')
    >>> split_payload(with_header("json", "gzip", b"xyz"))
    ('json', 'gzip', b'xyz')
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from runnel.domain.excerpt import excerpt
from runnel.errors import CodecMismatch, DecodeError

DATA_FIELD: Final = b"data"
HEADER_PREFIX: Final = b"#!"
PRIMITIVE_TYPES: Final = (bool, int, float, str, bytes)


def codec_name(serializer: str, compressor: str | None) -> str:
    """The name recorded for a serializer/compressor pair (``json``, ``json+lz4``).

    Example:
        >>> codec_name("json", "lz4")
        'json+lz4'
    """
    return serializer if compressor is None else f"{serializer}+{compressor}"


def with_header(serializer: str, compressor: str | None, payload: bytes) -> bytes:
    """Prefix ``payload`` with its header, unless it is bare JSON (no header needed)."""
    if serializer == "json" and compressor is None:
        return payload
    return HEADER_PREFIX + codec_name(serializer, compressor).encode() + b"\n" + payload


def split_payload(value: bytes) -> tuple[str, str | None, bytes]:
    """Parse a stored ``data`` value into (serializer, compressor, payload).

    Raises:
        DecodeError: the value is neither bare JSON nor headed.
    """
    if value[:1] == b"{":
        return "json", None, value
    if value[:2] == HEADER_PREFIX:
        end = value.find(b"\n", 2, 200)
        if end > 2:
            name = value[2:end].decode("ascii", "replace")
            serializer, _, compressor = name.partition("+")
            return serializer, (compressor or None), value[end + 1 :]
    raise DecodeError(
        f"unrecognised payload: expected a JSON object or a codec header, got {excerpt(value, 24)}"
    )


def check_codec(found: tuple[str, str | None], expected: tuple[str, str | None]) -> None:
    """Raise CodecMismatch when an entry's codec is not the reader's.

    Example:
        >>> check_codec(("json", None), ("json", None))
    """
    if found != expected:
        raise CodecMismatch(
            f"entry was written as {codec_name(*found)!r} but this stream reads "
            f"{codec_name(*expected)!r}: configure the same serializer and compressor"
        )


def encode_primitive(value: object) -> bytes:
    """Encode one primitive field value.

    Example:
        >>> encode_primitive(True), encode_primitive(1.5), encode_primitive("é")
        (b'1', b'1.5', b'\\xc3\\xa9')
    """
    if value is True:
        return b"1"
    if value is False:
        return b"0"
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"cannot store a {type(value).__name__} in a primitive record")


def _strict_bool(raw: bytes) -> bool:
    if raw == b"1":
        return True
    if raw == b"0":
        return False
    raise ValueError(f"expected b'1' or b'0', got {excerpt(raw)}")


def _utf8(raw: bytes) -> str:
    return raw.decode("utf-8")


def _same(raw: bytes) -> bytes:
    return raw


_CONVERTERS: dict[type, Callable[[bytes], object]] = {
    bytes: _same,
    str: _utf8,
    bool: _strict_bool,
    int: int,
    float: float,
}


def primitive_converter(kind: type) -> Callable[[bytes], object]:
    """The function that decodes stored bytes into a ``kind`` field value.

    It raises ``ValueError`` or ``UnicodeDecodeError`` on bad input; see
    :func:`decode_primitive` for the same with a :class:`DecodeError`.

    Example:
        >>> primitive_converter(bool)(b"1"), primitive_converter(float)(b"2.5")
        (True, 2.5)
    """
    try:
        return _CONVERTERS[kind]
    except KeyError:
        raise TypeError(f"{kind!r} is not a primitive type") from None


def decode_primitive(kind: type, raw: bytes) -> object:
    """Decode one primitive field value of type ``kind``.

    Example:
        >>> decode_primitive(bool, b"0"), decode_primitive(int, b"-3")
        (False, -3)
    """
    convert = primitive_converter(kind)
    try:
        return convert(raw)
    except UnicodeDecodeError as exc:  # its message quotes no data
        raise DecodeError(f"cannot decode {excerpt(raw)} as {kind.__name__}: {exc}") from None
    except ValueError as exc:
        # int() and float() quote the whole input in their messages: neither shown nor
        # chained. Ours (bool) quotes an excerpt.
        reason = f": {exc}" if kind is bool else ""
        raise DecodeError(f"cannot decode {excerpt(raw)} as {kind.__name__}{reason}") from None
