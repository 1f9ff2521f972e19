"""``runnel stream resize`` on a real Redis: refusals, the dry run, and what status shows."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from runnel import App
from tests.integration.engine.apps.common import Tick

from .conftest import APP, Cli, status_of

pytestmark = pytest.mark.integration


async def test_resize_refuses_first_then_grows_and_status_shows_the_wait(
    cli: Cli, shop: App, client: Redis, app_name: str
) -> None:
    orders = shop.streams["orders"]
    await orders.send(*[Tick(key=f"k{n}", seq=0) for n in range(4)])
    meta = f"__meta:{app_name}.orders"

    shrink = cli("stream", "resize", APP, "orders", "--partitions", "2", "--yes")
    assert shrink.returncode != 0
    assert "cannot shrink a stream from 4 to 2 partitions" in shrink.stderr
    unknown = cli("stream", "resize", APP, "nope", "--partitions", "8", "--yes")
    assert unknown.returncode != 0
    assert "unknown stream 'nope'" in unknown.stderr
    dry = cli("stream", "resize", APP, "orders", "--partitions", "8", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would grow stream orders from 4 to 8 partitions" in dry.stdout
    unconfirmed = cli("stream", "resize", APP, "orders", "--partitions", "8")
    assert unconfirmed.returncode != 0
    assert "add --yes to confirm" in unconfirmed.stderr
    assert await client.hget(meta, "partition_count") == b"4"  # nothing changed so far

    done = cli("stream", "resize", APP, "orders", "--partitions", "8", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["before"], report["after"], report["new_partitions"]) == (4, 8, [4, 5, 6, 7])
    assert sorted(report["switch_points"]) == ["0", "1", "2", "3"]
    assert await client.hget(meta, "partition_count") == b"8"
    assert await client.hget(meta, "resized") == b"4,8"
    for n in range(4, 8):
        groups = await client.xinfo_groups(f"__strm:{app_name}.orders.{n}")
        assert b"charge" in {g["name"] for g in groups}

    # No worker ran: every old partition still waits for processing up to its switch.
    charge = status_of(cli, "charge")
    assert charge["resize_waiting"] == [0, 1, 2, 3]
    assert len(charge["partitions"]) == 8
    table = cli("status", APP, "--processor", "charge")
    assert table.returncode == 0, table.stderr
    assert "stream orders: 8 partition(s), lossy-trimmed 0, grown 4 -> 8" in table.stdout
    assert "resize pending: new partitions held until partition(s) 0,1,2,3" in table.stdout
    again = cli("stream", "resize", APP, "orders", "--partitions", "8", "--yes")
    assert again.returncode == 0, again.stderr
    assert "already has 8 partitions" in again.stdout
