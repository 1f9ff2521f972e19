"""Hostile entries under every exception policy: bounded memory and log, nothing else lost.

Each test runs a real ``runnel worker`` (``apps/hostile.py``) and writes entries into its
streams with ``XADD``, as anyone allowed to write to the stream could: compression bombs,
a 20 MB field, 20,000 fields, and wrong shapes (no ``data``, not UTF-8, wrong types). The
worker's peak resident memory (``VmHWM``) and the log it writes per entry must stay small,
and the good events written after the hostile ones must be processed (IGNORE, with or
without the dead-letter middleware) or kept unacknowledged (HALT, QUARANTINE).

Before the decoding limits, a 260 KB gzip entry took a worker to 573 MiB, a 20 MB field
that is not a float wrote 84 MB of log per delivery, and 20,000 fields could not be
dead-lettered at all (docs/security.md lists every figure, before and after).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from .hostile import BY_NAME, HOSTILE, POLICIES, MiB, as_row, hostiles, measure, run_all

ENTRIES = hostiles(bomb=64 * MiB)
"""Every kind; bombs inflate to 64 MiB, twice the default max_decompressed_size."""

MEMORY_MIB = 160
"""Peak resident memory a worker may gain over its idle size while refusing hostile
entries (a 20 MB field is read from Redis, and copied once more to be dead-lettered)."""

LOG_BYTES = 8 * 1024
"""Log bytes one hostile entry may cost (a traceback and a few lines)."""


@pytest.mark.parametrize("policy", ["ignore", "deadletter"])
async def test_hostile_entries_are_refused_cheaply_and_every_good_event_is_processed(
    redis_url: str, tmp_path: Path, policy: str
) -> None:
    batch = await run_all(redis_url, ENTRIES, policy, tmp_path)
    expected = Counter((h.stream, seq) for seq, h in enumerate(ENTRIES, start=1))
    assert Counter(tuple(x) for x in batch.good_processed) == expected  # each once
    assert batch.peak_rss_mib - batch.baseline_rss_mib < MEMORY_MIB, batch
    assert batch.log_bytes < LOG_BYTES * len(ENTRIES), batch
    if policy == "deadletter":
        assert sorted(batch.dead_lettered_intact) == sorted(h.name for h in ENTRIES)


@pytest.mark.parametrize("policy", ["halt", "quarantine"])
@pytest.mark.parametrize("name", ["zip_bomb", "huge_primitive", "many_fields", "non_utf8"])
async def test_a_hostile_entry_stops_where_the_policy_says_keeping_what_follows(
    redis_url: str, tmp_path: Path, policy: str, name: str
) -> None:
    hostile = {h.name: h for h in ENTRIES}[name]
    m = await measure(redis_url, hostile, policy, tmp_path, window=60.0)
    assert m.outcome == {"halt": "halted", "quarantine": "quarantined"}[policy], m
    assert m.unacknowledged == 2, m  # the hostile entry and the good one after it
    assert m.peak_rss_mib - m.baseline_rss_mib < MEMORY_MIB, m
    assert m.log_bytes < LOG_BYTES, m


@pytest.mark.slow
@pytest.mark.timeout(1800)
async def test_every_hostile_entry_under_every_policy_full_size(
    redis_url: str, tmp_path: Path
) -> None:
    # The figures of docs/security.md (256 MiB bombs, 20 MiB fields), written to a file.
    rows = []
    for hostile in HOSTILE:
        for policy in POLICIES:
            m = await measure(redis_url, BY_NAME[hostile.name], policy, tmp_path, window=60.0)
            rows.append(as_row(m))
            expected = {"halt": "halted", "quarantine": "quarantined"}.get(policy, "processed")
            assert m.outcome == expected, m
            assert m.peak_rss_mib - m.baseline_rss_mib < MEMORY_MIB, m
            assert m.log_bytes < LOG_BYTES, m
            if policy == "deadletter":
                assert m.dead_lettered_intact, m
    (tmp_path / "hostile.json").write_text(json.dumps(rows, indent=1))
