"""The keys a worker touches, by kind: what its start-up permission check looks at.

A worker checks, before it takes any partition, that the Redis user may run every command
it will send on every kind of key it will send it to (the backend dry-runs them; see
``adapters/redis/_probe.py``). One key of each kind stands for all: ACL key patterns
name apps, not partitions. The kinds are those of :mod:`runnel.domain.keys`.

Example:
    >>> from runnel.domain.keys import Keys
    >>> needs = worker_access("shop", [ProcessorKeys(Keys("shop", "orders"), "printer", "w-1")])
    >>> needs[0]
    Access(kind='stream', key='__strm:shop.orders.0')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from runnel.domain.keys import KeyLayout, Keys, leader_epoch_key, leader_key, schedule_key

Kind = Literal[
    "stream",
    "sink",
    "meta",
    "lost",
    "lock",
    "epoch",
    "fenced",
    "membership",
    "membership_version",
    "control",
    "beat",
    "quarantine",
    "leader",
    "leader_epoch",
    "schedule",
]


@dataclass(frozen=True, slots=True)
class Access:
    """A kind of key a worker sends commands to, and one key of that kind."""

    kind: Kind
    key: str


@dataclass(frozen=True, slots=True)
class ProcessorKeys:
    """What a worker runs for one processor: its stream's keys, its name, its executor,
    and the keys of the streams it dead-letters to."""

    keys: Keys
    processor: str
    executor_id: str
    sinks: tuple[Keys, ...] = ()


def worker_access(
    app: str,
    processors: Sequence[ProcessorKeys],
    leader_tasks: Iterable[str] = (),
    layout: KeyLayout = "single",
) -> list[Access]:
    """Every kind of key a worker of ``app`` touches, with one key of each (deduplicated).

    Example:
        >>> [a.kind for a in worker_access("shop", [], ["nightly"])]
        ['leader', 'leader_epoch', 'schedule']
    """
    found: list[Access] = []
    for p in processors:
        keys, name = p.keys, p.processor
        found += [
            Access("stream", keys.stream(0)),
            Access("meta", keys.meta()),
            Access("lost", keys.lost()),
            Access("lock", keys.lock(name, 0)),
            Access("epoch", keys.epoch(name, 0)),
            Access("fenced", keys.fenced(name)),
            Access("membership", keys.membership(name)),
            Access("membership_version", keys.membership_version(name)),
            Access("control", keys.control(name)),
            Access("beat", keys.beat(name, p.executor_id)),
            Access("quarantine", keys.quarantine(name)),
        ]
        for sink in p.sinks:
            found += [Access("sink", sink.stream(0)), Access("meta", sink.meta())]
    found += [
        Access("leader", leader_key(app, layout)),
        Access("leader_epoch", leader_epoch_key(app, layout)),
    ]
    found += [Access("schedule", schedule_key(app, task)) for task in leader_tasks]
    return list(dict.fromkeys(found))
