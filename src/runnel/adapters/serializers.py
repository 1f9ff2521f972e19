"""Serializers: JSON through the standard library, and through orjson when installed.

Both write the same wire format (UTF-8 JSON), so they share the name ``json`` and read each
other's entries.

Example:
    >>> JSONSerializer().dumps({"a": [1, 2]})
    b'{"a":[1,2]}'
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from runnel.interfaces import Serializer

try:  # pragma: no cover - depends on the `fast` extra
    import orjson as _orjson
except ImportError:  # pragma: no cover
    _orjson = None  # type: ignore[assignment]  # optional dependency


class JSONSerializer(Serializer):
    """JSON with the standard library (compact separators, UTF-8, no NaN).

    Example:
        >>> JSONSerializer().dumps({"n": [1, 2]})
        b'{"n":[1,2]}'
        >>> JSONSerializer().loads(JSONSerializer().dumps({"x": "é"}))
        {'x': 'é'}
    """

    name: ClassVar[str] = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class OrjsonSerializer(Serializer):
    """JSON with orjson (the ``fast`` extra); same wire format as :class:`JSONSerializer`.

    Without orjson installed, making one raises ImportError.

    Example:
        >>> OrjsonSerializer.name == JSONSerializer.name  # entries read back either way
        True
    """

    name: ClassVar[str] = "json"

    def __init__(self) -> None:
        if _orjson is None:
            raise ImportError("OrjsonSerializer needs orjson: pip install 'runnel[fast]'")

    def dumps(self, value: Any) -> bytes:
        return _orjson.dumps(value)

    def loads(self, data: bytes) -> Any:
        return _orjson.loads(data)


def has_orjson() -> bool:
    """Whether orjson is importable."""
    return _orjson is not None


def serializer_named(name: str) -> Serializer:
    """The built-in serializer for a settings name (``auto``, ``json``, ``orjson``).

    Example:
        >>> serializer_named("json").name
        'json'
    """
    if name == "json":
        return JSONSerializer()
    if name == "orjson":
        return OrjsonSerializer()
    if name == "auto":
        return OrjsonSerializer() if has_orjson() else JSONSerializer()
    raise ValueError(f"unknown serializer {name!r}: expected 'auto', 'json' or 'orjson'")
