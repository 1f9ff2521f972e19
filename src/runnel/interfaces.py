"""Extension points users subclass: Serializer, Compressor, Middleware.

Their one home: ``runnel`` re-exports all three, ``runnel.middleware`` re-exports
``Middleware``, and the built-in serializers and compressors subclass them.

Example:
    >>> import zlib
    >>> class Zlib(Compressor):
    ...     name = "zlib"
    ...     def compress(self, data: bytes) -> bytes: return zlib.compress(data)
    ...     def decompress(self, data: bytes) -> bytes: return zlib.decompress(data)
    >>> Zlib().decompress(Zlib().compress(b"abc"))
    b'abc'
"""

# Imported under private names: this module's public attributes are exactly __all__.
from abc import ABC as _ABC
from abc import abstractmethod as _abstractmethod
from collections.abc import AsyncIterator as _AsyncIterator
from typing import Any as _Any
from typing import ClassVar as _ClassVar

__all__ = ["Compressor", "Middleware", "Serializer"]


class Serializer(_ABC):
    """Turns a JSON-compatible value (what ``Record.model_dump(mode="json")`` gives) into
    bytes and back. ``name`` is written into every entry, so a reader configured with a
    different serializer fails with a clear error instead of producing garbage.

    Example:
        >>> import json
        >>> class SortedJSON(Serializer):
        ...     name = "json"
        ...     def dumps(self, value: object) -> bytes:
        ...         return json.dumps(value, sort_keys=True).encode()
        ...     def loads(self, data: bytes) -> object:
        ...         return json.loads(data)
        >>> SortedJSON().dumps({"b": 1, "a": 2})
        b'{"a": 2, "b": 1}'
    """

    name: _ClassVar[str] = "custom"

    @_abstractmethod
    def dumps(self, value: _Any) -> bytes:
        """Encode a JSON-compatible value."""

    @_abstractmethod
    def loads(self, data: bytes) -> _Any:
        """Decode what :meth:`dumps` produced."""


class Compressor(_ABC):
    """Compresses serialized records; ``name`` is recorded in each entry's header.

    Example:
        >>> from runnel.adapters.compressors import GzipCompressor
        >>> GzipCompressor().decompress(GzipCompressor().compress(b"abc"))
        b'abc'
    """

    name: _ClassVar[str] = "custom"

    @_abstractmethod
    def compress(self, data: bytes) -> bytes:
        """Compress ``data``."""

    @_abstractmethod
    def decompress(self, data: bytes) -> bytes:
        """Undo :meth:`compress`."""

    def decompress_limited(self, data: bytes, limit: int) -> bytes | None:
        """Undo :meth:`compress`, or return None if the result would exceed ``limit`` bytes.

        Workers decode through this method, with the stream's ``max_decompressed_size``,
        so that a small hostile payload cannot inflate into gigabytes. The built-in
        compressors stop inflating at the limit and never allocate more. This default
        inflates everything first and then checks the size: override it in a custom
        compressor whose format can be inflated in bounded steps.

        Example:
            >>> from runnel.adapters.compressors import GzipCompressor
            >>> GzipCompressor().decompress_limited(GzipCompressor().compress(b"x" * 9), 8)
        """
        out = self.decompress(data)
        return out if len(out) <= limit else None


class Middleware:
    """A reusable step between the stream and a processor.

    ``handler`` is an async generator over ``parent`` (the previous step), which yields
    :class:`~runnel.Event` objects, or lists of them when the processor uses
    ``events.take(...)``. Middleware listed first sees events first. Code after ``yield``
    in a ``finally`` clause runs once the processor finished with the item (before it is
    acknowledged); if the processor fails, ``GeneratorExit`` is raised at the ``yield``.
    Keyword arguments: ``processor`` (name), ``partition`` (:class:`~runnel.Partition`),
    ``events`` (the :class:`~runnel.Events`).

    Example:
        >>> class Printer(Middleware):
        ...     async def handler(self, parent, **kwargs):
        ...         async for item in parent:
        ...             print("handing out", item)
        ...             yield item
    """

    def handler(self, parent: _AsyncIterator[_Any], **kwargs: _Any) -> _AsyncIterator[_Any]:
        """Return an async generator over ``parent``; override in subclasses."""
        return parent

    def bind(self, app: _Any, processor: str) -> None:
        """Called once when registered on a processor (no I/O); override if needed."""
