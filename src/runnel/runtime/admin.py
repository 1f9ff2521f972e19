"""Operators' commands on a processor: move its position, skip an entry, quarantines.

These work on a processor's spec and the backend's ports only, so they run on Redis and
on the memory backend alike. :mod:`runnel.admin` (and so the ``runnel`` command line and
``App.reset_processor``, ``App.quarantined``, ``App.clear_quarantine``) call them.

Every command validates everything it was given before it changes anything, and a change
to a partition a worker is processing goes through the partition's fence: the lease is
dropped in the same atomic step, so the worker's next read or acknowledgement is refused
and the partition is taken again, under a new epoch, from the new position.

Example:
    >>> import asyncio
    >>> from runnel import App, Record
    >>> from runnel.domain.offsets import parse_target
    >>> app = App(name="doc-admin", redis_url="memory://doc-admin")
    >>> class Tick(Record):
    ...     key: str
    >>> ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    >>> @app.processor(ticks)
    ... async def count(events):
    ...     async for event in events:
    ...         pass
    >>> spec = app.processor_specs(["count"])[0]
    >>> moves = asyncio.run(plan_reset(app.backend, spec, parse_target("earliest")))
    >>> [(m.partition, m.reread, m.skipped) for m in moves]
    [(0, 0, 0), (1, 0, 0)]
    >>> asyncio.run(quarantines(app.backend.kv, spec))
    {}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runnel.domain.failures import quarantine_field, read_quarantines
from runnel.domain.ids import MIN_ID, StreamId
from runnel.domain.offsets import SKIPPABLE, NextEntry, ResetTarget, TargetKind, next_entry
from runnel.errors import Misconfigured
from runnel.ports import AckRequest, Backend, GroupProbe, GroupSnapshot, KeyValue
from runnel.runtime.specs import ProcessorSpec

log = logging.getLogger(__name__)


class HeldByWorker(Misconfigured):
    """A command that needs ``force`` found a live worker holding a partition."""


class NotNext(Misconfigured):
    """A skip named an entry that is not the one its partition processes next."""


def probes(spec: ProcessorSpec, partitions: Sequence[int]) -> list[GroupProbe]:
    """What :meth:`StreamAdmin.snapshot` reads for ``partitions`` of ``spec``."""
    keys = spec.stream.keys
    return [
        GroupProbe(spec.stream.partition_keys[n], spec.name, keys.lock(spec.name, n))
        for n in partitions
    ]


def checked_partitions(spec: ProcessorSpec, partitions: Sequence[int] | None) -> list[int]:
    """``partitions`` (every one when None), each checked to exist, in order.

    Raises:
        Misconfigured: a partition the stream does not have.
    """
    count = spec.stream.partition_count
    if partitions is None:
        return list(range(count))
    wrong = [n for n in partitions if not 0 <= n < count]
    if wrong:
        raise Misconfigured(
            f"stream {spec.stream.name!r} has no partition {', '.join(map(str, wrong))} "
            f"(it has 0 to {count - 1})"
        )
    return sorted(set(partitions))


@dataclass(frozen=True, slots=True)
class PartitionMove:
    """What a reset does (or did) to one partition.

    Attributes:
        partition: its number.
        before: the group's last-delivered id before the reset (None: no group yet).
        after: the id the group restarts after (``$``: the stream's last id).
        reread: entries already delivered that will be delivered again.
        skipped: entries never delivered that never will be.
        pending_forgotten: entries delivered but not acknowledged that the reset forgets
            (those above ``after`` are read again as new entries).
        holder: the lease's token when a worker held the partition.
    """

    partition: int
    before: bytes | None
    after: bytes
    reread: int
    skipped: int
    pending_forgotten: int
    holder: bytes | None


async def plan_reset(
    backend: Backend,
    spec: ProcessorSpec,
    target: ResetTarget,
    partitions: Sequence[int] | None = None,
) -> list[PartitionMove]:
    """What resetting ``partitions`` of ``spec`` to ``target`` would do; changes nothing.

    Raises:
        Misconfigured: a partition the stream does not have.
    """
    numbers = checked_partitions(spec, partitions)
    snapshots = await backend.admin.snapshot(probes(spec, numbers))
    moves = []
    for number, snap in zip(numbers, snapshots, strict=True):
        key = spec.stream.partition_keys[number]
        newest = StreamId.parse(snap.last_id) if snap.last_id is not None else None
        after = target.restart_after(newest)
        before = snap.group.last_delivered_id if snap.group is not None else None
        reread = skipped = 0
        if snap.length:
            old = StreamId.parse(before) if before is not None else MIN_ID
            new = StreamId.parse(after) if after != b"$" else (newest or MIN_ID)
            if new < old:
                reread = await backend.admin.count(key, b"(" + new.encode(), old.encode())
            elif new > old:
                skipped = await backend.admin.count(key, b"(" + old.encode(), new.encode())
        pending = snap.group.pending if snap.group is not None else 0
        moves.append(PartitionMove(number, before, after, reread, skipped, pending, snap.holder))
    return moves


async def apply_reset(
    backend: Backend, spec: ProcessorSpec, moves: Sequence[PartitionMove], force: bool = False
) -> None:
    """Apply the planned ``moves`` (see :func:`plan_reset`), fencing out live owners.

    Raises:
        HeldByWorker: a worker holds one of the partitions (and not ``force``); nothing
            was changed.
    """
    held = [m.partition for m in moves if m.holder is not None]
    if held and not force:
        raise HeldByWorker(
            f"partition(s) {', '.join(map(str, held))} of {spec.name} are held by a live "
            "worker; stop the workers first, or force it (--force, force=True): the "
            "worker is fenced out and takes the partition again from the new position"
        )
    keys = spec.stream.keys
    await clear_halts(backend.kv, spec, [m.partition for m in moves])
    for move in moves:
        await backend.admin.move_group(
            spec.stream.partition_keys[move.partition],
            spec.name,
            move.after,
            keys.lock(spec.name, move.partition),
        )
        log.warning(
            "reset processor %s partition %d from %s to restart after %s",
            spec.name,
            move.partition,
            (move.before or b"(none)").decode(),
            move.after.decode(),
        )


async def reset_processor(
    backend: Backend, spec: ProcessorSpec, start: bytes = b"0", force: bool = False
) -> int:
    """Restart the processor's group on every partition after ``start``; how many.

    Pending entries are forgotten (``start=b"0"`` re-reads everything the stream holds,
    ``b"$"`` only what comes next). Validated first: a malformed ``start`` changes
    nothing.

    Raises:
        Misconfigured: ``start`` is not an entry id, ``0`` or ``$``; or a worker holds one
            of the processor's partitions (and not ``force``).
    """
    if start == b"$":
        target = ResetTarget(TargetKind.LATEST, None, "$")
    else:
        try:
            after = StreamId.parse(start)
        except ValueError:
            raise Misconfigured(
                f"{start.decode('utf-8', 'replace')!r} is not an entry id, '0' or '$'"
            ) from None
        target = ResetTarget(TargetKind.ENTRY_ID, after.next(), start.decode())
    moves = await plan_reset(backend, spec, target)
    await apply_reset(backend, spec, moves, force)
    return len(moves)


@dataclass(frozen=True, slots=True)
class Skipped:
    """An entry an operator skipped: where, which, how, by whom and when."""

    partition: int
    entry_id: str
    was: str
    by: str
    time: str
    forced: bool
    quarantine_cleared: bool


async def skip_entry(
    backend: Backend,
    spec: ProcessorSpec,
    partition: int,
    entry_id: StreamId,
    by: str,
    force: bool = False,
) -> Skipped:
    """Acknowledge exactly ``entry_id`` of ``partition``: only the entry the partition
    processes next (the oldest pending one, else the first undelivered one), unless
    ``force``. Records who skipped it and when, and lifts the partition's quarantine.

    Raises:
        Misconfigured: no such partition, no such entry, or it is not the next one.
    """
    (number,) = checked_partitions(spec, [partition])
    (snap,) = await backend.admin.snapshot(probes(spec, [number]))
    key = spec.stream.partition_keys[number]
    raw = entry_id.encode()
    where = f"{spec.name} partition {number}"
    source = next_entry(StreamId.parse(snap.oldest_pending) if snap.oldest_pending else None)
    expected = await _next_id(backend, key, snap, source)
    if snap.group is None:
        raise Misconfigured(f"{where} has no consumer group yet: nothing to skip")
    if expected != raw and not force:
        shown = expected.decode() if expected is not None else "none (it is caught up)"
        raise NotNext(
            f"{raw.decode()} is not the next entry of {where} (the next is {shown}); "
            "force it (--force, force=True) to skip another one"
        )
    pending = raw == snap.oldest_pending or (
        force and await _is_pending(backend, key, spec.name, raw)
    )
    if not pending and not (await backend.log.range(key, raw, raw)):
        raise Misconfigured(f"{where} has no entry {raw.decode()}")
    if not pending and snap.oldest_pending is not None:
        raise NotNext(
            f"{raw.decode()} of {where} was never delivered, and entries before it are "
            f"pending (the next is {snap.oldest_pending.decode()}): skip those first"
        )
    action = SKIPPABLE[NextEntry.PENDING if pending else NextEntry.UNDELIVERED]
    if action.acknowledge:
        acked, _ = await backend.log.exchange([AckRequest(key, spec.name, [raw])], [])
        if isinstance(acked[0], Exception):
            raise acked[0]
    if action.move_position:
        position = StreamId.parse(snap.group.last_delivered_id)
        if entry_id > position:
            await backend.admin.move_group(key, spec.name, raw)
    when = backend.clock.wall().isoformat()
    cleared = False
    stored = await quarantines(backend.kv, spec)
    if number in stored and (stored[number].get("entry_id") in (raw.decode(), None) or force):
        cleared = await clear_quarantine(backend.kv, spec, number)
    await clear_halts(backend.kv, spec, [number])
    record = Skipped(number, raw.decode(), action_name(pending), by, when, force, cleared)
    await backend.kv.hash_set(
        spec.stream.keys.skips(spec.name),
        {f"{number}:{raw.decode()}".encode(): json.dumps(_as_dict(record)).encode()},
    )
    log.warning("%s skipped %s entry %s (%s)", by, where, raw.decode(), record.was)
    return record


def action_name(pending: bool) -> str:
    """How a skipped entry was skipped, as recorded."""
    return "acknowledged" if pending else "never delivered"


def _as_dict(record: Skipped) -> dict[str, Any]:
    return {
        "partition": record.partition,
        "entry_id": record.entry_id,
        "was": record.was,
        "by": record.by,
        "time": record.time,
        "forced": record.forced,
        "quarantine_cleared": record.quarantine_cleared,
    }


async def _is_pending(backend: Backend, key: str, group: str, raw: bytes) -> bool:
    sid = StreamId.parse(raw)
    for entry in await backend.admin.pending(key, group, count=1000):
        if StreamId.parse(entry.id) == sid:
            return True
    return False


async def _next_id(
    backend: Backend, key: str, snap: GroupSnapshot, source: NextEntry
) -> bytes | None:
    """The id the partition processes next, if any."""
    if source is NextEntry.PENDING:
        return snap.oldest_pending
    if snap.group is None:
        return None
    after = snap.group.last_delivered_id
    found = await backend.log.range(key, b"(" + after, b"+", count=1)
    return found[0].id if found else None


async def skips(kv: KeyValue, spec: ProcessorSpec) -> list[dict[str, Any]]:
    """Every recorded skip of the processor, oldest first."""
    stored = await kv.hash_get_all(spec.stream.keys.skips(spec.name))
    records = [json.loads(value) for value in stored.values()]
    return sorted(records, key=lambda r: (str(r.get("time")), r.get("partition", 0)))


async def quarantines(kv: KeyValue, spec: ProcessorSpec) -> dict[int, dict[str, Any]]:
    """The processor's quarantined partitions: number -> what failed, where and when."""
    return read_quarantines(await kv.hash_get_all(spec.stream.keys.quarantine(spec.name)))


async def clear_quarantine(kv: KeyValue, spec: ProcessorSpec, partition: int) -> bool:
    """Lift a quarantine (the owning worker resumes from the failed entry); False if none."""
    removed = await kv.hash_delete(
        spec.stream.keys.quarantine(spec.name), quarantine_field(partition)
    )
    return removed > 0


async def halts(kv: KeyValue, spec: ProcessorSpec) -> dict[int, dict[str, Any]]:
    """The partitions that halted a worker: number -> what failed, when, on which worker."""
    return read_quarantines(await kv.hash_get_all(spec.stream.keys.halts(spec.name)))


async def clear_halts(kv: KeyValue, spec: ProcessorSpec, partitions: Sequence[int]) -> int:
    """Forget what halted ``partitions`` (after a skip or a reset); how many were recorded."""
    if not partitions:
        return 0
    fields = [quarantine_field(n) for n in partitions]
    return await kv.hash_delete(spec.stream.keys.halts(spec.name), *fields)


async def keyed_state(
    kv: KeyValue, spec: ProcessorSpec, partitions: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """The committed keyed state of an effectively-once processor, per partition (those
    with any state), decoded.

    Raises:
        Misconfigured: the processor was declared without ``state=``.
    """
    if spec.state is None:
        raise Misconfigured(f"processor {spec.name!r} was declared without state=")
    decode = spec.state.decode
    found: dict[int, dict[str, Any]] = {}
    for number in partitions:
        stored = await kv.hash_get_all(spec.stream.keys.state(spec.name, number))
        if stored:
            found[number] = {k.decode(): decode(v) for k, v in sorted(stored.items())}
    return found
