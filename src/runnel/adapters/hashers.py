"""The default partition hasher: XXH64 of a key's canonical bytes.

Uses the ``xxhash`` C library when installed (the ``fast`` extra) and the pure-Python
implementation of :mod:`runnel.domain.hashing` otherwise; both give the same value.

Example:
    >>> default_hasher()("customer-1") == default_hasher()("customer-1")
    True
"""

from __future__ import annotations

from collections.abc import Callable

from runnel.domain.hashing import canonical_key, xxh64

try:  # pragma: no cover - depends on the `fast` extra
    from xxhash import xxh64_intdigest as _fast_xxh64
except ImportError:  # pragma: no cover
    _fast_xxh64 = None  # type: ignore[assignment]  # optional dependency

Hasher = Callable[[object], int]


def _hash_fast(key: object) -> int:
    # The two commonest keys without canonical_key()'s chain of checks (same bytes).
    kind = type(key)
    if kind is str:
        return int(_fast_xxh64(key.encode("utf-8")))  # type: ignore[attr-defined]  # a str
    if kind is int:
        return int(_fast_xxh64(b"%d" % key))  # type: ignore[str-format]  # an int
    return int(_fast_xxh64(canonical_key(key)))


def _hash_pure(key: object) -> int:
    return xxh64(canonical_key(key))


def default_hasher(prefer_fast: bool = True) -> Hasher:
    """The stable XXH64 key hasher (C implementation when available).

    Example:
        >>> default_hasher(prefer_fast=False)(42) == default_hasher()(42)
        True
    """
    if prefer_fast and _fast_xxh64 is not None:
        return _hash_fast
    return _hash_pure


def is_default_hasher(hasher: object) -> bool:
    """Whether ``hasher`` is one of the default XXH64 implementations (same results).

    Example:
        >>> is_default_hasher(default_hasher()), is_default_hasher(hash)
        (True, False)
    """
    return hasher is _hash_fast or hasher is _hash_pure
