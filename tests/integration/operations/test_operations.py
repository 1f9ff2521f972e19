"""Operating real workers with the ``runnel`` commands: status, reset, skip, dead letters.

Workers are real ``runnel worker`` processes on a throwaway Redis; every event is
counted by what the processors record (lost, duplicated, out of order). Conditions are
polled with the admin API in this process; what an operator sees is checked through the
command line.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from redis.asyncio import Redis

from runnel import App
from runnel.admin import Admin
from tests.integration.engine.apps.common import Tick, poison_key
from tests.integration.engine.harness import results, seqs_per_key, wait_for

from .conftest import APP, Cli, Spawn, status_of

PARTITIONS = 4


def ticks(count: int, first: int = 1) -> list[Tick]:
    """``count`` ticks, ``seq`` from ``first``, key ``k<seq % 4>`` (partition seq % 4)."""
    return [Tick(key=f"k{s % PARTITIONS}", seq=s) for s in range(first, first + count)]


async def backlog(app: App, processor: str) -> int:
    """Entries of ``processor`` not yet delivered or not yet acknowledged."""
    status = await Admin(app).status(processor)
    parts = status.streams[0].processors[0].partitions
    return sum((p.lag or 0) + p.pending for p in parts)


async def owners(app: App, processor: str) -> dict[int, int | None]:
    """Partition -> pid of the worker holding its lease."""
    status = await Admin(app).status(processor)
    return {
        p.number: p.owner.pid if p.owner is not None else None
        for p in status.streams[0].processors[0].partitions
    }


async def test_status_follows_workers_joining_and_dying(
    shop: App, spawn: Spawn, cli: Cli, client: Redis, app_name: str
) -> None:
    await shop.streams["orders"].send(*ticks(40))
    w1 = spawn(["charge"])
    await wait_for(
        lambda: _owned_by(shop, {w1.pid}), "one worker owning every partition", workers=[w1]
    )
    w2, w3 = spawn(["charge"]), spawn(["charge"])
    everyone = {w1.pid, w2.pid, w3.pid}
    await wait_for(
        lambda: _owned_by(shop, everyone, exactly=True),
        "three workers sharing the partitions",
        within=30,
        workers=[w1, w2, w3],
    )
    seen = status_of(cli, "charge")
    assert sorted(m["pid"] for m in seen["members"]) == sorted(everyone)
    assert all(m["alive"] for m in seen["members"])
    assert seen["leader"]["worker"]
    table = cli("status", APP)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("member ") >= 3
    assert "leader: " in table.stdout

    w2.kill()  # SIGKILL: no goodbye, its heartbeat stops and its leases run out
    await wait_for(
        lambda: _member_dead_or_gone(shop, w2.pid), "the dead member shown", workers=[w1, w3]
    )
    await wait_for(
        lambda: _owned_by(shop, {w1.pid, w3.pid}, exactly=True),
        "the survivors taking its partitions",
        within=30,
        workers=[w1, w3],
    )
    await wait_for(lambda: _charged(client, app_name, 40), "every order charged")
    counted = Counter(r["seq"] for r in await results(client, app_name, "charged"))
    assert set(counted) == set(range(1, 41))


async def _owned_by(app: App, pids: set[int], exactly: bool = False) -> bool:
    held = set((await owners(app, "charge")).values())
    return held == pids if exactly else (None not in held and held <= pids)


async def _member_dead_or_gone(app: App, pid: int) -> bool:
    status = await Admin(app).status("charge")
    members = status.streams[0].processors[0].members
    return all(not m.alive for m in members if m.pid == pid)


async def _charged(client: Redis, app_name: str, count: int) -> bool:
    return len({r["seq"] for r in await results(client, app_name, "charged")}) >= count


async def test_poison_pill_halt_status_skip_and_resume_losing_nothing_else(
    shop: App, spawn: Spawn, cli: Cli, client: Redis, app_name: str
) -> None:
    await client.sadd(poison_key(app_name), "k1:13")
    sent = ticks(80)
    ids = await shop.streams["orders"].send(*sent)
    poison_id = ids[12].decode()
    workers = [spawn(["charge"]) for _ in range(3)]
    for worker in workers:  # the crash loop: whoever takes partition 1 halts
        assert await worker.exit_code(within=60) == 1

    seen = status_of(cli, "charge")
    halted = seen["partitions"][1]
    assert halted["halted"]["error_type"] == "ValueError"
    assert halted["oldest_pending_id"] == poison_id
    table = cli("status", APP, "--processor", "charge")
    assert f"HALTED at {poison_id}" in table.stdout

    wrong = cli("processor", "skip", f"{APP}:charge", "1", ids[16].decode())
    assert wrong.returncode == 1
    assert wrong.stderr.strip().count("\n") == 0
    assert f"the next is {poison_id}" in wrong.stderr
    done = cli("processor", "skip", f"{APP}:charge", "1", poison_id)
    assert done.returncode == 0, done.stderr
    assert f"skipped charge partition 1 entry {poison_id} (acknowledged)" in done.stdout
    assert status_of(cli, "charge")["partitions"][1]["halted"] is None

    again = [spawn(["charge"]) for _ in range(3)]
    await wait_for(lambda: _drained(shop), "the backlog processed", within=60, workers=again)
    charged = await results(client, app_name, "charged")
    expected = {t.seq for t in sent} - {13}
    assert {r["seq"] for r in charged} == expected  # nothing else lost
    for key, order in seqs_per_key(charged, first_only=True).items():
        assert order == sorted(order), f"{key} out of order: {order}"
    (skip,) = await Admin(shop).skips("charge")
    assert skip["entry_id"] == poison_id


async def _drained(app: App) -> bool:
    return await backlog(app, "charge") == 0


async def test_reset_validates_first_and_moves_a_live_partition_through_its_fence(
    shop: App, spawn: Spawn, cli: Cli, client: Redis, app_name: str
) -> None:
    orders = shop.streams["orders"]
    await orders.send(*ticks(40))
    workers = [spawn(["charge"]), spawn(["charge"])]
    await wait_for(lambda: _drained(shop), "the first orders processed", workers=workers)
    before = status_of(cli, "charge")

    bad = cli("processor", "reset", f"{APP}:charge", "--to", "garbage")
    assert bad.returncode == 1
    assert "is not a reset target" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0
    assert _positions(status_of(cli, "charge")) == _positions(before)  # untouched
    refused = cli("processor", "reset", f"{APP}:charge", "--to", "earliest", "--partition", "0")
    assert refused.returncode == 1
    assert "held by a live worker" in refused.stderr
    dry = cli(
        "processor", "reset", f"{APP}:charge", "--to", "earliest", "--partition", "0", "--dry-run"
    )
    assert dry.returncode == 0, dry.stderr
    assert "partition 0: would move from" in dry.stdout
    assert "10 to re-read, 0 skipped" in dry.stdout
    assert _positions(status_of(cli, "charge")) == _positions(before)

    async def keep_sending() -> None:
        for first in range(41, 201, 8):
            await orders.send(*ticks(8, first))
            await asyncio.sleep(0.02)

    sender = asyncio.create_task(keep_sending())
    forced = await asyncio.to_thread(
        cli,
        "processor",
        "reset",
        f"{APP}:charge",
        "--to",
        "earliest",
        "--partition",
        "0",
        "--force",
    )
    await sender
    assert forced.returncode == 0, forced.stderr
    assert all(w.running() for w in workers)
    await wait_for(lambda: _drained(shop), "everything processed", within=60, workers=workers)
    after = status_of(cli, "charge")
    old_epoch = before["partitions"][0]["owner"]["epoch"]
    assert after["partitions"][0]["owner"]["epoch"] > old_epoch  # taken again, fenced
    charged = Counter(r["seq"] for r in await results(client, app_name, "charged"))
    assert set(charged) == set(range(1, 201))  # nothing lost
    first_batch_p0 = [s for s in range(1, 41) if s % PARTITIONS == 0]
    assert all(charged[s] >= 2 for s in first_batch_p0)  # re-read after the reset
    assert all(charged[s] == 1 for s in range(1, 41) if s % PARTITIONS != 0)


async def test_dead_letters_list_show_replay_once_and_purge(
    shop: App, spawn: Spawn, cli: Cli, client: Redis, app_name: str
) -> None:
    await client.sadd(poison_key(app_name), "k2:6")
    await shop.streams["actions"].send(*ticks(20))
    worker = spawn(["act", "collect"])
    await wait_for(lambda: _count(client, app_name, "letter", 1), "the letter", workers=[worker])
    listed = cli("deadletter", "list", f"{APP}:act", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (letter["record"], letter["error_type"]) == ({"key": "k2", "seq": 6}, "KeyError")
    shown = cli("deadletter", "show", f"{APP}:act", letter["id"])
    assert json.loads(shown.stdout)["source_partition"] == 2

    await client.srem(poison_key(app_name), "k2:6")
    replayed = cli("deadletter", "replay", f"{APP}:act", "--id", letter["id"])
    assert replayed.returncode == 0, replayed.stderr
    assert f"replayed {letter['id']} to actions.2" in replayed.stdout
    await wait_for(lambda: _acted(client, app_name, 6), "the replayed action", workers=[worker])
    twice = cli("deadletter", "replay", f"{APP}:act", "--id", letter["id"])
    assert "was replayed before: not sent again" in twice.stdout
    acted = Counter(r["seq"] for r in await results(client, app_name, "acted"))
    assert acted == Counter(range(1, 21))  # 6 once, after its replay; nothing twice

    unconfirmed = cli("deadletter", "purge", f"{APP}:act")
    assert unconfirmed.returncode == 1
    assert "add --yes" in unconfirmed.stderr
    purged = cli("deadletter", "purge", f"{APP}:act", "--yes")
    assert "purged 1 dead letter(s)" in purged.stdout
    assert cli("deadletter", "list", f"{APP}:act", "--json").stdout == ""


async def _count(client: Redis, app_name: str, kind: str, at_least: int) -> bool:
    return len(await results(client, app_name, kind)) >= at_least


async def _acted(client: Redis, app_name: str, seq: int) -> bool:
    return any(r["seq"] == seq for r in await results(client, app_name, "acted"))


async def test_a_corrupt_entry_reaches_the_dead_letter_processor_which_keeps_going(
    shop: App, spawn: Spawn, cli: Cli, client: Redis, app_name: str
) -> None:
    actions = shop.streams["actions"]
    await actions.send(Tick(key="k0", seq=1))
    worker = spawn(["act", "collect"])
    await wait_for(lambda: _acted(client, app_name, 1), "the first action", workers=[worker])
    corrupt = await client.xadd(actions.partition_key_name(0), {b"data": b"\xff{not json"})
    await actions.send(Tick(key="k0", seq=2))
    await wait_for(
        lambda: _count(client, app_name, "undecodable", 1), "the raw letter", workers=[worker]
    )
    await wait_for(lambda: _acted(client, app_name, 2), "the next action", workers=[worker])
    (raw,) = await results(client, app_name, "undecodable")
    assert raw["source_id"] == (corrupt.decode() if isinstance(corrupt, bytes) else corrupt)
    assert raw["error"].startswith("DecodeError")
    assert worker.running()
    listed = cli("deadletter", "list", f"{APP}:act", "--json")
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["record"] is None
    assert letter["decode_error"].startswith("DecodeError")
    tail = cli("tail", f"{APP}:actions", "--partition", "0", "--from", "earliest", "--json")
    rows = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [r["record"] is None for r in rows] == [False, True, False]


async def test_tail_prints_new_entries_without_joining_a_group(
    shop: App, cli: Cli, client: Redis
) -> None:
    actions = shop.streams["actions"]
    await actions.send(*ticks(6))
    done = cli("tail", f"{APP}:actions", "--from", "earliest")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 6
    groups = await client.xinfo_groups(actions.partition_key_name(1))
    assert {g["name"] for g in groups} <= {b"act", b"act-unused"}


def _positions(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Each partition's position, backlog and lease epoch (what a reset would change)."""
    return [
        (
            p["number"],
            p["last_delivered_id"],
            p["lag"],
            p["pending"],
            (p["owner"] or {}).get("epoch"),
        )
        for p in status["partitions"]
    ]
