"""The operator's side of growing a stream: ``runnel stream resize`` and ``Admin.resize_stream``.

The steps, in this order (why, in :mod:`runnel.domain.resize`):

1. read the stream's metadata: the current count, its history, and whether another
   resize is under way (``resizing``: only a resize to that same count may continue it);
2. mark the resize under way (``resizing = N``, set only if missing);
3. create every new partition with every consumer group found on the old ones (and
   every declared processor's), at 0;
4. per old partition, atomically: append its switch marker, record the switch point and
   the routing count N (``StreamAdmin.switch``);
5. record ``partition_count = N`` and the history in the metadata; clear ``resizing``.

Every step can be repeated: a resize interrupted at any point (the process killed, Redis
unreachable) is finished by running the same command again.

Example:
    >>> import asyncio
    >>> from runnel import App, Record
    >>> app = App(name="doc-resizing", redis_url="memory://doc-resizing")
    >>> class Tick(Record):
    ...     key: str
    >>> ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    >>> _ = asyncio.run(ticks.send(Tick(key="a")))
    >>> done = asyncio.run(grow(app.backend, ticks.store.spec, 4, groups=[]))
    >>> done.before, done.after, sorted(done.switch_points)
    (2, 4, [0, 1])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from runnel.domain.resize import (
    HISTORY_FIELD,
    PARTITION_COUNT,
    RESIZING_FIELD,
    ResizeRefused,
    format_history,
    parse_history,
    plan_resize,
)
from runnel.errors import Misconfigured
from runnel.ports import Backend
from runnel.runtime.specs import StreamSpec

log = logging.getLogger(__name__)


class NotResizable(Misconfigured):
    """A resize that was refused before anything changed (the message says why)."""


@dataclass(frozen=True, slots=True)
class Grown:
    """What a resize did, or (``dry_run``) would do.

    Attributes:
        before: the stored partition count before.
        after: the count asked for.
        history: the counts the stream has had, after the resize.
        new_partitions: the partitions created.
        groups: the consumer groups created on them.
        switch_points: per old partition, the id of its switch marker.
        dry_run: whether nothing was changed.
    """

    before: int
    after: int
    history: tuple[int, ...]
    new_partitions: tuple[int, ...]
    groups: tuple[str, ...]
    switch_points: dict[int, bytes] = field(default_factory=dict)
    dry_run: bool = False


async def grow(
    backend: Backend,
    spec: StreamSpec,
    count: int,
    groups: Iterable[str],
    dry_run: bool = False,
) -> Grown:
    """Grow the stream of ``spec`` to ``count`` partitions (see the module).

    Args:
        backend: the App's backend.
        spec: the stream (its keys; the count is read from the backend).
        count: the partition count wanted.
        groups: the declared processors of the stream (their groups are created on the
            new partitions even if they never ran).
        dry_run: check and plan only.

    Raises:
        NotResizable: the stream was never used (no metadata), ``count`` would shrink
            it, or a resize to another count is under way.
    """
    keys = spec.keys
    where = f"{spec.app}.{spec.name}"
    stored = await backend.kv.hash_get_all(keys.meta())
    raw = stored.get(PARTITION_COUNT, b"")
    if not raw.isdigit():
        raise NotResizable(
            f"stream {where} has no metadata in the backend (it was never sent to or "
            "processed): nothing to resize; declare it with the partition_count you want"
        )
    current = int(raw)
    history = parse_history(stored.get(HISTORY_FIELD), current)
    under_way = stored.get(RESIZING_FIELD)
    if under_way is not None and under_way != str(count).encode():
        raise NotResizable(
            f"stream {where}: a resize to {under_way.decode()} partitions is under way "
            f"(or was interrupted); run it again with --partitions {under_way.decode()} "
            "to finish it first"
        )
    try:
        plan = plan_resize(current, count)
    except ResizeRefused as exc:
        raise NotResizable(f"stream {where}: {exc}") from None
    found: dict[str, None] = dict.fromkeys(groups)
    for p in range(current):
        for info in await backend.log.groups(keys.stream(p)):
            found.setdefault(info.name)
    names = tuple(found)
    if not plan.changes:
        if under_way is not None and not dry_run:  # interrupted after its last step
            await backend.kv.hash_delete(keys.meta(), RESIZING_FIELD)
        return Grown(current, count, history, (), names, dry_run=dry_run)
    after = (*history, count)
    if dry_run:
        return Grown(current, count, after, plan.new_partitions, names, dry_run=True)
    claimed = await backend.kv.hash_set_missing(keys.meta(), {RESIZING_FIELD: str(count).encode()})
    if claimed.get(RESIZING_FIELD) != str(count).encode():
        raise NotResizable(f"stream {where}: another resize started meanwhile; nothing changed")
    log.info("resizing stream %s from %d to %d partitions", where, current, count)
    for p in plan.new_partitions:
        for name in names:
            await backend.log.ensure_group(keys.stream(p), name, b"0")
    points: dict[int, bytes] = {}
    for p in plan.switched:
        points[p] = await backend.admin.switch(keys.stream(p), keys.resize(p), count)
    await backend.kv.hash_set(
        keys.meta(),
        {PARTITION_COUNT: str(count).encode(), HISTORY_FIELD: format_history(after)},
    )
    await backend.kv.hash_delete(keys.meta(), RESIZING_FIELD)
    log.info(
        "stream %s now has %d partitions: the new ones are processed once every old one is "
        "processed up to its switch point",
        where,
        count,
    )
    return Grown(current, count, after, plan.new_partitions, names, points)
