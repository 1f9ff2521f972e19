"""A stream's backend side: metadata, consumer groups, capped appends and store checks.

One :class:`StreamStore` per stream and backend, built from the stream's frozen
:class:`~runnel.runtime.specs.StreamSpec`. ``Stream.send`` routes and encodes records and
hands the appends to the store; workers prepare the streams they process, check whether
the backend lost its data, and write dead letters to a sink's store.

How it works:
    **Preparing** records the stream's metadata (partition count, hash, codec, and a random
    *generation*) in ``__meta:{app}.{stream}`` with set-if-missing, refuses a stream whose
    stored metadata disagrees (:class:`~runnel.errors.MetadataMismatch`), and creates every
    declared processor's consumer group at 0 on every partition, once per store. Declaring
    a group later makes the next append prepare again.

    **Store check**: a backend that lost everything (Redis restarted without persistence,
    was flushed, or failed over to an empty replica) has lost the metadata hash too. The
    check writes it again; a generation other than the one this store recorded means the
    data is gone, and the groups are created again at 0. Checks are serialised, so one
    reset is reported once per store.

    **Appending** goes through the stream's cap: lossless and lossy appends are one call;
    in ``wait`` mode a refused batch is retried, with a growing pause, until processors make
    room or ``wait_timeout`` runs out.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> from runnel.adapters.memory.keyvalue import MemoryKeyValue
    >>> from runnel.adapters.memory.streams import MemoryStreamLog
    >>> from runnel.domain.keys import Keys
    >>> from runnel.ports import Append
    >>> broker = MemoryBroker(SimulatedClock())
    >>> spec = StreamSpec(
    ...     app="shop", name="orders", keys=Keys("shop", "orders"), partition_count=1,
    ...     partition_size=100, trim_mode="lossless", metadata={b"partition_count": b"1"},
    ...     decode=dict)
    >>> store = StreamStore(spec, MemoryStreamLog(broker), MemoryKeyValue(broker),
    ...                     broker.clock, groups=["billing"])
    >>> ids = asyncio.run(store.append([Append(spec.partition_keys[0], {b"n": b"1"})]))
    >>> store.prepared, len(ids)
    (True, 1)
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Final

from runnel.domain.resize import HISTORY_FIELD, PARTITION_COUNT, parse_history
from runnel.errors import (
    BackpressureError,
    MetadataMismatch,
    NotReplicated,
    RunnelError,
    StreamResized,
)
from runnel.ports import Append, Cap, Clock, KeyValue, Routing, StreamLog
from runnel.runtime.specs import StreamSpec
from runnel.telemetry import Metrics, NoMetrics, SendTarget, Tracing

log = logging.getLogger(__name__)

RESIZE_RETRIES: Final = 20
"""How many times a send routes again after partitions refused it as routed with an old
count (each time after reading the metadata again): a resize takes one retry, and a
resize still recording its switch points a few more."""

GENERATION: Final = b"generation"
"""Metadata field holding a random id of the store's life (see :meth:`StreamStore.check`)."""

FIRST_PAUSE: Final = 0.01
"""Seconds a ``wait``-mode send first waits for room; the pause doubles after each try."""

LONGEST_PAUSE: Final = 0.5
"""The longest pause between two tries of a ``wait``-mode send."""


class StreamStore:
    """The backend side of one stream (see the module docstring).

    Args:
        spec: the stream.
        log: the stream log it appends to and creates groups in.
        kv: where its metadata hash lives.
        clock: what ``wait``-mode sends pause on.
        groups: the consumer groups (processors) declared on the stream so far.
        wait_timeout: seconds a ``wait``-mode append waits for room
            (``default_send_wait_timeout``).
        idempotency_window: seconds an idempotency key remembers the entry it added
            (``idempotency_window``).
    """

    def __init__(
        self,
        spec: StreamSpec,
        log: StreamLog,
        kv: KeyValue,
        clock: Clock,
        groups: Iterable[str] = (),
        wait_timeout: float = 30.0,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        idempotency_window: float = 86400.0,
    ) -> None:
        self.spec = spec
        self._log = log
        self._kv = kv
        self._clock = clock
        self._groups = list(dict.fromkeys(groups))
        self._wait_timeout = wait_timeout
        self.idempotency_window = idempotency_window
        metrics = metrics if metrics is not None else NoMetrics()
        labels = {"app": spec.app, "stream": spec.name}
        self._metered = metrics.enabled
        self._sent = metrics.counter("runnel_events_sent_total", **labels)
        self._send_time = metrics.histogram("runnel_send_duration_seconds", **labels)
        self._refused = metrics.counter("runnel_backpressure_refusals_total", **labels)
        self._not_replicated = metrics.counter("runnel_sends_not_replicated_total", **labels)
        self._metrics = metrics
        self._tracing = tracing if tracing is not None and tracing.enabled else None
        self._rerouted = metrics.counter("runnel_sends_rerouted_total", **labels)
        self._prepared = False
        self._lock: asyncio.Lock | None = None
        self._cap = self._capped(spec)
        self._routing = routing_of(spec)
        self.on_resize: Callable[[StreamSpec], None] | None = None
        """Told of the new spec when the stream is found grown (the Stream routes with it)."""
        self.history: tuple[int, ...] = (spec.partition_count,)
        """The partition counts the stream has had, as last read from its metadata."""
        self.generation: bytes | None = None
        """The generation recorded in the metadata when this store prepared the stream; a
        different one later means the backend lost its data meanwhile."""

    @staticmethod
    def _capped(spec: StreamSpec) -> Cap:
        keys = spec.keys
        return Cap(
            spec.partition_size,
            "lossy" if spec.trim_mode == "lossy" else "lossless",
            keys.lost(),
            {keys.stream(n): keys.lost_counter(n) for n in range(spec.partition_count)}
            if keys.layout == "cluster"
            else None,
        )

    def __repr__(self) -> str:
        return f"<StreamStore {self.spec.app}.{self.spec.name} prepared={self._prepared}>"

    @property
    def prepared(self) -> bool:
        """Whether metadata and groups were checked and created through this store."""
        return self._prepared

    @property
    def log(self) -> StreamLog:
        """The stream log this store appends to."""
        return self._log

    @property
    def cap(self) -> Cap:
        """The cap the stream's appends go under (a ``wait``-mode stream's is lossless)."""
        return self._cap

    def declare_group(self, group: str) -> None:
        """A processor was declared on the stream: its group is created on the next append."""
        if group not in self._groups:
            self._groups.append(group)
            self._prepared = False

    # ------------------------------------------------------------------ preparing

    async def prepare(self) -> None:
        """Record (or check) the metadata and create every declared group, once."""
        if self._prepared:
            return
        async with self._serial():
            if self.prepared:  # another task finished it while we waited
                return
            await self._check_metadata()
            await self.create_groups()
            self._prepared = True

    async def check(self) -> bool:
        """Whether the backend lost this stream's data since this store prepared it.

        If the metadata hash is gone, it is recorded again with a new generation, every
        declared group is created again at 0, and True is returned; so is it when another
        process already re-recorded it. False when nothing changed (a consumer group deleted
        by hand, say), and to every later caller of the same reset.

        Raises:
            MetadataMismatch: the stream was re-created meanwhile by an App that defines it
                differently.
        """
        async with self._serial():
            known = self.generation
            await self._check_metadata()
            if known is None or self.generation == known:
                return False
            await self.create_groups()
            return True

    async def create_groups(self) -> None:
        """Every declared group on every partition, at 0 (a group that exists is kept)."""
        for group in list(self._groups):
            for key in self.spec.partition_keys:
                await self._log.ensure_group(key, group, b"0")

    def _serial(self) -> asyncio.Lock:
        """The lock serialising preparation and checks (made in the running loop)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def _check_metadata(self) -> None:
        spec = self.spec
        wanted = spec.metadata
        stored = await self._kv.hash_set_missing(
            spec.keys.meta(), {**wanted, GENERATION: os.urandom(8).hex().encode()}
        )
        self._adopt(stored)
        wanted = self.spec.metadata
        for field, value in wanted.items():
            found = stored.get(field)
            if found is not None and found != value:
                raise MetadataMismatch(
                    f"stream {spec.app}.{spec.name}: {field.decode()} is "
                    f"{found.decode()!r} in the backend but {value.decode()!r} in this App; "
                    "refusing to re-route events (migrate the stream or fix the definition)"
                )
        self.generation = stored.get(GENERATION)

    def _adopt(self, stored: Mapping[bytes, bytes]) -> None:
        """Route with the stored partition count if the stream grew from this App's count.

        A count that is neither the stored one nor in the stream's resize history is left
        for the caller to refuse (:class:`~runnel.errors.MetadataMismatch`).
        """
        spec = self.spec
        raw = stored.get(PARTITION_COUNT, b"")
        if not raw.isdigit():
            return
        count = int(raw)
        history = parse_history(stored.get(HISTORY_FIELD), count)
        self.history = history
        if count == spec.partition_count or spec.partition_count not in history:
            return
        if count < spec.partition_count:
            return  # never adopt a smaller count: refused as a mismatch
        log.info(
            "stream %s.%s has grown from %d to %d partitions: routing with %d",
            spec.app,
            spec.name,
            spec.partition_count,
            count,
            count,
        )
        self.spec = replace(
            spec,
            partition_count=count,
            metadata={**spec.metadata, PARTITION_COUNT: raw},
        )
        self._cap = self._capped(self.spec)
        self._routing = routing_of(self.spec)
        self._prepared = False  # the new partitions need the declared groups too
        if self.on_resize is not None:
            self.on_resize(self.spec)

    async def reload(self) -> int:
        """Read the stream's metadata again and route with a grown count; the count.

        Example:
            What a sender does when a partition refuses its routing; workers call it to
            notice a resize too.
        """
        stored = await self._kv.hash_get_all(self.spec.keys.meta())
        if stored:
            async with self._serial():
                self._adopt(stored)
        return self.spec.partition_count

    # ------------------------------------------------------------------ appending

    async def append(self, appends: Sequence[Append]) -> list[bytes]:
        """Append routed, encoded entries under the stream's cap; their ids.

        With tracing on, the append is a producer span whose trace context every entry
        carries; with metrics on, it is counted and timed.

        Raises:
            runnel.errors.BackpressureError: the cap refused the batch (nothing was
                written); in ``wait`` mode, once ``wait_timeout`` has run out, or at
                once when the batch holds more entries for one partition than
                ``partition_size``.
            runnel.errors.MetadataMismatch: the stream exists with other settings.
        """
        if self._tracing is None and not self._metered:
            return await self._append(appends)
        span = None
        if self._tracing is not None:
            span = self._tracing.send(self._target(appends))
            carrier = span.carrier
            if carrier:
                appends = [replace(a, fields={**a.fields, **carrier}) for a in appends]
        started = self._clock.now()
        try:
            ids = await self._append(appends)
        except BaseException as exc:
            if isinstance(exc, NotReplicated):
                self._not_replicated.inc()
            if isinstance(exc, Exception):  # not a cancellation
                self._send_error(exc)
            if span is not None:
                span.end(exc)
            raise
        if span is not None:
            span.end()
        self._sent.inc(len(ids))
        self._send_time.observe(self._clock.now() - started)
        return ids

    def _send_error(self, exc: Exception) -> None:
        """Count a failed send by its error's class (runnel's own classes, a bounded set)."""
        error = type(exc).__name__ if isinstance(exc, RunnelError) else "other"
        spec = self.spec
        self._metrics.counter(
            "runnel_send_errors_total", app=spec.app, stream=spec.name, error=error
        ).inc()

    def _target(self, appends: Sequence[Append]) -> SendTarget:
        spec = self.spec
        keys = {a.key for a in appends}
        partition = spec.partition_keys.index(next(iter(keys))) if len(keys) == 1 else None
        return SendTarget(f"{spec.app}.{spec.name}", len(appends), partition)

    async def _append(self, appends: Sequence[Append]) -> list[bytes]:
        """Append, routing again what a grown stream refused (see :mod:`runnel.domain.resize`).

        A partition that routes with a newer count refuses the entries sent to it (and
        only those: on Redis Cluster the other partitions take theirs). The metadata is
        read again, those entries are routed with the new count and sent again; while a
        resize is still recording its switch points the metadata shows the old count, so
        the send waits a little and reads it again.
        """
        await self.prepare()
        ids: list[bytes] = [b""] * len(appends)
        todo = list(range(len(appends)))
        batch = list(appends)
        pause = FIRST_PAUSE
        for attempt in range(RESIZE_RETRIES + 1):
            try:
                done = await self._capped_append(batch)
            except StreamResized as exc:
                if attempt == RESIZE_RETRIES or any(a.route is None for a in batch):
                    raise
                written = exc.ids or [b""] * len(batch)
                for index, new_id in zip(todo, written, strict=True):
                    ids[index] = new_id
                left = [(i, a) for i, a in zip(todo, batch, strict=True) if not ids[i]]
                before = self.spec.partition_count
                if await self.reload() == before:
                    await self._clock.sleep(pause)  # the resize is still under way
                    pause = min(pause * 2, LONGEST_PAUSE)
                await self.prepare()
                keys, count = self.spec.partition_keys, self.spec.partition_count
                todo = [i for i, _ in left]
                batch = [replace(a, key=keys[(a.route or 0) % count]) for _, a in left]
                self._rerouted.inc(len(batch))
                continue
            for index, new_id in zip(todo, done, strict=True):
                ids[index] = new_id
            return ids
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _capped_append(self, appends: Sequence[Append]) -> list[bytes]:
        routing = self._routing
        if self.spec.trim_mode != "wait":
            try:
                return await self._log.append(appends, self._cap, self.idempotency_window, routing)
            except BackpressureError:
                self._refused.inc()
                raise
        clock = self._clock
        timeout = self._wait_timeout
        deadline = clock.now() + timeout
        pause = FIRST_PAUSE
        while True:
            try:
                return await self._log.append(appends, self._cap, self.idempotency_window, routing)
            except BackpressureError as exc:
                self._refused.inc()
                oversized = self._oversized(appends)
                if oversized is not None:
                    raise BackpressureError(oversized) from exc
                left = deadline - clock.now()
                if left <= 0:
                    raise BackpressureError(
                        f"stream {self.spec.app}.{self.spec.name}: still no room for the batch "
                        f"after waiting {timeout:g}s (default_send_wait_timeout) for its "
                        f"processors to acknowledge entries; nothing was sent: {exc}"
                    ) from exc
                await clock.sleep(min(pause, left))
                pause = min(pause * 2, LONGEST_PAUSE)

    def _oversized(self, appends: Sequence[Append]) -> str | None:
        """Why the batch can never fit under the lossless cap, if it cannot."""
        spec = self.spec
        numbers = {key: n for n, key in enumerate(spec.partition_keys)}
        for key, count in Counter(item.key for item in appends).items():
            if count > spec.partition_size:
                return (
                    f"stream {spec.app}.{spec.name}: the batch has {count} events for "
                    f"partition {numbers.get(key, key)}, more than its partition_size of "
                    f"{spec.partition_size}, so it can never fit under the lossless cap; "
                    "nothing was sent (send fewer events at a time)"
                )
        return None

    async def lost(self) -> int:
        """How many unprocessed entries a lossy cap has trimmed from the stream."""
        total = 0
        for key in self.spec.keys.lost_counters(self.spec.partition_count):
            raw = await self._kv.get(key)
            total += int(raw) if raw else 0
        return total


def routing_of(spec: StreamSpec) -> Routing:
    """The routing an append to ``spec``'s partitions is checked against."""
    keys = spec.keys
    return Routing(
        spec.partition_count,
        {keys.stream(n): keys.resize(n) for n in range(spec.partition_count)},
    )
