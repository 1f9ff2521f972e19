"""Compressors: gzip (standard library) and LZ4 frames (the ``fast`` extra).

Example:
    >>> GzipCompressor().decompress(GzipCompressor().compress(b"x" * 100))[:3]
    b'xxx'
"""

from __future__ import annotations

import gzip
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
