"""Compressors: gzip (standard library) and LZ4 frames (the ``fast`` extra).

Example:
    >>> GzipCompressor().decompress(GzipCompressor().compress(b"x" * 100))[:3]
    b'xxx'
"""

from __future__ import annotations

import gzip
import zlib
from typing import ClassVar

from runnel.interfaces import Compressor

try:  # pragma: no cover - depends on the `fast` extra
    import lz4.frame as _lz4
except ImportError:  # pragma: no cover
    _lz4 = None


class GzipCompressor(Compressor):
    """gzip at a configurable level (default 6).

    Example:
        >>> GzipCompressor(level=1).name
        'gzip'
    """

    name: ClassVar[str] = "gzip"

    def __init__(self, level: int = 6) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        return gzip.compress(data, compresslevel=self.level, mtime=0)

    def decompress(self, data: bytes) -> bytes:
        return gzip.decompress(data)

    def decompress_limited(self, data: bytes, limit: int) -> bytes | None:
        """Inflate ``data`` (one or more gzip members) at most ``limit + 1`` bytes at a time.

        Example:
            >>> GzipCompressor().decompress_limited(GzipCompressor().compress(b"abc"), 3)
            b'abc'
        """
        parts: list[bytes] = []
        room = limit
        while data:
            if data[:2] != b"\x1f\x8b":  # what gzip.decompress says too
                raise gzip.BadGzipFile(f"Not a gzipped file ({data[:2]!r})")
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
            part = inflater.decompress(data, room + 1)
            if len(part) > room:
                return None  # one byte more than the room left: over the limit
            if not inflater.eof:
                raise gzip.BadGzipFile("compressed data ended before the end of a gzip member")
            parts.append(part)
            room -= len(part)
            data = inflater.unused_data
        return b"".join(parts)


class LZ4Compressor(Compressor):
    """LZ4 frame format; needs ``pip install 'runnel[fast]'`` (making one without it raises
    ImportError).

    Example:
        >>> LZ4Compressor.name
        'lz4'
    """

    name: ClassVar[str] = "lz4"

    def __init__(self) -> None:
        if _lz4 is None:
            raise ImportError("LZ4Compressor needs lz4: pip install 'runnel[fast]'")

    def compress(self, data: bytes) -> bytes:
        return bytes(_lz4.compress(data))

    def decompress(self, data: bytes) -> bytes:
        return bytes(_lz4.decompress(data))

    def decompress_limited(self, data: bytes, limit: int) -> bytes | None:
        """Inflate the frame in ``data`` at most ``limit + 1`` bytes, after checking the
        size its header declares (when it declares one).

        A frame of three bytes, say, inflated with a limit of two gives None, without
        inflating more than three bytes (this needs the ``fast`` extra)::

            LZ4Compressor().decompress_limited(LZ4Compressor().compress(b"abc"), 2)  # None
        """
        declared = _lz4.get_frame_info(data).get("content_size") or 0
        if declared > limit:
            return None
        inflater = _lz4.LZ4FrameDecompressor()
        out = inflater.decompress(data, max_length=limit + 1)
        if len(out) > limit:
            return None
        if not inflater.eof:
            raise ValueError("compressed data ended before the end of the LZ4 frame")
        return bytes(out)


def compressor_named(name: str | None) -> Compressor | None:
    """The built-in compressor for a settings name (``gzip``, ``lz4`` or None).

    Example:
        >>> compressor_named(None) is None
        True
    """
    if name is None:
        return None
    if name == "gzip":
        return GzipCompressor()
    if name == "lz4":
        return LZ4Compressor()
    raise ValueError(f"unknown compressor {name!r}: expected 'gzip', 'lz4' or None")
