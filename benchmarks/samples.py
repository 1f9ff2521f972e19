"""Latency samples written by a consumer process at exit and read by the benchmark.

One ``<record id> <age in ns>`` line per processed record. Without runnel imports, so the
raw baseline uses it too.
"""

from __future__ import annotations

from array import array


def write_latencies(path: str, ids: array[int], ages: array[int]) -> None:
    """One ``id age_ns`` line per processed record."""
    with open(path, "w", encoding="ascii") as out:
        out.writelines(f"{i} {a}\n" for i, a in zip(ids, ages, strict=True))


def read_latencies(path: str) -> dict[int, int]:
    """What :func:`write_latencies` wrote: record id -> age in ns (first delivery wins)."""
    out: dict[int, int] = {}
    with open(path, encoding="ascii") as source:
        for line in source:
            i, _, age = line.partition(" ")
            out.setdefault(int(i), int(age))
    return out
