"""Extension points users subclass: Middleware, Serializer, Compressor.

Example:
    >>> from runnel.interfaces import Compressor
    >>> import zlib
    >>> class Zlib(Compressor):
    ...     name = "zlib"
    ...     def compress(self, data): return zlib.compress(data)
    ...     def decompress(self, data): return zlib.decompress(data)
"""

from runnel.middleware.base import Middleware
from runnel.ports import Compressor, Serializer

__all__ = ["Compressor", "Middleware", "Serializer"]
