"""examples/demo.py on a real Redis: a clean report, and no key of its app left behind."""

from __future__ import annotations

import re

from redis.asyncio import Redis

from tests.unit.test_demo import run_demo


async def test_the_demo_on_redis_reports_cleanly_and_deletes_its_keys(
    redis_url: str, redis_client: Redis
) -> None:
    done = run_demo(1000, redis_url)

    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout.splitlines()
    found = re.search(r"\(app (demo-[0-9a-f]+)\)$", report[0])
    assert found is not None, report[0]
    name = found.group(1)
    assert "per-customer order: verified, every customer's orders arrived in sequence" in report
    assert "dead letters: 2 (expected 2)" in report
    deleted = re.fullmatch(rf"deleted the (\d+) Redis keys of app {name}", report[-1])
    assert deleted is not None, report[-1]
    assert int(deleted.group(1)) > 2 * 8  # at least both streams' partitions
    assert [key async for key in redis_client.scan_iter(match=f"*{name}*")] == []
