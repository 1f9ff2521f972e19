"""Large events through a real ``runnel worker``: the byte budget bounds what it buffers."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from .apps import large
from .conftest import Spawn
from .harness import count, results, seqs_per_key, wait_for

MB = 1024 * 1024
KEYS = 8
PER_KEY = 5
SIZE = 3 * MB


@pytest.mark.parametrize("budget", [8 * MB, None], ids=["budget-8MB", "no-budget"])
async def test_large_events_are_all_processed_in_order_within_the_byte_budget(
    spawn: Spawn, client: Redis, app_name: str, redis_url: str, budget: int | None
) -> None:
    app, blobs = large.build(app_name, redis_url)
    for seq in range(PER_KEY):
        await blobs.send(
            *[
                large.Blob(key=f"k{k}", seq=seq, payload=f"{k}{seq}".ljust(SIZE, "x"))
                for k in range(KEYS)
            ]
        )
    await app.close()
    limit = str(budget) if budget is not None else str(1 << 50)  # 1 PiB: no byte limit
    worker = spawn("large", env={"ENGINE_TEST_DELAY": "0.05", "RUNNEL_PREFETCH_BYTES": limit})
    peak = [0]

    async def done() -> bool:
        peak[0] = max(peak[0], worker.peak_rss() or 0)
        return await count(client, app_name, "seen") >= KEYS * PER_KEY

    await wait_for(done, f"{KEYS * PER_KEY} large events processed", workers=[worker], within=120)
    peak[0] = max(peak[0], worker.peak_rss() or 0)
    seen = await results(client, app_name, "seen")
    assert seqs_per_key(seen) == {f"k{k}": list(range(PER_KEY)) for k in range(KEYS)}
    assert all(s["size"] == SIZE for s in seen)
    label = "no budget" if budget is None else f"budget {budget // MB} MB"
    print(f"peak RSS with {label}: {peak[0] / MB:.0f} MB ({KEYS * PER_KEY} x {SIZE // MB} MB)")
    assert peak[0] < 1024 * MB  # a generous sanity bound, not a measurement
