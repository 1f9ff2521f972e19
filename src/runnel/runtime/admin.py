"""Operators' commands on a processor: reset its consumer groups, list and lift quarantines.

``App.reset_processor``, ``App.quarantined`` and ``App.clear_quarantine`` (and the
``runnel processor`` and ``runnel quarantine`` commands, which call them) run these on the
App's backend.

Example:
    >>> import asyncio
    >>> from runnel import App, Record
    >>> app = App(name="doc-admin", redis_url="memory://doc-admin")
    >>> class Tick(Record):
    ...     key: str
    >>> ticks = app.stream("ticks", record=Tick, partition_by="key", partition_count=2)
    >>> @app.processor(ticks)
    ... async def count(events):
    ...     async for event in events:
    ...         pass
    >>> spec = app.processor_specs(["count"])[0]
    >>> asyncio.run(reset_processor(app.backend, spec, start=b"0"))
    2
    >>> asyncio.run(quarantines(app.backend.kv, spec))
    {}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from runnel.domain.failures import quarantine_field, read_quarantines
from runnel.errors import Misconfigured
from runnel.ports import Backend, KeyValue
from runnel.runtime.specs import ProcessorSpec

log = logging.getLogger(__name__)


async def reset_processor(
    backend: Backend, spec: ProcessorSpec, start: bytes = b"0", force: bool = False
) -> int:
    """Restart the processor's group on every partition after ``start``; how many.

    Pending entries are forgotten (``start=b"0"`` re-reads everything the stream holds,
    ``b"$"`` only what comes next).

    Raises:
        Misconfigured: a worker holds one of the processor's partitions (and not ``force``).
    """
    stream = spec.stream
    if not force:
        for n in range(stream.partition_count):
            if await backend.locks.holder(stream.keys.lock(spec.name, n)) is not None:
                raise Misconfigured(
                    f"partition {n} of {spec.name} is held by a live worker; stop the "
                    "workers first or force it (force=True, or --force on the CLI)"
                )
    for key in stream.partition_keys:
        await backend.admin.destroy_group(key, spec.name)
        await backend.admin.ensure_group(key, spec.name, start)
    log.warning("reset processor %s to start after %s", spec.name, start.decode())
    return stream.partition_count


async def quarantines(kv: KeyValue, spec: ProcessorSpec) -> dict[int, dict[str, Any]]:
    """The processor's quarantined partitions: number -> what failed, where and when."""
    return read_quarantines(await kv.hash_get_all(spec.stream.keys.quarantine(spec.name)))


async def clear_quarantine(kv: KeyValue, spec: ProcessorSpec, partition: int) -> bool:
    """Lift a quarantine (the owning worker resumes from the failed entry); False if none."""
    removed = await kv.hash_delete(
        spec.stream.keys.quarantine(spec.name), quarantine_field(partition)
    )
    return removed > 0


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
