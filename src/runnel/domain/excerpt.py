"""Short, marked excerpts of values that error messages and log lines quote.

A stored entry can hold anything up to Redis' 512 MB bulk limit. An error message that
quotes a value in full (a 20 MB field that is not a float, say) turns one bad entry into
hundreds of megabytes of log, and the memory to format it, on every delivery. So every
message runnel builds quotes a value through :func:`excerpt`: its first bytes, then a
mark saying how long the whole value was.

Example:
    >>> excerpt(b"1" * 20_971_520 + b"x")
    "b'1111111111111111111111111111111111111111111111111111111111111111'...(20971521 bytes)"
    >>> excerpt("short")
    "'short'"
"""

from __future__ import annotations

from typing import Final

EXCERPT: Final = 64
"""Bytes (or characters) of a value that a message quotes."""


def excerpt(value: bytes | str, limit: int = EXCERPT) -> str:
    """``repr`` of the first ``limit`` bytes or characters of ``value``, marked if cut.

    Example:
        >>> excerpt("abcdef", limit=3)
        "'abc'...(6 chars)"
    """
    if len(value) <= limit:
        return repr(value)
    unit = "bytes" if isinstance(value, bytes) else "chars"
    return f"{value[:limit]!r}...({len(value)} {unit})"


def truncated(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a mark saying how long it was.

    Example:
        >>> truncated("x" * 10, 4)
        'xxxx...(10 chars)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} chars)"
