"""Operating a running deployment from Python: status, offsets, skips, dead letters, tail.

:class:`Admin` is what the ``runnel status``, ``processor``, ``deadletter`` and ``tail``
commands call, and what your own tools and tests can call: every result is a typed
pydantic model (``model_dump_json()`` gives the stable JSON the CLI prints with
``--json``). It works on every backend, the in-memory one included, and reads only
summaries: a status costs a few round trips per processor, whatever the stream holds.

Example:
    >>> import asyncio
    >>> from runnel import App, Record
    >>> app = App(name="doc-ops", redis_url="memory://doc-ops")
    >>> class Tick(Record):
    ...     key: str
    >>> ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    >>> @app.processor(ticks)
    ... async def count(events):
    ...     async for event in events:
    ...         pass
    >>> admin = Admin(app)
    >>> _ = asyncio.run(ticks.send(Tick(key="a"), Tick(key="b")))
    >>> status = asyncio.run(admin.status())
    >>> [(p.number, p.lag) for p in status.streams[0].processors[0].partitions]
    [(0, 0), (1, 2)]
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from runnel.domain import membership as members_record
from runnel.domain.failures import ERROR_PREFIX, read_dead_letter
from runnel.domain.ids import MIN_ID, StreamId
from runnel.domain.keys import leader_epoch_key, leader_key
from runnel.domain.offsets import entry_time, parse_entry_id, parse_target
from runnel.domain.resize import RESIZING_FIELD, Position, barrier
from runnel.errors import Misconfigured, RunnelError
from runnel.ports import Append, GroupProbe, GroupSnapshot, MembershipKeys
from runnel.runtime import admin as ops
from runnel.runtime.resizing import grow
from runnel.runtime.specs import ProcessorSpec

if TYPE_CHECKING:
    from runnel.app import App
    from runnel.stream import Stream

MISSED_BEATS = 3
"""A member whose heartbeat is this many ticks old is dead (as the coordinator judges)."""


class UnknownName(Misconfigured):
    """A stream, processor or dead-letter sink the App does not have."""


# --------------------------------------------------------------------------- models


class Owner(BaseModel):
    """Who holds a partition's lease."""

    executor: str
    worker: str | None = None
    host: str | None = None
    pid: int | None = None
    epoch: int | None = None
    lease_left: float | None = Field(None, description="seconds until the lease expires")


class PartitionStatus(BaseModel):
    """One partition of one processor."""

    number: int
    owner: Owner | None
    length: int
    last_delivered_id: str | None
    lag: int | None = Field(description="entries not yet delivered (None: unknown)")
    pending: int
    oldest_pending_id: str | None
    oldest_pending_age: float | None = Field(description="seconds since it was appended")
    oldest_pending_deliveries: int = Field(
        description="times the oldest pending entry was delivered (a poison pill in a crash "
        "loop is delivered again by every new owner)"
    )
    oldest_pending_idle: float | None = Field(description="seconds since its last delivery")
    quarantine: dict[str, Any] | None
    halted: dict[str, Any] | None = Field(
        description="what halted a worker on this partition (while entries stay pending)"
    )
    dead_letters: int | None = Field(description="entries in its dead-letter partition")


class MemberStatus(BaseModel):
    """One executor in a processor's membership."""

    executor: str
    worker: str
    host: str | None
    pid: int | None
    partitions: list[int]
    heartbeat_age: float | None = Field(description="seconds since its last heartbeat")
    alive: bool


class ProcessorStatus(BaseModel):
    """One processor: its partitions, members and counters."""

    name: str
    stream: str
    exception_policy: str
    partitions: list[PartitionStatus]
    members: list[MemberStatus]
    fenced_refusals: int
    dead_letter_stream: str | None
    skips: int
    resize_waiting: list[int] = Field(
        default_factory=list,
        description="old partitions a stream resize waits for: not yet processed up to "
        "their switch point (the new partitions are held until none is left)",
    )


class StreamStatus(BaseModel):
    """One stream and the processors reading it."""

    name: str
    partition_count: int
    lossy_trimmed: int
    processors: list[ProcessorStatus]
    resize_history: list[int] = Field(
        default_factory=list, description="the partition counts the stream has had"
    )
    resize_under_way: int | None = Field(
        None, description="the count a resize that has not finished is growing it to"
    )


class Leader(BaseModel):
    """The worker that runs leader-only tasks."""

    worker: str
    epoch: int | None
    lease_left: float | None


class AppStatus(BaseModel):
    """Everything ``runnel status`` shows."""

    app: str
    time: datetime
    leader: Leader | None
    streams: list[StreamStatus]


class PartitionReset(BaseModel):
    """What a reset does (``dry_run``) or did to one partition."""

    partition: int
    before: str | None
    after: str
    reread: int
    skipped: int
    pending_forgotten: int
    held_by: str | None


class ResetReport(BaseModel):
    """A reset's plan or outcome."""

    processor: str
    target: str
    dry_run: bool
    partitions: list[PartitionReset]


class ResizeReport(BaseModel):
    """What a stream resize did (or, ``dry_run``, would do)."""

    stream: str
    before: int
    after: int
    dry_run: bool
    history: list[int] = Field(description="the partition counts the stream has had")
    new_partitions: list[int]
    groups: list[str] = Field(description="consumer groups created on the new partitions")
    switch_points: dict[int, str] = Field(
        description="per old partition, the id of its switch marker entry"
    )


class SkipReport(BaseModel):
    """An entry an operator skipped."""

    processor: str
    partition: int
    entry_id: str
    was: str
    by: str
    time: str
    forced: bool
    quarantine_cleared: bool


class DeadLetterView(BaseModel):
    """One dead letter: where it came from, what failed, and the original entry."""

    sink: str
    sink_partition: int
    id: str
    time: str
    processor: str
    stream: str
    source_partition: int | None
    source_id: str
    error_type: str
    error_message: str
    record: dict[str, Any] | None = Field(description="the original record, when it decodes")
    raw: dict[str, str] = Field(description="the original fields (UTF-8, else repr)")
    decode_error: str | None
    replayed_as: str | None


class ReplayReport(BaseModel):
    """What a replay sent back, and what it left alone."""

    replayed: list[DeadLetterView]
    new_ids: list[str]
    already_replayed: list[str]
    ordering: str


class TailRecord(BaseModel):
    """One entry of a stream, as ``runnel tail`` prints it."""

    stream: str
    partition: int
    id: str
    time: str
    record: dict[str, Any] | None
    raw: dict[str, str] | None
    decode_error: str | None


# --------------------------------------------------------------------------- helpers


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return repr(raw)


def _worker_parts(worker: str | None) -> tuple[str | None, int | None]:
    """Host and pid of a worker id ``<host>-<pid>-<hex>`` (None where it has no such form)."""
    if not worker:
        return None, None
    parts = worker.rsplit("-", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None, None


def operator() -> str:
    """Who runs this command: ``user@host``, as recorded with a skip or a replay."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _age(sid: bytes | None, now: datetime) -> float | None:
    if sid is None:
        return None
    return round(max(0.0, (now - entry_time(StreamId.parse(sid))).total_seconds()), 3)


class Admin:
    """Operators' view and levers over one App's deployment (see the module).

    Args:
        app: the App whose streams and processors are administered; its backend is used.
    """

    def __init__(self, app: App) -> None:
        self.app = app

    # ------------------------------------------------------------------ names

    def processor_spec(self, name: str) -> ProcessorSpec:
        """The processor registered as ``name``.

        Raises:
            runnel.errors.UnknownProcessor: no such processor (the message lists them).
        """
        (spec,) = self.app.processor_specs([name])
        return spec

    def stream(self, name: str) -> Stream[Any]:
        """The stream declared as ``name``.

        Raises:
            UnknownName: no such stream (the message lists them).
        """
        found = self.app.streams.get(name)
        if found is None:
            raise UnknownName(
                f"unknown stream {name!r}; available: {', '.join(sorted(self.app.streams))}"
            )
        return found

    def dead_letter_sink(self, processor: str) -> Stream[Any]:
        """The dead-letter stream of ``processor`` (its DeadLetterMiddleware's sink).

        Raises:
            UnknownName: the processor dead-letters nothing.
        """
        sink = self._sink_of(self.processor_spec(processor))
        if sink is None:
            raise UnknownName(f"processor {processor!r} has no DeadLetterMiddleware")
        return sink

    def _sink_of(self, spec: ProcessorSpec) -> Stream[Any] | None:
        from runnel.middleware.dead_letter import DeadLetterMiddleware

        for step in spec.middleware:
            if isinstance(step, DeadLetterMiddleware):
                return step.sink
        return None

    # ------------------------------------------------------------------ status

    async def status(self, processor: str | None = None) -> AppStatus:
        """Per stream, processor and partition: owner, lease, position, lag, pending,
        quarantine and dead letters; members with their heartbeats; the leader.

        Read-only, and a few round trips per processor whatever the streams hold.

        Raises:
            runnel.errors.UnknownProcessor: ``processor`` is not registered.
        """
        specs = self.app.processor_specs(None if processor is None else [processor])
        backend = self.app.backend
        now = backend.clock.wall()
        app_name = self.app.name
        lead = await backend.admin.peek([leader_key(app_name), leader_epoch_key(app_name)])
        leader = None
        if lead[0].value is not None:
            token = _text(lead[0].value)
            worker, _, epoch = token.rpartition(":")
            leader = Leader(
                worker=worker or token,
                epoch=int(epoch) if epoch.isdigit() else None,
                lease_left=lead[0].ttl,
            )
        streams: dict[str, StreamStatus] = {}
        for spec in specs:
            stream = self.app.streams[spec.stream.name]
            entry = streams.get(stream.name)
            if entry is None:
                stored = await self._reload(stream)
                (lost,) = await backend.admin.peek([stream.keys.lost()])
                under_way = stored.get(RESIZING_FIELD, b"")
                entry = streams[stream.name] = StreamStatus(
                    name=stream.name,
                    partition_count=stream.partition_count,
                    lossy_trimmed=int(lost.value or b"0"),
                    processors=[],
                    resize_history=list(stream.store.history)
                    if len(stream.store.history) > 1
                    else [],
                    resize_under_way=int(under_way) if under_way.isdigit() else None,
                )
            spec = self.app.processors[spec.name]  # routed with a grown count, if found
            entry.processors.append(await self._processor_status(spec, now))
        return AppStatus(app=app_name, time=now, leader=leader, streams=list(streams.values()))

    async def _processor_status(self, spec: ProcessorSpec, now: datetime) -> ProcessorStatus:
        backend = self.app.backend
        keys = spec.stream.keys
        numbers = list(range(spec.stream.partition_count))
        snaps = await backend.admin.snapshot(ops.probes(spec, numbers))
        record = await backend.membership.read(_membership_keys(spec))
        try:
            members = members_record.decode(record.value)
        except ValueError:
            members = {}
        executors = sorted(members)
        # One refusal counter per processor, or per partition in the cluster key layout.
        counters = list(
            dict.fromkeys(
                [keys.fenced(spec.name)] + [keys.fenced_counter(spec.name, n) for n in numbers]
            )
        )
        beats = await backend.admin.peek(counters + [keys.beat(spec.name, e) for e in executors])
        fenced, beats = beats[: len(counters)], beats[len(counters) :]
        quarantined = await ops.quarantines(backend.kv, spec)
        halted = await ops.halts(backend.kv, spec)
        skipped = await backend.kv.hash_get_all(keys.skips(spec.name))
        sink = self._sink_of(spec)
        sink_lengths: list[int] | None = None
        if sink is not None:
            sink_snaps = await backend.admin.snapshot(
                [
                    GroupProbe(key, spec.name, keys.lock(spec.name, 0))
                    for key in sink.spec.partition_keys
                ]
            )
            sink_lengths = [s.length for s in sink_snaps]
        tick = min(spec.heartbeat_interval, spec.lock_expiry / 4)
        worker_of = {e: m.worker for e, m in members.items()}
        partitions = []
        for number, snap in zip(numbers, snaps, strict=True):
            owner = None
            if snap.holder is not None:
                executor, _, epoch = _text(snap.holder).rpartition(":")
                worker = worker_of.get(executor)
                host, pid = _worker_parts(worker)
                owner = Owner(
                    executor=executor,
                    worker=worker,
                    host=host,
                    pid=pid,
                    epoch=int(epoch) if epoch.isdigit() else None,
                    lease_left=snap.lease_left,
                )
            group = snap.group
            partitions.append(
                PartitionStatus(
                    number=number,
                    owner=owner,
                    length=snap.length,
                    last_delivered_id=_text(group.last_delivered_id) if group else None,
                    lag=group.lag if group else None,
                    pending=group.pending if group else 0,
                    oldest_pending_id=_text(snap.oldest_pending) if snap.oldest_pending else None,
                    oldest_pending_age=_age(snap.oldest_pending, now),
                    oldest_pending_deliveries=snap.oldest_deliveries,
                    oldest_pending_idle=None
                    if snap.oldest_idle is None
                    else round(snap.oldest_idle, 3),
                    quarantine=quarantined.get(number),
                    halted=halted.get(number) if group is not None and group.pending else None,
                    dead_letters=None
                    if sink_lengths is None
                    else sink_lengths[number % len(sink_lengths)],
                )
            )
        member_list = []
        for executor, beat in zip(executors, beats, strict=True):
            worker = members[executor].worker
            host, pid = _worker_parts(worker)
            age = None if beat.ttl is None else round(max(0.0, MISSED_BEATS * tick - beat.ttl), 3)
            member_list.append(
                MemberStatus(
                    executor=executor,
                    worker=worker,
                    host=host,
                    pid=pid,
                    partitions=sorted(members[executor].partitions),
                    heartbeat_age=age,
                    alive=beat.value is not None,
                )
            )
        history = self.app.streams[spec.stream.name].store.history
        waiting = await self._resize_waiting(spec, history, snaps) if len(history) > 1 else []
        return ProcessorStatus(
            resize_waiting=waiting,
            name=spec.name,
            stream=spec.stream.name,
            exception_policy=spec.exception_policy.value,
            partitions=partitions,
            members=member_list,
            fenced_refusals=sum(int(peek.value or b"0") for peek in fenced),
            dead_letter_stream=sink.name if sink is not None else None,
            skips=len(skipped),
        )

    async def _reload(self, stream: Stream[Any]) -> dict[bytes, bytes]:
        """The stream's stored metadata; the stream routes with a grown count after it."""
        await stream.store.reload()
        return await self.app.backend.kv.hash_get_all(stream.keys.meta())

    async def _resize_waiting(
        self, spec: ProcessorSpec, history: Sequence[int], snaps: Sequence[GroupSnapshot]
    ) -> list[int]:
        """The old partitions the last resize still waits for, for this processor."""
        kv, keys = self.app.backend.kv, spec.stream.keys
        switches: dict[tuple[int, int], StreamId] = {}
        for p in range(history[-2]):
            record = await kv.hash_get_all(keys.resize(p))
            for grown in history[1:]:
                raw = record.get(str(grown).encode())
                if raw is not None:
                    switches[(p, grown)] = StreamId.parse(raw)
        positions = {}
        for p, snap in enumerate(snaps[: history[-2]]):
            group = snap.group
            positions[p] = Position(
                StreamId.parse(group.last_delivered_id) if group is not None else None,
                StreamId.parse(snap.oldest_pending) if snap.oldest_pending else None,
            )
        return sorted(barrier(history, switches, positions).waiting)

    # ------------------------------------------------------------------ resizing

    async def resize_stream(
        self, stream: str, partitions: int, dry_run: bool = False
    ) -> ResizeReport:
        """Grow ``stream`` to ``partitions`` partitions, online, keeping every key in order.

        The new partitions and their consumer groups are created, each old partition gets
        a switch point, and the stream's metadata the new count. Senders route with the
        new count from then on (one that still routes with the old one is refused by the
        partition, reads the new count and sends again); each processor processes every
        old partition up to its switch point before anything after it, or anything in a
        new partition (see :mod:`runnel.domain.resize`). Running it again finishes an
        interrupted resize.

        Raises:
            UnknownName: the App declares no such stream.
            runnel.runtime.resizing.NotResizable: the stream was never used, it would
                shrink, or a resize to another count is under way (nothing changed).

        Example:
            >>> import asyncio
            >>> from runnel import App, Record
            >>> app = App(name="doc-resize", redis_url="memory://doc-resize")
            >>> class Tick(Record):
            ...     key: str
            >>> ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
            >>> _ = asyncio.run(ticks.send(Tick(key="a")))
            >>> report = asyncio.run(Admin(app).resize_stream("ticks", partitions=4))
            >>> report.before, report.after, ticks.partition_count
            (2, 4, 4)
        """
        found = self.stream(stream)
        groups = [p.name for p in self.app.processors.values() if p.stream.name == stream]
        grown = await grow(self.app.backend, found.store.spec, partitions, groups, dry_run)
        if not dry_run:
            await found.store.reload()
        return ResizeReport(
            stream=found.name,
            before=grown.before,
            after=grown.after,
            dry_run=grown.dry_run,
            history=list(grown.history),
            new_partitions=list(grown.new_partitions),
            groups=list(grown.groups),
            switch_points={p: _text(point) for p, point in grown.switch_points.items()},
        )

    # ------------------------------------------------------------------ offsets

    async def reset(
        self,
        processor: str,
        to: str,
        partitions: Sequence[int] | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> ResetReport:
        """Move ``processor`` on ``partitions`` (all by default) to ``to``: ``earliest``,
        ``latest``, an entry id or an ISO 8601 time (see :mod:`runnel.domain.offsets`).

        Everything is validated before anything is touched. With ``dry_run``, nothing is
        changed and the report says what would move. A partition a worker holds is
        refused unless ``force``; forced, the worker is fenced out and takes the
        partition again from the new position.

        Raises:
            runnel.errors.Misconfigured: an unknown processor or partition, a bad target,
                or a held partition without ``force`` (nothing changed).
        """
        spec = self.processor_spec(processor)
        try:
            target = parse_target(to)
        except ValueError as exc:
            raise Misconfigured(str(exc)) from None
        backend = self.app.backend
        moves = await ops.plan_reset(backend, spec, target, partitions)
        if not dry_run:
            await ops.apply_reset(backend, spec, moves, force)
        return ResetReport(
            processor=spec.name,
            target=to,
            dry_run=dry_run,
            partitions=[
                PartitionReset(
                    partition=m.partition,
                    before=_text(m.before) if m.before is not None else None,
                    after=_text(m.after),
                    reread=m.reread,
                    skipped=m.skipped,
                    pending_forgotten=m.pending_forgotten,
                    held_by=_text(m.holder) if m.holder is not None else None,
                )
                for m in moves
            ],
        )

    async def skip(
        self,
        processor: str,
        partition: int,
        entry_id: str,
        force: bool = False,
        by: str | None = None,
    ) -> SkipReport:
        """Acknowledge exactly ``entry_id`` of ``partition``: the way out of a poison pill.

        Only the entry the partition processes next may be skipped (the one a halted or
        quarantined partition failed on), unless ``force``. The skip is recorded (who,
        when) and the partition's quarantine lifted.

        Raises:
            runnel.errors.Misconfigured: unknown processor, partition or entry, or not the
                next entry (without ``force``); nothing changed.
        """
        spec = self.processor_spec(processor)
        try:
            sid = parse_entry_id(entry_id)
        except ValueError as exc:
            raise Misconfigured(str(exc)) from None
        done = await ops.skip_entry(self.app.backend, spec, partition, sid, by or operator(), force)
        return SkipReport(
            processor=spec.name,
            partition=done.partition,
            entry_id=done.entry_id,
            was=done.was,
            by=done.by,
            time=done.time,
            forced=done.forced,
            quarantine_cleared=done.quarantine_cleared,
        )

    async def skips(self, processor: str) -> list[dict[str, Any]]:
        """Every recorded skip of ``processor``, oldest first."""
        return await ops.skips(self.app.backend.kv, self.processor_spec(processor))

    # ------------------------------------------------------------------ dead letters

    async def dead_letters(
        self,
        processor: str,
        partition: int | None = None,
        error_type: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[DeadLetterView]:
        """The dead letters of ``processor``, oldest first, filtered by source partition,
        error type and time range (when the letter was written); at most ``limit``."""
        sink = self.dead_letter_sink(processor)
        replayed = await self._replayed(sink)
        start = b"-" if since is None else str(int(since.timestamp() * 1000)).encode()
        end = b"+" if until is None else str(int(until.timestamp() * 1000)).encode()
        found: list[DeadLetterView] = []
        for number, key in enumerate(sink.spec.partition_keys):
            for entry in await self.app.backend.log.range(key, start, end):
                view = self._view(sink, number, entry.id, entry.fields, replayed)
                if partition is not None and view.source_partition != partition:
                    continue
                if error_type is not None and view.error_type != error_type:
                    continue
                found.append(view)
        found.sort(key=lambda v: StreamId.parse(v.id))
        return found[:limit]

    async def dead_letter(self, processor: str, letter_id: str) -> DeadLetterView:
        """One dead letter of ``processor`` by its id in the sink.

        Raises:
            UnknownName: no such dead letter.
        """
        sink = self.dead_letter_sink(processor)
        try:
            sid = parse_entry_id(letter_id).encode()
        except ValueError as exc:
            raise Misconfigured(str(exc)) from None
        replayed = await self._replayed(sink)
        for number, key in enumerate(sink.spec.partition_keys):
            for entry in await self.app.backend.log.range(key, sid, sid):
                return self._view(sink, number, entry.id, entry.fields, replayed)
        raise UnknownName(f"{sink.name} has no dead letter {letter_id}")

    def _view(
        self,
        sink: Stream[Any],
        number: int,
        sid: bytes,
        fields: Mapping[bytes, bytes],
        replayed: dict[str, str],
    ) -> DeadLetterView:
        data, info = read_dead_letter(fields)
        record: dict[str, Any] | None = None
        problem = None
        try:
            record = sink.codec.decode(data).model_dump(mode="json")
        except RunnelError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        return DeadLetterView(
            sink=sink.name,
            sink_partition=number,
            id=_text(sid),
            time=info.time,
            processor=info.processor,
            stream=info.stream,
            source_partition=info.source_partition,
            source_id=info.source_id,
            error_type=info.error_type,
            error_message=info.error_message,
            record=record,
            raw={_text(k): _text(v) for k, v in data.items()},
            decode_error=problem,
            replayed_as=replayed.get(_text(sid)),
        )

    async def _replayed(self, sink: Stream[Any]) -> dict[str, str]:
        stored = await self.app.backend.kv.hash_get_all(_replayed_key(sink))
        return {_text(k): _text(v) for k, v in stored.items()}

    async def replay(self, processor: str, letters: Sequence[DeadLetterView]) -> ReplayReport:
        """Send ``letters`` back to their source partitions, each at most once.

        Each letter is first marked replayed (atomically, so two operators cannot both
        replay it), then its original fields are appended to the partition it came from.
        A replayed entry is processed after everything already in that partition: for
        its key, it comes after the events sent since it failed.
        """
        spec = self.processor_spec(processor)
        sink = self.dead_letter_sink(processor)
        source = self.app.streams[spec.stream.name]
        backend = self.app.backend
        done: list[DeadLetterView] = []
        new_ids: list[str] = []
        skipped: list[str] = []
        key = _replayed_key(sink)
        for letter in letters:
            if letter.source_partition is None or not (
                0 <= letter.source_partition < source.partition_count
            ):
                raise Misconfigured(
                    f"dead letter {letter.id} names no partition of {source.name!r}"
                )
        for letter in letters:
            field = letter.id.encode()
            claim = f"claimed by {operator()}".encode()
            stored = await backend.kv.hash_set_missing(key, {field: claim})
            if stored.get(field) != claim:
                skipped.append(letter.id)
                continue
            data = await self._original(sink, letter)
            assert letter.source_partition is not None
            target = source.spec.partition_keys[letter.source_partition]
            (new_id,) = await source.store.append([Append(target, data)])
            await backend.kv.hash_set(key, {field: new_id})
            done.append(letter.model_copy(update={"replayed_as": _text(new_id)}))
            new_ids.append(_text(new_id))
        return ReplayReport(
            replayed=done,
            new_ids=new_ids,
            already_replayed=skipped,
            ordering=(
                "replayed entries go to the end of their source partition: each is "
                "processed after every event sent since it failed, including later "
                "events of the same key"
            ),
        )

    async def _original(self, sink: Stream[Any], letter: DeadLetterView) -> dict[bytes, bytes]:
        key = sink.spec.partition_keys[letter.sink_partition]
        sid = letter.id.encode()
        found = await self.app.backend.log.range(key, sid, sid)
        if not found:
            raise Misconfigured(f"dead letter {letter.id} is gone from {sink.name}")
        entry = found[0]
        return {k: v for k, v in entry.fields.items() if not k.startswith(ERROR_PREFIX)}

    async def purge(self, processor: str, letters: Sequence[DeadLetterView]) -> int:
        """Delete ``letters`` from the dead-letter stream; how many were deleted."""
        sink = self.dead_letter_sink(processor)
        by_partition: dict[int, list[bytes]] = {}
        for letter in letters:
            by_partition.setdefault(letter.sink_partition, []).append(letter.id.encode())
        gone = 0
        for number, ids in sorted(by_partition.items()):
            key = sink.spec.partition_keys[number]
            gone += await self.app.backend.admin.delete_entries(key, ids)
        if letters:
            await self.app.backend.kv.hash_delete(
                _replayed_key(sink), *(letter.id.encode() for letter in letters)
            )
        return gone

    # ------------------------------------------------------------------ tail

    async def tail(
        self,
        stream: str,
        partitions: Sequence[int] | None = None,
        start: str | None = None,
        follow: bool = False,
        poll: float = 1.0,
    ) -> AsyncIterator[TailRecord]:
        """The entries of ``stream`` after ``start`` (an entry id or ISO time; by default
        only those that arrive from now on), decoded, without joining any consumer group.

        Without ``follow`` it ends at the newest entry; with it, it waits for more.

        Raises:
            UnknownName: no such stream; Misconfigured: a bad partition or start.
        """
        source = self.stream(stream)
        count = source.partition_count
        numbers = list(range(count)) if partitions is None else sorted(set(partitions))
        wrong = [n for n in numbers if not 0 <= n < count]
        if wrong:
            raise Misconfigured(
                f"stream {stream!r} has no partition {', '.join(map(str, wrong))} "
                f"(it has 0 to {count - 1})"
            )
        log = self.app.backend.log
        keys = {source.spec.partition_keys[n]: n for n in numbers}
        if start is not None and start.strip().lower() == "latest":
            start = None  # only what arrives from now on
        if start is None:
            snaps = await self.app.backend.admin.snapshot(
                [GroupProbe(k, "", source.keys.lost()) for k in keys]
            )
            marks = {k: (s.last_id or MIN_ID.encode()) for k, s in zip(keys, snaps, strict=True)}
        else:
            try:
                target = parse_target(start)
            except ValueError as exc:
                raise Misconfigured(str(exc)) from None
            after = target.restart_after(None)
            marks = dict.fromkeys(keys, after)
        while True:
            batch: list[tuple[StreamId, str, Any]] = []
            for key, mark in marks.items():
                for entry in await log.range(key, b"(" + mark, b"+", count=1000):
                    batch.append((StreamId.parse(entry.id), key, entry))
                    marks[key] = entry.id
            batch.sort(key=lambda item: item[0])
            for sid, key, entry in batch:
                yield self._tail_record(source, keys[key], sid, entry.fields)
            if batch:
                continue
            if not follow:
                return
            await log.wait(dict(marks), poll)

    def _tail_record(
        self, source: Stream[Any], number: int, sid: StreamId, fields: Mapping[bytes, bytes]
    ) -> TailRecord:
        record: dict[str, Any] | None = None
        raw: dict[str, str] | None = None
        problem = None
        try:
            record = source.codec.decode(fields).model_dump(mode="json")
        except RunnelError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            raw = {_text(k): _text(v) for k, v in fields.items()}
        return TailRecord(
            stream=source.name,
            partition=number,
            id=str(sid),
            time=entry_time(sid).isoformat(),
            record=record,
            raw=raw,
            decode_error=problem,
        )


def _replayed_key(sink: Stream[Any]) -> str:
    """Dead letters already replayed (hash of sink id -> new id): ``__rply:{app}.{sink}``."""
    return f"__rply:{sink.app.name}.{sink.name}"


def _membership_keys(spec: ProcessorSpec) -> MembershipKeys:
    keys = spec.stream.keys
    return MembershipKeys(
        keys.membership(spec.name), keys.membership_version(spec.name), keys.control(spec.name)
    )


def dumps(model: BaseModel) -> str:
    """A result as one line of stable JSON (what ``--json`` prints)."""
    return json.dumps(model.model_dump(mode="json"), sort_keys=False)


def utc(when: datetime) -> datetime:
    """``when`` as aware UTC (a naive time is taken as UTC)."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when


__all__ = [
    "Admin",
    "AppStatus",
    "DeadLetterView",
    "MemberStatus",
    "Owner",
    "PartitionReset",
    "PartitionStatus",
    "ProcessorStatus",
    "ReplayReport",
    "ResetReport",
    "SkipReport",
    "StreamStatus",
    "TailRecord",
    "UnknownName",
]
