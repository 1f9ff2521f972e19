"""Running real ``runnel`` processes against the test Redis, and waiting on conditions.

Nothing here sleeps blindly: every wait polls a condition (a Redis state, a log line, a
process exit) every ~50 ms up to a deadline, then fails saying what it waited for, with the
tail of the workers' logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from runnel import Stream

from .apps.common import APP_ENV, results_key

REPO = Path(__file__).resolve().parents[3]
APPS = "tests.integration.engine.apps"
POLL = 0.05

# Small timings so a test takes seconds, not minutes (each is a RUNNEL_ setting).
FAST_SETTINGS: Mapping[str, str] = {
    "RUNNEL_LOG_FORMAT": "json",
    "RUNNEL_LOG_LEVEL": "info",
    "RUNNEL_DEFAULT_LOCK_EXPIRY": "2",
    "RUNNEL_DEFAULT_READ_TIMEOUT": "200",
    "RUNNEL_DEFAULT_ASSIGNMENT_SLEEP": "0.5",
    "RUNNEL_DEFAULT_GRACE_PERIOD": "5",
    "RUNNEL_DEFAULT_JOIN_DELAY": "0",
    "RUNNEL_LEADERSHIP_POLL_INTERVAL": "1000",
}


def process_env(
    app_name: str, redis_url: str, extra: Mapping[str, str | None] | None = None
) -> dict[str, str]:
    """The environment of a child process: ours without RUNNEL_* knobs, plus the fast
    settings, the app name and the Redis URL.

    In ``extra``, a ``None`` value removes that variable (e.g. one of the fast settings, so
    the product default applies).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNNEL_", "ENGINE_TEST_"))}
    env.update(FAST_SETTINGS)
    env[APP_ENV] = app_name
    env["RUNNEL_REDIS_URL"] = redis_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def runnel(
    *args: str, env: Mapping[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run a ``runnel`` CLI command to completion (``python -m runnel``, from the repo)."""
    return subprocess.run(
        [sys.executable, "-m", "runnel", *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class WorkerProcess:
    """One ``runnel worker`` subprocess; its stderr (the log) and stdout go to files."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], workdir: Path, label: str
    ) -> None:
        self.argv = list(argv)
        self.label = label
        self.http_port: int | None = None
        """Where the worker serves /metrics, when it was given an HTTP address."""
        self.log_path = workdir / f"{label}.stderr"
        self.out_path = workdir / f"{label}.stdout"
        with self.log_path.open("wb") as err, self.out_path.open("wb") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=REPO, env=dict(env), stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.process.pid

    def running(self) -> bool:
        """Whether the process has not exited yet."""
        return self.process.poll() is None

    def stderr(self) -> str:
        """Everything the worker wrote to stderr so far."""
        return self.log_path.read_text(errors="replace")

    def stdout(self) -> str:
        """Everything the worker wrote to stdout so far."""
        return self.out_path.read_text(errors="replace")

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log records so far (a line that is not JSON comes back as ``raw``)."""
        records = []
        for line in self.stderr().splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                value = None
            records.append(value if isinstance(value, dict) else {"raw": line})
        return records

    def messages(self, level: str | None = None) -> list[str]:
        """Log messages, optionally only those of ``level`` (e.g. ``"error"``)."""
        return [
            str(r.get("message", r.get("raw", "")))
            for r in self.logs()
            if level is None or r.get("level") == level
        ]

    def acquired(self, stream: str) -> set[int]:
        """Partitions of ``stream`` this worker logged acquiring (at any time)."""
        pattern = re.compile(rf"^acquired {re.escape(stream)}\.(\d+) ")
        return {int(m[1]) for m in map(pattern.match, self.messages()) if m}

    def peak_rss(self) -> int | None:
        """The worker's peak resident set size so far, in bytes (``VmHWM`` in Linux's
        ``/proc/<pid>/status``); ``None`` once it has exited, or without ``/proc``."""
        if not self.running():
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
        return int(match[1]) * 1024 if match else None

    def stopped(self) -> bool:
        """Whether the worker is stopped by a signal (state ``T`` in ``/proc/<pid>/stat``)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def send_signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the worker (if it still runs)."""
        if self.running():
            self.process.send_signal(sig)

    async def exit_code(self, within: float) -> int:
        """Wait up to ``within`` seconds for the worker to exit; its exit code."""
        deadline = time.monotonic() + within
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker {self.label} did not exit within {within}s\n{self.tail()}"
                )
            await asyncio.sleep(POLL)
        return code

    async def stop(self, within: float = 15.0) -> int:
        """SIGTERM, then wait for the exit code."""
        self.send_signal(signal.SIGTERM)
        return await self.exit_code(within)

    def kill(self) -> None:
        """Kill the worker if it still runs and reap it (test teardown)."""
        if self.running():
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        """The last log lines, for failure messages."""
        text = "\n".join(self.stderr().splitlines()[-lines:])
        return f"--- {self.label} (pid {self.pid}, rc {self.process.poll()}) stderr tail:\n{text}"


async def wait_for(
    condition: Callable[[], Awaitable[object] | object],
    what: str,
    within: float = 20.0,
    workers: Iterable[WorkerProcess] = (),
) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail after ``within`` seconds.

    Fails at once if one of ``workers`` exited meanwhile (it can no longer make it true).
    """
    watched = list(workers)
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        dead = [w for w in watched if not w.running()]
        if dead or time.monotonic() > deadline:
            reason = "a worker exited" if dead else f"not within {within}s"
            tails = "\n".join(w.tail() for w in watched)
            raise AssertionError(f"waiting for {what}: {reason}\n{tails}")
        await asyncio.sleep(POLL)


async def results(client: Redis, app_name: str, kind: str) -> list[dict[str, Any]]:
    """Everything the test app recorded under ``kind``, in the order it was recorded."""
    raw = await client.lrange(results_key(app_name, kind), 0, -1)
    return [json.loads(item) for item in raw]


async def count(client: Redis, app_name: str, kind: str) -> int:
    """How many ``kind`` results the test app recorded so far."""
    return int(await client.llen(results_key(app_name, kind)))


async def recorded(client: Redis, app_name: str, kind: str, at_least: int = 1) -> bool:
    """Whether the test app recorded at least ``at_least`` results of ``kind``."""
    return await count(client, app_name, kind) >= at_least


async def pending(client: Redis, stream: Stream[Any], group: str) -> int:
    """How many entries of ``stream`` (all partitions) ``group`` has not acknowledged."""
    total = 0
    for n in range(stream.partition_count):
        summary = await client.xpending(stream.keys.stream(n), group)
        total += int(summary["pending"])
    return total


async def pending_ids(
    client: Redis, stream: Stream[Any], group: str, partition: int
) -> list[bytes]:
    """The ids ``group`` has not acknowledged in one partition, oldest first."""
    rows = await client.xpending_range(stream.keys.stream(partition), group, "-", "+", 10_000)
    return [_bytes(row["message_id"]) for row in rows]


async def entries(client: Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of the stream at ``key``: (id, fields), as the server holds them."""
    rows = await client.xrange(key) or []
    return [
        (_bytes(entry_id), {_bytes(k): _bytes(v) for k, v in (fields or {}).items()})
        for entry_id, fields in rows
    ]


def _bytes(value: object) -> bytes:
    # Our client does not decode responses; redis-py's types allow str as well.
    assert isinstance(value, bytes), f"expected bytes from Redis, got {value!r}"
    return value


async def equal(actual: Awaitable[object], expected: object) -> bool:
    """Whether ``actual`` comes out as ``expected`` (for :func:`wait_for` conditions)."""
    return await actual == expected


async def send_and_close(app: Any, stream: Stream[Any], *records: Any) -> list[bytes]:
    """Send ``records`` as a producer does, then close the producer's connections."""
    try:
        return await stream.send(*records)
    finally:
        await app.close()


def seqs_per_key(
    seen: Iterable[Mapping[str, Any]], first_only: bool = False
) -> dict[str, list[int]]:
    """Per key, the ``seq`` of each recorded delivery in the order processed (or only the
    first delivery of each, to check that first deliveries kept the send order)."""
    per_key: dict[str, list[int]] = {}
    for s in seen:
        seqs = per_key.setdefault(s["key"], [])
        if not (first_only and s["seq"] in seqs):
            seqs.append(s["seq"])
    return per_key
