"""Keyed events for the fault suite: every event handled is recorded with its timings.

Each event is recorded as ``done`` when its work has finished: key, seq, partition, entry
id, lease epoch, pid, ``began`` (when it reached user code) and ``done`` (when the work
finished), both ``time.time()`` on the one host the suite runs on. Events of the slow keys
are also recorded as ``began`` as soon as they arrive, before their work, so a test can act
while one of them is in flight. The payload (``pad``) is never recorded.

The records go to another Redis than the app's (``ENGINE_TEST_RESULTS_URL``), so faults
injected into the app's Redis do not touch them, and they are written synchronously: a
record is stored the moment user code reaches it, with no await in between, like a side
effect that does not yield to the event loop. The work of a slow key is an awaited call to
a slow service (a ``BLPOP`` on the results server that times out after
``ENGINE_TEST_SLOW_DELAY``): it completes by I/O, as a network call does, not by a timer.

The first event of the key ``ENGINE_TEST_STOP_KEY`` (across all workers of the app) makes
its worker stop itself with SIGSTOP while its user code is suspended in an ``await`` that
is complete when the process runs again: the test resumes it (SIGCONT) whenever it likes,
and user code goes on from that ``await`` before anything else the worker had due.

Knobs: ``ENGINE_TEST_PARTITIONS`` (default 12), ``ENGINE_TEST_DELAY`` (seconds of awaited
work per event), ``ENGINE_TEST_SLOW_KEYS`` (comma-separated keys) with
``ENGINE_TEST_SLOW_DELAY`` (seconds of awaited work for each of their events),
``ENGINE_TEST_STOP_KEY`` and ``ENGINE_TEST_RESULTS_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

import redis
import redis.asyncio

from runnel import App, Events, Record, Stream

from .common import app_name, env_float, results_key

PARTITIONS = 12
PROCESSOR = "proc"
RESULTS_URL_ENV = "ENGINE_TEST_RESULTS_URL"


class Load(Record):
    """A keyed event: ``seq`` numbers each key's events 0, 1, 2, ... in send order; ``pad``
    makes it as large as a test needs."""

    key: str
    seq: int
    pad: str = ""


class Recorder:
    """Synchronous records on the results server, and the slow service on the same server
    (clients made on first use, in the worker)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._sync: redis.Redis | None = None
        self._slow: redis.asyncio.Redis | None = None

    @property
    def url(self) -> str:
        """``ENGINE_TEST_RESULTS_URL``, else the app's own backend."""
        return os.environ.get(RESULTS_URL_ENV) or self.app.settings.redis_url

    def add(self, kind: str, **fields: Any) -> None:
        """Append one ``kind`` record at once (blocking: no await before it is stored)."""
        if self._sync is None:
            self._sync = redis.Redis.from_url(self.url)
        fields["pid"] = os.getpid()
        self._sync.rpush(results_key(self.app.name, kind), json.dumps(fields))

    def claim(self, what: str) -> bool:
        """Whether this process is the first of the app to claim ``what`` (once ever)."""
        if self._sync is None:
            self._sync = redis.Redis.from_url(self.url)
        key = results_key(self.app.name, what)
        return bool(self._sync.set(key, os.getpid(), nx=True))

    async def slow_call(self, seconds: float) -> None:
        """Await a reply that the results server sends after ``seconds``."""
        if self._slow is None:
            self._slow = redis.asyncio.Redis.from_url(self.url)
        never = results_key(self.app.name, "never-pushed")
        await self._slow.blpop([never], timeout=seconds)


async def stop_inside_an_await() -> None:
    """SIGSTOP this process while the caller is suspended here; return when it runs again.

    Both callbacks run in one pass over the loop's ready queue: the process stops in the
    first, and once it is continued the second completes the awaited future at once, so
    this coroutine is the first thing the loop resumes (before any timer that fell due
    during the stop, such as the lease watchdog's).
    """
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(os.kill, os.getpid(), signal.SIGSTOP)
    loop.call_soon(done.set_result, None)
    await done


def build(
    name: str,
    redis_url: str | None = None,
    partitions: int = PARTITIONS,
    delay: float = 0.0,
    slow_keys: frozenset[str] = frozenset(),
    slow_delay: float = 0.0,
    stop_key: str | None = None,
    ensure_owned: bool = False,
) -> tuple[App, Stream[Load]]:
    """A ``loads`` stream of ``partitions`` partitions with one processor, ``proc``."""
    app = App(name=name, redis_url=redis_url)
    loads = app.stream("loads", record=Load, partition_by="key", partition_count=partitions)
    recorder = Recorder(app)

    @app.processor(loads, name=PROCESSOR)
    async def proc(events: Events) -> None:
        async for event in events:
            began = time.time()
            load = event.record()
            where = {
                "key": load.key,
                "seq": load.seq,
                "partition": event.partition.number,
                "id": event.id.decode(),
                "epoch": event.epoch,
            }
            if load.key == stop_key and recorder.claim("stopped"):
                recorder.add("began", **where, began=began)
                await stop_inside_an_await()
            elif load.key in slow_keys:
                recorder.add("began", **where, began=began)
                await recorder.slow_call(slow_delay)
            elif delay:
                await asyncio.sleep(delay)
            if ensure_owned:
                events.ensure_owned()  # the side effect below happens only if still ours
            recorder.add("done", **where, began=began, done=time.time())

    return app, loads


app, loads = build(
    app_name(),
    partitions=int(env_float("ENGINE_TEST_PARTITIONS", PARTITIONS)),
    delay=env_float("ENGINE_TEST_DELAY", 0.0),
    slow_keys=frozenset(k for k in os.environ.get("ENGINE_TEST_SLOW_KEYS", "").split(",") if k),
    slow_delay=env_float("ENGINE_TEST_SLOW_DELAY", 0.0),
    stop_key=os.environ.get("ENGINE_TEST_STOP_KEY") or None,
    ensure_owned=os.environ.get("ENGINE_TEST_ENSURE_OWNED") == "1",
)
