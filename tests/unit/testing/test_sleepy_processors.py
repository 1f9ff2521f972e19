"""A hundred tests whose processors sleep for simulated seconds, on one module-level App.

Each test waits minutes of simulated time for ``asyncio.sleep`` calls inside the
processor, and the whole module takes a few real seconds: the sleeps are simulated, and
each harness re-points the same App at a fresh broker.
"""

from __future__ import annotations

import asyncio

import pytest

from runnel import App, Events, Record
from runnel.testing import Harness

from .apps import UNREACHABLE

app = App(name="sleepy", redis_url=UNREACHABLE, default_partition_count=2)


class Job(Record):
    queue: str
    seq: int
    seconds: float


jobs = app.stream("jobs", record=Job, partition_by="queue")
done: list[tuple[str, int]] = []


@app.processor(jobs)
async def work(events: Events) -> None:
    async for job in events.records():
        await asyncio.sleep(job.seconds)
        done.append((job.queue, job.seq))


@pytest.mark.parametrize("case", range(100))
async def test_a_processor_sleeping_simulated_seconds_finishes_in_simulated_time(
    case: int,
) -> None:
    done.clear()
    seconds = 5.0 + case % 7
    async with Harness(app) as h:
        await h.start()
        started = h.now
        await jobs.send(*[Job(queue=f"q{case % 3}", seq=n, seconds=seconds) for n in range(4)])
        await h.run_until_idle()
        assert h.now - started >= 4 * seconds
    assert [seq for _, seq in done] == [0, 1, 2, 3]
