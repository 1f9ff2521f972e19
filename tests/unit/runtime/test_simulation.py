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

from runnel import App, Events, context
from runnel.testing import HarnessFactory, VirtualWorker

from .conftest import Tick, executor, holders, stop_all

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


@dataclass
class Log:
    """What happened during one schedule."""

    handled: list[tuple[str, str, int]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    faults: int = 0


async def run_schedule(
    seed: int, make_app: Callable[..., App], runnel_harness: HarnessFactory, steps: int = 30
) -> Log:
    rng = random.Random(seed)
    app = make_app(**SETTINGS)
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    log = Log()
    busy: dict[int, set[str]] = defaultdict(set)  # partition -> workers inside user code
    h = runnel_harness(app)

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for event in events:
            tick = event.record()
            me, number = context.worker_id.get(), event.partition.number
            owners = holders(h).get(number, [])
            if owners != [me]:
                log.violations.append(f"{me} handled p{number} while owners were {owners}")
            if busy[number] - {me}:
                log.violations.append(f"{me} handled p{number} while {busy[number]} did too")
            busy[number].add(me)
            log.handled.append((me, tick.key, tick.seq))
            try:  # now and then an event takes most of a lease
                await asyncio.sleep(rng.choice((0.001, 0.01, 0.05, 0.05, 0.05, 1.2)))
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
            await asyncio.sleep(0.05)
            for number, names in holders(h).items():
                if len(names) > 1:
                    log.violations.append(f"t={h.now:.2f} p{number} owned by {names}")

    async def load() -> None:  # a steady trickle besides the bursts of the schedule
        while True:
            await asyncio.sleep(0.1)
            await send(2)

    async with h:
        background = [asyncio.create_task(monitor()), asyncio.create_task(load())]
        counter = 0
        try:
            for _ in range(rng.randint(1, 3)):
                counter += 1
                await h.start(f"w{counter}", balanced=False)

            def alive() -> list[VirtualWorker]:
                return [vw for vw in h.workers.values() if vw.alive]

            for _ in range(steps):
                live = sorted(vw.name for vw in alive() if vw.state == "running")
                paused = sorted(vw.name for vw in alive() if vw.state == "paused")
                choices = ["send", "send", "wait", "join"]
                if len(live) > 1:
                    choices += ["leave", "crash", "pause"]
                if paused:
                    choices += ["resume"]
                action = rng.choice(choices)
                if action == "join" and len(alive()) < 6:
                    counter += 1
                    await h.start(f"w{counter}", balanced=False)
                    log.actions.append(f"join w{counter}")
                elif action == "leave":
                    name = rng.choice(live)
                    assert await h.worker(name).stop() == 0
                    log.actions.append(f"leave {name}")
                elif action == "crash":
                    name = rng.choice(live)
                    await h.worker(name).kill()
                    log.faults += 1
                    log.actions.append(f"crash {name}")
                elif action == "pause":
                    name = rng.choice(live)
                    h.worker(name).pause()
                    log.faults += 1
                    log.actions.append(f"pause {name}")
                elif action == "resume":
                    name = rng.choice(paused)
                    h.worker(name).resume()
                    log.actions.append(f"resume {name}")
                elif action == "send":
                    await send(rng.randint(5, 40))
                    log.actions.append("send")
                await h.advance(rng.uniform(0.05, 4.0))
            background[1].cancel()
            for vw in alive():
                if vw.state == "paused":
                    vw.resume()
            if not alive():
                counter += 1
                await h.start(f"w{counter}", balanced=False)
            total = sum(sent.values())

            def settled() -> bool:
                owned = holders(h)
                held = [len(executor(vw).feeds) for vw in alive()]
                balanced = max(held) - min(held) <= 1
                every = len(owned) == PARTITIONS and all(len(v) == 1 for v in owned.values())
                done = len({(k, s) for _, k, s in log.handled}) == total
                return every and balanced and done

            await h.run_until(settled, timeout=120)
            await stop_all(h)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
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
    seed: int, make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    check(await run_schedule(seed, make_app, runnel_harness), seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SOAK_SEEDS)
async def test_soak_random_schedules(
    seed: int, make_app: Callable[..., App], runnel_harness: HarnessFactory
) -> None:
    check(await run_schedule(seed, make_app, runnel_harness, steps=60), seed)
