"""A steady producer: one event per ``send`` call, at a fixed rate, over many keys.

Each event carries its key and that key's sequence number, counted per send attempt: a
number is never reused, so a failed send leaves a gap and the events that did arrive still
have increasing numbers in send order. Every attempt is kept with its outcome; a send that
raised may still have been written (the audit finds those among the processed events).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from runnel import Stream
from runnel.errors import RunnelError
from tests.integration.engine.apps.audited import Load

CATCH_UP_LIMIT = 1.0
"""Seconds the producer may fall behind its schedule (a stalled send) before it gives up
the missed slots instead of sending them in a burst."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One ``send`` call: what it sent, when (``time.time()`` just before the call), and
    how it ended (``error`` is ``"<type>: <message>"`` of a send that raised)."""

    key: str
    seq: int
    partition: int
    at: float
    ok: bool
    error: str = ""
    took: float = 0.0


@dataclass
class Producer:
    """Sends ``rate`` events a second, cycling through ``keys``, until :meth:`stop`.

    ``hot_key`` takes ``hot_share`` of all events (e.g. 0.1: every tenth); ``pad`` gives
    the payload size of the n-th event (large-event scenarios).
    """

    stream: Stream[Load]
    keys: Sequence[str]
    rate: float
    hot_key: str | None = None
    hot_share: float = 0.0
    pad: Callable[[int], int] | None = None
    attempts: list[Attempt] = field(default_factory=list)
    seqs: Counter[str] = field(default_factory=Counter)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sending in a task of the running loop."""
        assert self._task is None, "already started"
        self._task = asyncio.create_task(self._run(), name="producer")

    async def stop(self) -> None:
        """Stop after the send in progress; an unexpected error surfaces here."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    @property
    def sent(self) -> int:
        """How many sends succeeded so far."""
        return sum(1 for a in self.attempts if a.ok)

    @property
    def failed(self) -> list[Attempt]:
        """The sends that raised."""
        return [a for a in self.attempts if not a.ok]

    def _key(self, n: int) -> str:
        if self.hot_key is not None and int((n + 1) * self.hot_share) > int(n * self.hot_share):
            return self.hot_key
        return self.keys[n % len(self.keys)]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        n = 0
        while not self._stopping.is_set():
            key = self._key(n)
            seq = self.seqs[key]
            self.seqs[key] += 1
            load = Load(key=key, seq=seq, pad="x" * self.pad(n) if self.pad else "")
            at = time.time()
            error = ""
            try:
                await self.stream.send(load)
            except Exception as exc:  # every failure is data for the audit
                error = f"{error_type(exc)}: {exc}"
            took = time.time() - at
            self.attempts.append(
                Attempt(key, seq, self.stream.partition_for(load), at, not error, error, took)
            )
            n += 1
            due += 1 / self.rate
            lag = loop.time() - due
            if lag > CATCH_UP_LIMIT:
                due = loop.time()
            elif lag < 0:
                await asyncio.sleep(-lag)  # pacing the load, not waiting for an outcome


def error_type(exc: BaseException) -> str:
    """The name of a runnel error's class; anything else by its full path (an exception
    that ``send`` let through untranslated)."""
    kind = type(exc)
    if isinstance(exc, RunnelError):
        return kind.__name__
    return f"{kind.__module__}.{kind.__qualname__}"


def balanced_keys(stream: Stream[Load], per_partition: int, prefix: str = "k") -> list[str]:
    """Keys ``<prefix><n>``, exactly ``per_partition`` routed to each partition, interleaved
    so that consecutive keys go to different partitions."""
    chosen: dict[int, list[str]] = {p: [] for p in range(stream.partition_count)}
    n = 0
    while any(len(keys) < per_partition for keys in chosen.values()):
        key = f"{prefix}{n}"
        picked = chosen[stream.partition_for(Load(key=key, seq=0))]
        if len(picked) < per_partition:
            picked.append(key)
        n += 1
    return [chosen[p][i] for i in range(per_partition) for p in sorted(chosen)]
