"""Running worker processes and watching them through Redis.

Every consumer under test, runnel's worker or the raw baseline, is a separate process
(``python -m runnel worker benchmarks.apps.X:app`` or ``python -m benchmarks.baseline``),
and the benchmark measures it from the outside, identically for both:

1. the events are sent before the consumer starts, and its consumer group is moved to
   the end of every partition (``XGROUP SETID ... $``), so nothing is delivered yet;
2. the consumer starts; once it is ready (runnel: every partition lease held, by the
   expected number of workers; raw: its ready key set) and has settled, the gate opens in
   one transaction: the group goes back to the start (``SETID 0``) and one more entry is
   appended to every partition, which wakes a consumer blocked on the partition;
3. a small Lua script polls every few milliseconds whether every partition's group has
   delivered up to that last entry and has nothing pending; the run takes
   ``events / (done - gate)``.

No per-event work is added to either consumer: the poll runs inside Redis and costs the
same for both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

import runnel
from benchmarks.apps import APP_NAME_ENV, LATENCY_OUT_ENV, PROCESSOR, STREAM
from benchmarks.records import RecordKind

ROOT = Path(__file__).resolve().parent.parent
RUNNEL_SRC = Path(runnel.__file__).resolve().parent.parent
"""Where this process imports runnel from; the consumer processes import the same copy."""
POLL_INTERVAL = 0.005
SETTLE = 0.5
"""Seconds between a consumer reporting ready and the gate opening (it goes idle)."""
BALANCE_WAIT = 10.0
"""Seconds the set of lease holders must stay unchanged before the benchmark accepts
fewer holders than worker processes."""

_DONE_SCRIPT = """
-- KEYS: partition streams; ARGV[1]: group; ARGV[1 + i]: the last id of KEYS[i].
-- Returns {partitions not finished, entries pending}.
local left, pending = 0, 0
for i, key in ipairs(KEYS) do
    local finished = false
    for _, flat in ipairs(redis.call('XINFO', 'GROUPS', key)) do
        local info = {}
        for j = 1, #flat, 2 do
            info[flat[j]] = flat[j + 1]
        end
        if info['name'] == ARGV[1] then
            pending = pending + info['pending']
            finished = info['pending'] == 0 and info['last-delivered-id'] == ARGV[1 + i]
        end
    end
    if not finished then
        left = left + 1
    end
end
return {left, pending}
"""


class BenchError(RuntimeError):
    """A consumer failed or did not finish in time."""


def keys_of(app_name: str, partitions: int) -> list[str]:
    """The partition stream keys of the benchmark stream of ``app_name``."""
    return [f"__strm:{app_name}.{STREAM}.{n}" for n in range(partitions)]


def lock_keys(app_name: str, partitions: int) -> list[str]:
    """The partition lease keys of the benchmark processor of ``app_name``."""
    return [f"__lock:{app_name}.{STREAM}.{PROCESSOR}.{n}" for n in range(partitions)]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` in MB (VmRSS of /proc/<pid>/status), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (from /proc/<pid>/stat), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Consumer:
    """A consumer process under test."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_key: str | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log_tail(self, lines: int = 60) -> str:
        """The end of the process's output."""
        try:
            text = self.log.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise BenchError (with its output) if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0, signalled: bool = False) -> int:
        """SIGTERM (unless already ``signalled``: a second one forces runnel's worker out),
        wait for a graceful exit (kill after ``timeout``); the exit code."""
        if self.process.poll() is None:
            if not signalled:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT), str(RUNNEL_SRC), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env.pop("RUNNEL_REDIS_URL", None)
    env.update(extra)
    return env


def start_worker(
    module: str,
    url: str,
    app_name: str,
    logdir: Path,
    index: int = 0,
    latency_out: str | None = None,
    settings: Mapping[str, str] | None = None,
) -> Consumer:
    """Start ``python -m runnel worker benchmarks.apps.<module>:app`` against ``url``.

    ``settings`` are extra environment variables (``RUNNEL_METRICS``, say).
    """
    extra = {APP_NAME_ENV: app_name, **(settings or {})}
    if latency_out is not None:
        extra[LATENCY_OUT_ENV] = latency_out
    log = logdir / f"{app_name}-worker{index}.log"
    command = [
        sys.executable,
        "-m",
        "runnel",
        "worker",
        f"benchmarks.apps.{module}:app",
        "--redis-url",
        url,
        "--log-level",
        "warning",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=_env(extra), stdout=out, stderr=subprocess.STDOUT
        )
    return Consumer(f"runnel worker {index}", process, log)


def start_raw(
    url: str,
    kind: RecordKind,
    keys: Sequence[str],
    logdir: Path,
    tag: str,
    index: int = 0,
    latency_out: str | None = None,
) -> Consumer:
    """Start a raw baseline consumer process over ``keys``."""
    ready = f"bench:ready:{tag}:{index}"
    command = [
        sys.executable,
        "-m",
        "benchmarks.baseline",
        "--url",
        url,
        "--kind",
        kind,
        "--group",
        PROCESSOR,
        "--keys",
        ",".join(keys),
        "--ready-key",
        ready,
    ]
    if latency_out is not None:
        command += ["--latency-out", latency_out]
    log = logdir / f"{tag}-raw{index}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=_env({}), stdout=out, stderr=subprocess.STDOUT
        )
    return Consumer(f"raw consumer {index}", process, log, ready)


def stop_all(consumers: Sequence[Consumer]) -> list[int]:
    """Stop every consumer (SIGTERM to all first, then wait); their exit codes."""
    for c in consumers:
        if c.process.poll() is None:
            c.process.send_signal(signal.SIGTERM)
    return [c.stop(signalled=True) for c in consumers]


@dataclass
class Watcher:
    """Polls Redis for a consumer's readiness and progress."""

    client: Redis
    keys: list[str]
    group: str = PROCESSOR
    _done_sha: str | None = field(default=None, init=False)

    async def wait_ready(
        self,
        consumers: Sequence[Consumer],
        locks: Sequence[str] | None,
        owners: int,
        timeout: float,
    ) -> int:
        """Wait until the consumers are ready, then let them settle; return how many
        distinct processes hold the partitions.

        runnel: every lock in ``locks`` held, by ``owners`` distinct executors, or by
        fewer if that does not change for :data:`BALANCE_WAIT` seconds (a runnel that
        does not spread partitions over workers). raw: every consumer's ready key set.
        """
        deadline = time.monotonic() + timeout
        all_held_since: float | None = None
        holders: set[bytes] = set()
        while True:
            for c in consumers:
                c.check_alive()
            if locks is not None:
                values = await self.client.mget(list(locks))
                held = [v for v in values if isinstance(v, bytes)]
                now_holders = {v.rsplit(b":", 1)[0] for v in held}
                if len(held) < len(locks) or now_holders != holders:
                    all_held_since = None
                elif all_held_since is None:
                    all_held_since = time.monotonic()
                holders = now_holders
                if all_held_since is not None and (
                    len(holders) == owners or time.monotonic() - all_held_since > BALANCE_WAIT
                ):
                    break
            else:
                ready = [c.ready_key for c in consumers if c.ready_key is not None]
                if all(await self.client.mget(ready)):
                    break
            if time.monotonic() > deadline:
                tails = "\n".join(c.log_tail() for c in consumers)
                raise BenchError(
                    f"consumers not ready within {timeout:.0f}s ({len(holders)} lease "
                    f"holder(s))\n{tails}"
                )
            await asyncio.sleep(0.02)
        await asyncio.sleep(SETTLE)
        return len(holders) if locks is not None else len(consumers)

    async def park(self) -> None:
        """Move the group to the end of every partition: nothing is deliverable."""
        pipe = self.client.pipeline(transaction=True)
        for key in self.keys:
            pipe.xgroup_setid(key, self.group, "$")
        await pipe.execute()

    async def open_gate(self, kick: Sequence[Mapping[Any, Any]]) -> list[bytes]:
        """Rewind the group to the start of every partition and append ``kick[i]`` to
        partition ``i``, atomically; return the appended ids (each partition's last)."""
        pipe = self.client.pipeline(transaction=True)
        for key in self.keys:
            pipe.xgroup_setid(key, self.group, "0", entries_read=0)
        for key, fields in zip(self.keys, kick, strict=True):
            pipe.xadd(key, dict(fields))
        replies: list[Any] = await pipe.execute()
        return [bytes(r) for r in replies[len(self.keys) :]]

    async def progress(self, last_ids: Sequence[bytes]) -> tuple[int, int]:
        """(partitions not finished, entries pending) for ``group``."""
        if self._done_sha is None:
            self._done_sha = str(await self.client.script_load(_DONE_SCRIPT))
        raw: list[int] = await self.client.evalsha(
            self._done_sha, len(self.keys), *self.keys, self.group, *last_ids
        )
        return int(raw[0]), int(raw[1])

    async def wait_done(
        self,
        last_ids: Sequence[bytes],
        consumers: Sequence[Consumer],
        timeout: float,
        sample_rss: bool = False,
    ) -> tuple[float, float]:
        """Poll until every partition is finished; (time it was seen, peak RSS in MB)."""
        deadline = time.monotonic() + timeout
        peak = 0.0
        polls = 0
        while True:
            if sample_rss:
                peak = max(peak, sum(rss_mb(c.pid) for c in consumers))
            left, pending = await self.progress(last_ids)
            if left == 0:
                return time.perf_counter(), peak
            polls += 1
            if polls % 100 == 0:
                for c in consumers:
                    c.check_alive()
                if time.monotonic() > deadline:
                    tails = "\n".join(c.log_tail() for c in consumers)
                    raise BenchError(
                        f"not finished within {timeout:.0f}s ({left} partitions left, "
                        f"{pending} pending)\n{tails}"
                    )
            await asyncio.sleep(POLL_INTERVAL)
