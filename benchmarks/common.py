"""What every scenario shares: the run's sizes, the Redis client, progress output."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from redis.asyncio import Redis

from runnel.ports import Append

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does per measured run."""

    consume_events: int
    send_totals: dict[int, int]
    latency_seconds: float
    latency_rate: int
    latency_warmup: int
    ready_timeout: float
    done_timeout: float
    large_events: int = 64
    """Events of a large-events run (1 to 4 units each, 2.5 on average)."""
    large_unit: int = 1024 * 1024
    """Bytes of a large event's payload unit."""


FULL = Sizes(
    consume_events=100_000,
    send_totals={1: 5_000, 100: 50_000, 1000: 100_000},
    latency_seconds=10.0,
    latency_rate=1000,
    latency_warmup=1000,
    ready_timeout=60.0,
    done_timeout=300.0,
)

SMOKE = Sizes(
    consume_events=2_000,
    send_totals={1: 200, 100: 2_000, 1000: 4_000},
    latency_seconds=1.0,
    latency_rate=1000,
    latency_warmup=100,
    ready_timeout=30.0,
    done_timeout=30.0,
    large_events=8,
    large_unit=16 * 1024,
)


@dataclass
class Context:
    """One benchmark run: the server, the sizes, how often to repeat."""

    url: str
    client: Redis
    repeat: int
    sizes: Sizes
    logdir: Path
    verbose: bool = True
    profile_dir: Path | None = None
    server_pid: int | None = None
    appends: dict[tuple[str, str, int], list[Append]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def say(self, message: str) -> None:
        """A progress line on stderr."""
        if self.verbose:
            elapsed = time.monotonic() - self.started
            print(f"[{elapsed:6.1f}s] {message}", file=sys.stderr, flush=True)

    async def fresh(self) -> None:
        """Empty the server before a measured run."""
        await self.client.flushall()


def alternate(repeat: int) -> list[bool]:
    """For each repeat, whether runnel runs before the baseline (alternating, so a drift
    of the machine's speed during the run does not favour either)."""
    return [r % 2 == 0 for r in range(repeat)]


async def in_order(
    runnel_first: bool,
    runnel: Callable[[], Awaitable[T]],
    raw: Callable[[], Awaitable[T]],
) -> tuple[T, T]:
    """Run both measurements in the given order; return (runnel's, raw's)."""
    if runnel_first:
        a = await runnel()
        b = await raw()
    else:
        b = await raw()
        a = await runnel()
    return a, b
