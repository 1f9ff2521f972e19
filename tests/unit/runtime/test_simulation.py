"""Deterministic simulation: random schedules of joins, leaves, crashes and pauses.

Each seed drives a cluster of virtual workers on one memory broker and a simulated clock
through a random schedule while events keep arriving. Throughout, a monitor and the
processor itself check that no partition ever has two owners that would hand its events
to user code; at the end every partition must be owned by exactly one live worker, every
event must have been processed, and each key's events must have been processed in order
the first time they were. Schedules without crashes or pauses must process every event
exactly once.

The default run tries a few dozen seeds; ``make test-slow`` runs hundreds.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from runnel import App, Events, Record, context
from runnel.adapters.memory.clock import SimulatedClock

from .cluster import Cluster
from .conftest import until

PARTITIONS = 12
KEYS = 30
SETTINGS = {
    "default_partition_count": PARTITIONS,
    "default_lock_expiry": 2.0,
    "default_heartbeat_interval": 0.5,
    "default_assignment_sleep": 0.5,
    "default_read_timeout": 200,
    "default_grace_period": 2.0,
    "default_prefetch_count": 4,
}
QUICK_SEEDS = range(16)
SOAK_SEEDS = range(1000, 1400)


class Tick(Record):
    key: str
    seq: int


@dataclass
class Log:
    """What happened during one schedule."""

    handled: list[tuple[str, str, int]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    faults: int = 0


async def run_schedule(
    seed: int, make_app: Callable[..., App], clock: SimulatedClock, steps: int = 30
) -> Log:
    rng = random.Random(seed)
    app = make_app(**SETTINGS)
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    cluster = Cluster(app, clock)
    log = Log()

    busy: dict[int, set[str]] = defaultdict(set)  # partition -> workers inside user code

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            tick = event.record()
            me, number = context.worker_id.get(), event.partition.number
            owners = cluster.owners().get(number, [])
            if owners != [me]:
                log.violations.append(f"{me} handled p{number} while owners were {owners}")
            if busy[number] - {me}:
                log.violations.append(f"{me} handled p{number} while {busy[number]} did too")
            busy[number].add(me)
            log.handled.append((me, tick.key, tick.seq))
            try:  # now and then an event takes most of a lease
                await clock.sleep(rng.choice((0.001, 0.01, 0.05, 0.05, 0.05, 1.2)))
            finally:
                busy[number].discard(me)

    sent = Counter[str]()

    async def send(count: int) -> None:
        batch = []
        for _ in range(count):
            key = f"k{rng.randrange(KEYS)}"
            batch.append(Tick(key=key, seq=sent[key]))
            sent[key] += 1
        await ticks.send(*batch)

    async def monitor() -> None:
        while True:
            await clock.sleep(0.05)
            for number, names in cluster.owners().items():
                if len(names) > 1:
                    log.violations.append(f"t={clock.now():.2f} p{number} owned by {names}")

    async def load() -> None:  # a steady trickle besides the bursts of the schedule
        while True:
            await clock.sleep(0.1)
            await send(2)

    background = [asyncio.create_task(monitor()), asyncio.create_task(load())]
    counter = 0
    paused: set[str] = set()
    try:
        for _ in range(rng.randint(1, 3)):
            counter += 1
            await cluster.start(f"w{counter}")
        for _ in range(steps):
            live = sorted(n for n in cluster.nodes if n not in paused)
            choices = ["send", "send", "wait", "join"]
            if len(live) > 1:
                choices += ["leave", "crash", "pause"]
            if paused:
                choices += ["resume"]
            action = rng.choice(choices)
            if action == "join" and len(cluster.nodes) < 6:
                counter += 1
                await cluster.start(f"w{counter}")
                log.actions.append(f"join w{counter}")
            elif action == "leave":
                name = rng.choice(live)
                assert await cluster.stop(name) == 0
                log.actions.append(f"leave {name}")
            elif action == "crash":
                name = rng.choice(live)
                await cluster.crash(name)
                log.faults += 1
                log.actions.append(f"crash {name}")
            elif action == "pause":
                name = rng.choice(live)
                cluster.nodes[name].gate.pause()
                paused.add(name)
                log.faults += 1
                log.actions.append(f"pause {name}")
            elif action == "resume":
                name = rng.choice(sorted(paused))
                cluster.nodes[name].gate.resume()
                paused.discard(name)
                log.actions.append(f"resume {name}")
            elif action == "send":
                await send(rng.randint(5, 40))
                log.actions.append("send")
            await clock.sleep(rng.uniform(0.05, 4.0))
        background[1].cancel()
        for name in sorted(paused):
            cluster.nodes[name].gate.resume()
        if not cluster.nodes:
            counter += 1
            await cluster.start(f"w{counter}")
        total = sum(sent.values())

        def settled() -> bool:
            owned = cluster.owners()
            held = [len(n.executor.feeds) for n in cluster.nodes.values()]
            balanced = max(held) - min(held) <= 1
            every = len(owned) == PARTITIONS and all(len(v) == 1 for v in owned.values())
            done = len({(k, s) for _, k, s in log.handled}) == total
            return every and balanced and done

        await until(settled, clock, within=120, step=0.1)
        await cluster.close()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await cluster.abort()
    return log


def check(log: Log, seed: int) -> None:
    where = f"seed {seed}: {', '.join(log.actions)}"
    assert log.violations == [], where
    first: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    for _, key, seq in log.handled:
        if (key, seq) not in seen:
            seen.add((key, seq))
            first[key].append(seq)
    for key, seqs in first.items():
        assert seqs == list(range(len(seqs))), f"{where}: key {key} out of order or gapped"
    if log.faults == 0:
        assert len(log.handled) == len(seen), f"{where}: duplicates without any fault"


@pytest.mark.parametrize("seed", QUICK_SEEDS)
async def test_random_schedules_keep_owners_exclusive_and_events_complete_and_ordered(
    seed: int, make_app: Callable[..., App], clock: SimulatedClock
) -> None:
    check(await run_schedule(seed, make_app, clock), seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_soak_random_schedules(
    seed: int, make_app: Callable[..., App], clock: SimulatedClock
) -> None:
    check(await run_schedule(seed, make_app, clock, steps=60), seed)
