"""Regression tests for engine bugs found by the end-to-end tests (memory backend)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner

from runnel import App, Events, Record
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.entrypoints.cli import cli

from .conftest import until


class Tick(Record):
    key: str
    seq: int


async def test_a_lease_lost_on_a_fenced_ack_is_taken_again_and_the_partition_goes_on(
    make_app: Callable[..., App], workers: Any, clock: SimulatedClock
) -> None:
    # Found with real workers: a worker resumed after SIGSTOP had its reads and acks fenced;
    # the feeds were marked lost but kept, so no partition was ever processed again.
    app = make_app(default_partition_count=1)
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    seen: list[int] = []
    holding = asyncio.Event()
    go_on = asyncio.Event()

    @app.processor(ticks)
    async def proc(events: Events) -> None:
        async for tick in events.records():
            if not go_on.is_set():
                holding.set()
                await go_on.wait()
            seen.append(tick.seq)

    await ticks.send(*[Tick(key="k", seq=i) for i in range(3)])
    running = await workers(app)
    await until(holding.is_set, clock)
    # The lease vanishes while event 0 is in flight, and no time passes before its ack: the
    # ack is refused (fenced) before any renewal could notice the loss.
    locks = app.backend.locks
    assert isinstance(locks, MemoryPartitionLocks)
    assert locks.force_release(ticks.keys.lock("proc", 0))
    go_on.set()
    # Whatever was processed under the lost lease had its ack refused and comes again, in
    # order, once the partition is taken again.
    await until(lambda: len(seen) > 3 and seen[-3:] == [0, 1, 2], clock, within=30)
    assert await running.stop() == 0
    assert await app.backend.admin.pending(ticks.keys.stream(0), "proc") == []


WORKER_MODULE = """
from runnel import App, Record

app = App(name="{name}", redis_url="memory://{name}")


class Tick(Record):
    key: str
    seq: int


ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=4)


@app.processor(ticks)
async def proc(events):
    async for _ in events:
        pass
"""


@pytest.fixture
def keep_root_logging() -> Iterator[None]:
    """``runnel worker`` configures the root logger; give the next test its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_worker_that_cannot_start_says_why_in_one_line_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keep_root_logging: None
) -> None:
    # Found with real workers: a wrong Redis password (or any start-up RunnelError) ended
    # the worker with a 100-line traceback, not JSON, in a RUNNEL_LOG_FORMAT=json log.
    name = f"t{uuid4().hex[:8]}"
    module = f"regr_{name}"
    (tmp_path / f"{module}.py").write_text(WORKER_MODULE.format(name=name))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    other = App(name=name, redis_url=f"memory://{name}")  # the same stream, other layout
    asyncio.run(
        other.stream("ticks", record=Tick, partition_by="key", partition_count=8).send(
            Tick(key="k", seq=0)
        )
    )
    try:
        result = CliRunner().invoke(cli, ["worker", f"{module}:app", "--log-format", "json"])
    finally:
        sys.modules.pop(module, None)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Error: MetadataMismatch: " in result.output
    assert "partition_count is '8' in the backend but '4' in this App" in result.output
    logged = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [r["level"] for r in logged if "worker failed" in r["message"]] == ["critical"]
