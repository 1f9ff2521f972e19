"""Hostile entries, written straight into a stream as an attacker with XADD rights could,
and a measurement of what each costs a real ``runnel worker`` process.

:func:`measure` starts one worker (``apps/hostile.py``) under one exception policy, waits
until it owns its partitions, writes the hostile entry followed by a good event into the
same partition, and waits for the outcome the policy promises: the good event processed
(IGNORE, dead-letter), the partition quarantined, or the worker halted. It reports the
worker's peak resident memory (``ru_maxrss`` of the reaped child, so the true peak) and the
log bytes written from the hostile entry to the outcome. A worker that never reaches its
outcome is reported as stuck, with the log bytes of the observation window.

Run it by hand to compare two source trees (``--src`` puts another ``runnel`` first on the
workers' path)::

    python -m tests.integration.security.measure --out after.json
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis

from ..engine.harness import REPO, process_env

APP_MODULE = "tests.integration.security.apps.hostile:app"
POLL = 0.05
MiB = 1 << 20


def _json_tick_padded(size: int) -> bytes:
    """A valid Tick with a ``pad`` member of ``size`` bytes (ignored by the record)."""
    return b'{"key":"bomb","seq":1,"pad":"' + b"a" * size + b'"}'


@functools.lru_cache(maxsize=2)
def zip_bomb(size: int = 256 * MiB) -> dict[bytes, bytes]:
    """A gzip entry of ~260 KB that inflates to ``size`` bytes of a valid record."""
    return {b"data": b"#!json+gzip\n" + gzip.compress(_json_tick_padded(size), 9, mtime=0)}


@functools.lru_cache(maxsize=2)
def lz4_bomb(size: int = 256 * MiB) -> dict[bytes, bytes]:
    """An LZ4 frame of ~1 MB that inflates to ``size`` bytes of a valid record."""
    import lz4.frame

    return {b"data": b"#!json+lz4\n" + bytes(lz4.frame.compress(_json_tick_padded(size)))}


def huge_json(size: int = 20 * MiB) -> dict[bytes, bytes]:
    """A 20 MB ``data`` field that is not valid JSON (an unterminated string)."""
    return {b"data": b'{"key":"' + b"x" * size}


def huge_primitive(size: int = 20 * MiB) -> dict[bytes, bytes]:
    """A primitive entry whose float field is 20 MB that do not parse."""
    return {b"key": b"k", b"seq": b"1", b"ratio": b"1" * size + b"x", b"on": b"1"}


def many_fields(count: int = 20_000) -> dict[bytes, bytes]:
    """20,000 small fields and no ``data`` field."""
    return {b"f%05d" % i: b"v%d" % i for i in range(count)}


def missing_data() -> dict[bytes, bytes]:
    """A JSON stream's entry without its ``data`` field."""
    return {b"other": b"x"}


def non_utf8() -> dict[bytes, bytes]:
    """A primitive entry whose ``str`` field is not UTF-8."""
    return {b"key": b"\xff\xfe\xfa", b"seq": b"1", b"ratio": b"0.5", b"on": b"1"}


def wrong_types() -> dict[bytes, bytes]:
    """A JSON object whose members have the wrong types."""
    return {b"data": b'{"key": 5, "seq": "many"}'}


@dataclass(frozen=True)
class Hostile:
    """One kind of hostile entry and the stream it is written to."""

    name: str
    stream: str
    fields: Callable[[], dict[bytes, bytes]]


def hostiles(bomb: int = 256 * MiB, field: int = 20 * MiB) -> tuple[Hostile, ...]:
    """Every kind of hostile entry; bombs inflate to ``bomb`` bytes, big fields hold ``field``."""
    return (
        Hostile("zip_bomb", "gz", functools.partial(zip_bomb, bomb)),
        Hostile("lz4_bomb", "lz4", functools.partial(lz4_bomb, bomb)),
        Hostile("huge_json", "plain", functools.partial(huge_json, field)),
        Hostile("huge_primitive", "flat", functools.partial(huge_primitive, field)),
        Hostile("many_fields", "plain", many_fields),
        Hostile("missing_data", "plain", missing_data),
        Hostile("non_utf8", "flat", non_utf8),
        Hostile("wrong_types", "plain", wrong_types),
    )


HOSTILE = hostiles()
BY_NAME = {h.name: h for h in HOSTILE}

POLICIES = ("halt", "quarantine", "ignore", "deadletter")

GOOD_FIELDS = {
    "plain": lambda seq: {b"data": b'{"key":"good","seq":%d}' % seq},
    "flat": lambda seq: {b"key": b"good", b"seq": b"%d" % seq, b"ratio": b"0.5", b"on": b"1"},
}


def good_fields(stream: str, seq: int) -> dict[bytes, bytes]:
    """A good event for ``stream``, encoded as runnel encodes it."""
    if stream in GOOD_FIELDS:
        return GOOD_FIELDS[stream](seq)
    body = b'{"key":"good","seq":%d}' % seq
    if stream == "gz":
        return {b"data": b"#!json+gzip\n" + gzip.compress(body, 6, mtime=0)}
    import lz4.frame

    return {b"data": b"#!json+lz4\n" + bytes(lz4.frame.compress(body))}


@dataclass
class Measurement:
    """What one hostile entry cost one worker under one policy."""

    hostile: str
    policy: str
    outcome: str
    """``processed`` (the good event after it was handled), ``quarantined``, ``halted``
    (exit 1) or ``stuck`` (none of these within the window)."""
    peak_rss_mib: float
    baseline_rss_mib: float
    log_bytes: int
    seconds: float
    exit_code: int | None
    dead_lettered_intact: bool | None
    """With the dead-letter middleware: whether the sink holds the entry's original fields."""
    unacknowledged: int
    """Entries of the partition its processor has not acknowledged (pending or not yet
    delivered) once the outcome was reached: what HALT and QUARANTINE keep."""


class _Worker:
    """A worker subprocess whose peak resident memory is sampled from ``/proc``.

    ``VmHWM`` (the high-water mark of the process's own memory, reset by ``exec``) is read
    every few milliseconds while the process lives; it only grows, so the last reading is
    the peak up to that moment. (The child's ``ru_maxrss`` would count the pages of the
    measuring process it was forked from.)
    """

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "runnel", "worker", APP_MODULE],
                cwd=REPO,
                env=dict(env),
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.exit_code: int | None = None
        self.peak_kib = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        path = Path(f"/proc/{self.process.pid}/status")
        while self._sampling:
            try:
                for line in path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.005)

    def reap(self, block: bool = False) -> bool:
        """Whether the worker exited (then ``exit_code`` is set)."""
        if self.exit_code is not None:
            return True
        code = self.process.wait() if block else self.process.poll()
        if code is None:
            return False
        self.exit_code = code
        self._sampling = False
        self._sampler.join()
        return True

    def rss_kib(self) -> int:
        """Current resident memory (0 once gone)."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, within: float = 30.0) -> None:
        if self.reap():
            return
        self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + within
        while not self.reap():
            if time.monotonic() > deadline:
                self.process.kill()
                self.reap(block=True)
                return
            time.sleep(POLL)


async def _ready(client: Redis, worker: _Worker, app: str, within: float) -> None:
    """Wait until every processor's partition 0 is leased (the worker owns everything)."""
    locks = [f"__lock:{app}.{s}.{s}_proc.0" for s in ("plain", "gz", "lz4", "flat")]
    deadline = time.monotonic() + within
    while not all([await client.exists(k) for k in locks]):
        if worker.reap() or time.monotonic() > deadline:
            raise AssertionError(f"worker did not become ready:\n{worker.log()[-4000:]}")
        await asyncio.sleep(POLL)


async def _unacknowledged(client: Redis, key: str, group: str) -> int:
    for info in await client.xinfo_groups(key):
        if info["name"] in (group, group.encode()):
            return int(info["pending"]) + int(info.get("lag") or 0)
    raise AssertionError(f"no group {group} on {key}")


async def _seen_good(client: Redis, app: str, stream: str) -> bool:
    for raw in await client.lrange(f"results:{app}:seen", 0, -1):
        item = json.loads(raw)
        if item["stream"] == stream and item["key"] == "good":
            return True
    return False


async def measure(
    redis_url: str,
    hostile: Hostile,
    policy: str,
    workdir: Path,
    window: float = 30.0,
    src: Path | None = None,
    extra_env: Mapping[str, str | None] | None = None,
) -> Measurement:
    """Run one worker under ``policy``, feed it ``hostile`` then a good event, measure."""
    app = f"h{uuid4().hex[:8]}"
    env = process_env(app, redis_url, {"HOSTILE_POLICY": policy, **(extra_env or {})})
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), env["PYTHONPATH"]])
    client = Redis.from_url(redis_url)
    worker = _Worker(env, workdir / f"{app}-{hostile.name}-{policy}.log")
    try:
        await _ready(client, worker, app, within=60.0)
        await asyncio.sleep(0.5)  # let start-up logging settle before the baseline
        baseline = worker.rss_kib()
        before = worker.log_size()
        key = f"__strm:{app}.{hostile.stream}.0"
        fields = hostile.fields()
        started = time.monotonic()
        await client.xadd(key, fields)  # type: ignore[arg-type]  # bytes fields
        await client.xadd(key, good_fields(hostile.stream, 1))  # type: ignore[arg-type]
        quarantine = f"__quar:{app}.{hostile.stream}.{hostile.stream}_proc"
        outcome = "stuck"
        deadline = started + window
        while time.monotonic() < deadline:
            if worker.reap():
                outcome = "halted" if worker.exit_code == 1 else f"exited {worker.exit_code}"
                break
            if await _seen_good(client, app, hostile.stream):
                outcome = "processed"
                break
            if await client.hlen(quarantine):
                outcome = "quarantined"
                break
            await asyncio.sleep(POLL)
        seconds = time.monotonic() - started
        log_bytes = worker.log_size() - before
        unacknowledged = await _unacknowledged(client, key, f"{hostile.stream}_proc")
        intact: bool | None = None
        if policy == "deadletter":
            sink = await client.xrange(f"__strm:{app}.{hostile.stream}.dead.0") or []
            intact = any(
                all((entry or {}).get(k) == v for k, v in fields.items()) for _, entry in sink
            )
        worker.stop()
        return Measurement(
            hostile=hostile.name,
            policy=policy,
            outcome=outcome,
            peak_rss_mib=round(worker.peak_kib / 1024, 1),
            baseline_rss_mib=round(baseline / 1024, 1),
            log_bytes=log_bytes,
            seconds=round(seconds, 2),
            exit_code=worker.exit_code,
            dead_lettered_intact=intact,
            unacknowledged=unacknowledged,
        )
    finally:
        if not worker.reap():
            worker.process.kill()
            worker.reap(block=True)
        keys = [k async for k in client.scan_iter(match=f"__*:{app}*")]
        keys += [k async for k in client.scan_iter(match=f"results:{app}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@dataclass
class Batch:
    """What a series of hostile entries cost one worker that keeps going (IGNORE)."""

    policy: str
    peak_rss_mib: float
    baseline_rss_mib: float
    log_bytes: int
    good_processed: list[tuple[str, int]]
    """(stream, seq) of every good event the processors handled, in order."""
    dead_lettered_intact: list[str]
    """Hostile entries found in their dead-letter stream with every original field."""
    exit_code: int | None


async def run_all(
    redis_url: str,
    entries: Sequence[Hostile],
    policy: str,
    workdir: Path,
    within: float = 120.0,
) -> Batch:
    """One worker under ``policy`` (IGNORE or dead-letter), fed every hostile entry each
    followed by a good event in the same partition; returns when every good event is
    processed."""
    app = f"h{uuid4().hex[:8]}"
    env = process_env(app, redis_url, {"HOSTILE_POLICY": policy})
    client = Redis.from_url(redis_url)
    worker = _Worker(env, workdir / f"{app}-all-{policy}.log")
    written: list[tuple[Hostile, dict[bytes, bytes]]] = []
    try:
        await _ready(client, worker, app, within=60.0)
        await asyncio.sleep(0.5)
        baseline = worker.rss_kib()
        before = worker.log_size()
        for seq, hostile in enumerate(entries, start=1):
            key = f"__strm:{app}.{hostile.stream}.0"
            fields = hostile.fields()
            await client.xadd(key, fields)  # type: ignore[arg-type]  # bytes fields
            await client.xadd(key, good_fields(hostile.stream, seq))  # type: ignore[arg-type]
            written.append((hostile, fields))
        deadline = time.monotonic() + within
        while len(await client.lrange(f"results:{app}:seen", 0, -1)) < len(entries):
            if worker.reap() or time.monotonic() > deadline:
                raise AssertionError(f"not every good event was processed:\n{worker.log()[-4000:]}")
            await asyncio.sleep(POLL)
        log_bytes = worker.log_size() - before
        intact = []
        for hostile, fields in written:
            sink = await client.xrange(f"__strm:{app}.{hostile.stream}.dead.0") or []
            if any(all((e or {}).get(k) == v for k, v in fields.items()) for _, e in sink):
                intact.append(hostile.name)
        seen = [json.loads(x) for x in await client.lrange(f"results:{app}:seen", 0, -1)]
        worker.stop()
        return Batch(
            policy=policy,
            peak_rss_mib=round(worker.peak_kib / 1024, 1),
            baseline_rss_mib=round(baseline / 1024, 1),
            log_bytes=log_bytes,
            good_processed=[(x["stream"], x["seq"]) for x in seen],
            dead_lettered_intact=intact,
            exit_code=worker.exit_code,
        )
    finally:
        if not worker.reap():
            worker.process.kill()
            worker.reap(block=True)
        keys = [k async for k in client.scan_iter(match=f"__*:{app}*")]
        keys += [k async for k in client.scan_iter(match=f"results:{app}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def as_row(m: Measurement) -> dict[str, Any]:
    """A measurement as a plain dict (for JSON)."""
    return asdict(m)
