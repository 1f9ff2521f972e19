"""One fault scenario: real ``runnel worker`` processes, a steady producer, the faults
injected, and the audit at the end.

The workers run the ``audited`` test app against the scenario's own redis-server and write
their ``done`` records to the suite's audit server, which no fault touches. The test drives
the scenario through a :class:`Scenario`: start workers, start the load, inject faults
(each recorded as a :class:`~.audit.Fault` with its start and end), then :meth:`finish`,
which stops the load, waits for every acknowledged event to be processed (a sanity bound
detects a hang, nothing else is timed), stops the workers and returns the report row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal
from uuid import uuid4

from redis.asyncio import Redis
from redis.exceptions import RedisError

from runnel import App, Stream
from tests.integration.engine.apps import audited
from tests.integration.engine.apps.audited import RESULTS_URL_ENV, Load
from tests.integration.engine.apps.common import results_key
from tests.integration.engine.harness import APPS, FAST_SETTINGS, WorkerProcess, process_env
from tests.servers import free_port

from . import audit
from .audit import Done, Fault, Row
from .load import Attempt, Producer, balanced_keys
from .redis_server import RedisServer

PROC = audited.PROCESSOR
Settings = Literal["fast", "default"]
POLL = 0.05
SANITY = 60.0
"""Seconds after which a wait is a hang (recovery, drain): generous on a loaded machine."""

DEFAULT_SETTINGS: Mapping[str, str | None] = {
    name: None for name in FAST_SETTINGS if name not in {"RUNNEL_LOG_FORMAT", "RUNNEL_LOG_LEVEL"}
}
"""Worker environment overrides that drop the harness's fast timings: product defaults."""

_ACK_REFUSED = re.compile(r"^acknowledgement of (\d+) entr(?:y|ies) of .* refused")
_LEASE_LOST = re.compile(r"^lost the lease of ")
REAPED = re.compile(r"^reaping dead member\(s\) of ")
"""A worker found others' heartbeats expired and took them out of the membership."""


def _text(value: bytes | str) -> str:
    # Our clients do not decode responses; redis-py's types allow str as well.
    return value.decode() if isinstance(value, bytes) else value


def refused_acks(worker: WorkerProcess) -> list[int]:
    """For each acknowledgement call ``worker`` logged as refused by the fence, how many
    entries it carried."""
    return [int(m[1]) for m in map(_ACK_REFUSED.match, worker.messages("warning")) if m]


def pid_of(worker_id: str) -> int:
    """The process id inside a worker id (``<host>-<pid>-<hex>``)."""
    return int(worker_id.rsplit("-", 2)[1])


class Scenario:
    """Workers, load and audit of one scenario (use with ``async with``).

    Args:
        name: the scenario's name in the report.
        redis: the scenario's own server (already started).
        audit_url: the audit server's URL.
        workdir: where worker logs go.
        settings: ``"fast"`` (the harness's short timings) or ``"default"`` (product defaults).
        env: more worker environment (app knobs such as ``ENGINE_TEST_DELAY``).
        partitions: the stream's partition count.
        keys_per_partition: how many producer keys route to each partition.
        rows: the session's report, which :meth:`finish` appends to.
    """

    def __init__(
        self,
        name: str,
        redis: RedisServer,
        audit_url: str,
        workdir: Path,
        rows: list[Row],
        *,
        settings: Settings = "fast",
        env: Mapping[str, str] | None = None,
        partitions: int = audited.PARTITIONS,
        keys_per_partition: int = 10,
    ) -> None:
        self.name = name
        self.redis = redis
        self.audit_url = audit_url
        self.workdir = workdir
        self.rows = rows
        self.settings = settings
        self.app_name = f"f{uuid4().hex[:8]}"
        self.partitions = partitions
        self.keys_per_partition = keys_per_partition
        self.env: dict[str, str | None] = {
            **(DEFAULT_SETTINGS if settings == "default" else {}),
            "ENGINE_TEST_PARTITIONS": str(partitions),
            RESULTS_URL_ENV: audit_url,
            **(env or {}),
        }
        self.workers: list[WorkerProcess] = []
        self.faults: list[Fault] = []
        self.notes: dict[str, Any] = {}
        self.rss: dict[int, int] = {}
        self.producer: Producer | None = None
        self.load_stopped_at: float | None = None
        self._done: list[Done] = []
        self._began: list[Done] = []
        self._started = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self.app: App
        self.stream: Stream[Load]
        self.keys: list[str]
        self.audit_client: Redis
        self.client: Redis

    async def __aenter__(self) -> Scenario:
        self.app, self.stream = audited.build(self.app_name, self.redis.url, self.partitions)
        self.keys = balanced_keys(self.stream, self.keys_per_partition)
        self.audit_client = Redis.from_url(self.audit_url)
        self.client = Redis.from_url(self.redis.url, socket_timeout=5)
        self._tasks.append(asyncio.create_task(self._watch_rss(), name="rss"))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.producer is not None:
            with contextlib.suppress(Exception):
                await self.producer.stop()
        for worker in self.workers:
            worker.kill()
        await self.app.close()
        await self.client.aclose()
        await self.audit_client.aclose()

    # ---------------------------------------------------------------- workers

    @property
    def live(self) -> list[WorkerProcess]:
        """The workers still running."""
        return [w for w in self.workers if w.running()]

    def spawn(
        self, env: Mapping[str, str | None] | None = None, http: bool = False
    ) -> WorkerProcess:
        """Start one ``runnel worker`` process (without waiting for it to join); with
        ``http``, serving /metrics on a port of its own (``worker.http_port``)."""
        port = free_port() if http else None
        if port is not None:
            env = {**(env or {}), "RUNNEL_HTTP_ADDRESS": f"127.0.0.1:{port}"}
        argv = [
            sys.executable,
            "-m",
            "runnel",
            "worker",
            f"{APPS}.audited:app",
            "--redis-url",
            self.redis.url,
        ]
        worker = WorkerProcess(
            argv,
            process_env(self.app_name, self.redis.url, {**self.env, **(env or {})}),
            self.workdir,
            f"worker-{len(self.workers)}",
        )
        worker.http_port = port
        self.workers.append(worker)
        return worker

    async def start_workers(
        self, n: int, within: float = SANITY, http: bool = False
    ) -> list[WorkerProcess]:
        """Start ``n`` workers (each serving /metrics with ``http``) and wait until they
        share the partitions evenly."""
        started = [self.spawn(http=http) for _ in range(n)]
        await self.wait_balanced(within)
        return started

    async def balanced(self) -> bool:
        """Whether exactly the live workers are members, the split is even and each
        partition's lease is held by the member it is assigned to (as Redis has it)."""
        try:
            raw = await self.client.get(self.stream.keys.membership(PROC))
            members: dict[str, Any] = json.loads(raw) if raw else {}
            locks = await self.client.mget(
                [self.stream.keys.lock(PROC, n) for n in range(self.partitions)]
            )
        except RedisError:
            return False
        if sorted(pid_of(m["worker"]) for m in members.values()) != sorted(
            w.pid for w in self.live
        ):
            return False
        sizes = [len(m["partitions"]) for m in members.values()]
        if not sizes or max(sizes) - min(sizes) > 1:
            return False
        owner = {n: e for e, m in members.items() for n in m["partitions"]}
        holders = {n: _text(v).rsplit(":", 1)[0] for n, v in enumerate(locks) if v is not None}
        return owner == holders and len(owner) == self.partitions

    async def lock_values(self) -> list[bytes | str | None]:
        """Every partition's lock value (``<executor>:<epoch>``: a renewal keeps it, a new
        acquisition changes it)."""
        locks: list[bytes | str | None] = await self.client.mget(
            [self.stream.keys.lock(PROC, n) for n in range(self.partitions)]
        )
        return locks

    def logged(self, pattern: re.Pattern[str]) -> int:
        """How many log messages of all workers so far match ``pattern``."""
        return sum(1 for w in self.workers for m in w.messages() if pattern.match(m))

    def lease_losses(self) -> int:
        """How many times the workers logged losing a lease so far."""
        return self.logged(_LEASE_LOST)

    async def wait_balanced(self, within: float = SANITY) -> float:
        """Wait until :meth:`balanced`; the seconds it took."""
        return await self.wait_for(self.balanced, "the partitions shared evenly", within)

    async def kill(self, worker: WorkerProcess) -> Fault:
        """SIGKILL ``worker`` (its peak RSS sampled first); the fault, recorded."""
        self._sample(worker)
        at = time.time()
        worker.send_signal(signal.SIGKILL)
        await worker.exit_code(within=10)
        return self.record(Fault("sigkill", at, at))

    async def terminate(self, worker: WorkerProcess, within: float = SANITY) -> Fault:
        """SIGTERM ``worker`` and wait for it to exit (a graceful stop); the fault, recorded
        from the signal to the exit."""
        self._sample(worker)
        at = time.time()
        code = await worker.stop(within=within)
        assert code == 0, f"graceful stop exited with {code}\n{worker.tail()}"
        return self.record(Fault("sigterm", at, time.time()))

    def record(self, fault: Fault) -> Fault:
        """Add ``fault`` to the scenario's timeline."""
        self.faults.append(fault)
        return fault

    @contextlib.asynccontextmanager
    async def fault(self, kind: str) -> AsyncIterator[None]:
        """Record the block as one fault, from its start to its end."""
        start = time.time()
        yield
        self.record(Fault(kind, start, time.time()))

    # ---------------------------------------------------------------- load

    def start_load(self, rate: float = 300.0, **options: Any) -> Producer:
        """Start the steady producer (see :class:`~.load.Producer` for ``options``)."""
        self.producer = Producer(self.stream, options.pop("keys", self.keys), rate, **options)
        self.producer.start()
        return self.producer

    async def load_for(self, seconds: float) -> None:
        """Let the producer attempt ``seconds`` worth of sends more (pacing the faults by the
        load itself; a stalled producer makes this take longer)."""
        producer = self._producer()
        target = len(producer.attempts) + int(seconds * producer.rate)
        await self.wait_for(
            lambda: len(producer.attempts) >= target, f"{seconds}s of load", seconds + SANITY
        )

    async def stop_load(self) -> None:
        """Stop the producer."""
        await self._producer().stop()
        self.load_stopped_at = time.time()

    def _producer(self) -> Producer:
        assert self.producer is not None, "no load started"
        return self.producer

    @property
    def attempts(self) -> list[Attempt]:
        """Every send attempt so far."""
        return self.producer.attempts if self.producer is not None else []

    # ---------------------------------------------------------------- audit

    async def done(self) -> list[Done]:
        """Every ``done`` record so far (read incrementally from the audit server)."""
        self._done += await self._read("done", len(self._done))
        return self._done

    async def began(self) -> list[Done]:
        """Every ``began`` record (slow keys only) so far."""
        self._began += await self._read("began", len(self._began))
        return self._began

    async def _read(self, kind: str, start: int) -> list[Done]:
        raw = await self.audit_client.lrange(results_key(self.app_name, kind), start, -1)
        return [json.loads(item) for item in raw]

    async def wait_recovered(self, fault: Fault, within: float = SANITY) -> float:
        """Wait until, in every partition, an event sent since ``fault`` started was
        processed; the recovery time (fails after ``within`` seconds: a hang)."""

        async def recovered() -> bool:
            firsts = audit.first_began(self.attempts, await self.done(), fault.start)
            return len(firsts) == self.partitions

        await self.wait_for(recovered, f"every partition processed after {fault.kind}", within)
        value = audit.recovery(self.attempts, self._done, fault.start)
        assert value is not None
        return value

    async def pending(self) -> int:
        """Entries the processor's group has not acknowledged, over all partitions."""
        total = 0
        for n in range(self.partitions):
            summary = await self.client.xpending(self.stream.keys.stream(n), PROC)
            total += int(summary["pending"])
        return total

    # ---------------------------------------------------------------- waiting

    async def wait_for(
        self, condition: Callable[[], Awaitable[bool] | bool], what: str, within: float
    ) -> float:
        """Poll ``condition`` every 50 ms until it holds; the seconds it took. Fails after
        ``within`` seconds with the workers' log tails."""
        start = time.monotonic()
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return time.monotonic() - start
            if time.monotonic() - start > within:
                tails = "\n".join(w.tail(15) for w in self.workers)
                raise AssertionError(f"{self.name}: {what}: not within {within}s\n{tails}")
            await asyncio.sleep(POLL)

    # ---------------------------------------------------------------- memory

    def _sample(self, worker: WorkerProcess) -> None:
        peak = worker.peak_rss()
        if peak is not None:
            self.rss[worker.pid] = max(self.rss.get(worker.pid, 0), peak)

    async def _watch_rss(self) -> None:
        while True:
            for worker in self.live:
                self._sample(worker)
            await asyncio.sleep(0.2)  # sampling period of a monitor

    @property
    def peak_rss_mb(self) -> float | None:
        """The highest peak RSS of any worker so far, in MiB."""
        return max(self.rss.values()) / 2**20 if self.rss else None

    # ---------------------------------------------------------------- the end

    async def finish(self, *, stop_workers: bool = True) -> Row:
        """Stop the load, wait until every acknowledged event is processed, stop the workers
        gracefully, and add the scenario's row to the report (returned)."""
        if self.producer is not None and self.load_stopped_at is None:
            await self.stop_load()
        attempts = self.attempts
        sent = {(a.key, a.seq) for a in attempts if a.ok}

        async def all_processed() -> bool:
            return sent <= {(d["key"], d["seq"]) for d in await self.done()}

        with contextlib.suppress(AssertionError):  # a loss is reported by the tally
            await self.wait_for(all_processed, "every acknowledged event processed", SANITY)
        with contextlib.suppress(AssertionError, RedisError):
            await self.wait_for(lambda: self._no_pending(), "nothing pending", 15)
        with contextlib.suppress(RedisError):
            self.notes["pending at end"] = await self.pending()
            self.notes["fenced counter"] = int(
                await self.client.get(self.stream.keys.fenced(PROC)) or 0
            )
        for worker in self.live:
            self._sample(worker)
        self._note_logs()
        if stop_workers:
            codes = await asyncio.gather(*(w.stop(within=SANITY) for w in self.live))
            self.notes["exit codes at the end"] = sorted(set(codes))
        return self.row()

    async def _no_pending(self) -> bool:
        return await self.pending() == 0

    def _note_logs(self) -> None:
        self.notes["acks refused"] = sum(sum(refused_acks(w)) for w in self.workers)
        self.notes["lease losses"] = self.lease_losses()
        for level in ("warning", "error", "critical"):
            self.notes[f"{level} lines"] = sum(len(w.messages(level)) for w in self.workers)

    def row(self) -> Row:
        """The scenario's report row from everything recorded so far (added to the report)."""
        t = audit.tally(self.attempts, self._done)
        assert t.phantoms == [], f"records of events never sent: {t.phantoms[:5]}"
        last = max(self.faults, key=lambda f: f.start, default=None)
        if last is not None:
            # Drained once the partitions are processed again, and the fault is over.
            back = audit.recovery(self.attempts, self._done, last.start)
            earliest = max(last.end, last.start + (back or 0.0))
            drain = audit.caught_up(self.attempts, self._done, last.start, earliest)
        elif self.load_stopped_at is not None:
            drain = audit.drained_after(self.attempts, self._done, self.load_stopped_at)
        else:
            drain = None
        row = Row(
            scenario=self.name,
            settings=self.settings,
            sent=t.sent,
            lost=len(t.lost),
            duplicated=len(t.duplicated),
            reordered=len(t.reordered),
            recovery=[audit.recovery(self.attempts, self._done, f.start) for f in self.faults],
            drain=drain,
            peak_rss_mb=self.peak_rss_mb,
            failed_sends=t.failed,
            ambiguous=t.ambiguous,
            processed=t.processed,
            seconds=time.time() - self._started,
            faults=list(self.faults),
            notes={
                **self.notes,
                "send failures": t.failures,
                "lost (first 5)": t.lost[:5],
                "duplicated (first 5)": t.duplicated[:5],
                "reordered (first 5)": t.reordered[:5],
            },
        )
        self.rows.append(row)
        print("\n".join(audit.table([row])))  # shown with -s, or under a failure
        return row
