"""Ports: what runnel needs from the outside world, grouped by role.

Each port is a :class:`typing.Protocol` that adapters satisfy by shape
(``adapters/redis`` for Redis, ``adapters/memory`` for the in-process broker), holding the
few methods its users call:

* :class:`StreamLog`: the partitioned logs workers read and sends append to;
* :class:`StreamAdmin`: what operators' commands and tools do to them (reset a group, look
  at what is pending);
* :class:`PartitionLocks`, :class:`Membership`, :class:`KeyValue`: leases, who processes
  what, and small values (metadata, heartbeats, quarantines, schedule slots);
* :class:`StoreDiagnostics`: an optional capability: what the store's own settings could
  lose (a backend without it says nothing);
* :class:`Clock`: time, and every wait with a time limit.

The user extension points (``Serializer``, ``Compressor``, ``Middleware``) are base classes
in :mod:`runnel.interfaces`.

Conventions: durations are ``float`` seconds; an optional wait is ``float | None`` where
``None`` means "do not wait"; stream entry ids are ``bytes`` like ``b"1700000000000-3"``
(parsed into :class:`runnel.domain.ids.StreamId` where they are compared); keys are ``str``
(built by :mod:`runnel.domain.keys`); stored values are ``bytes``.

Example:
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> from runnel.adapters.memory.streams import MemoryStreamLog
    >>> log: StreamLog = MemoryStreamLog(MemoryBroker(SimulatedClock()))
    >>> admin: StreamAdmin = log  # the memory and Redis logs play both roles
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from runnel.domain.access import Access
from runnel.domain.model import Entry, Fields

# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Fence:
    """Proof of ownership sent with every partition-mutating command.

    The backend checks atomically that ``lock_key`` still holds ``token``; if not, the
    command is refused (:class:`runnel.errors.Fenced`) and ``counter_key`` is incremented.
    """

    lock_key: str
    token: bytes
    counter_key: str


@dataclass(frozen=True, slots=True)
class Cap:
    """A length cap for appends.

    ``lossless``: refuse (:class:`runnel.errors.BackpressureError`, nothing written) when
    trimming to ``maxlen`` would remove an entry some consumer group of the stream has not
    acknowledged (never delivered, or still pending). ``lossy``: trim exactly to ``maxlen``
    anyway and add the number of such entries removed to the counter at ``lost_key``, or
    at ``lost_keys[stream key]`` when given (each partition counting its own, as in the
    cluster key layout).
    """

    maxlen: int
    mode: Literal["lossless", "lossy"]
    lost_key: str
    lost_keys: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Append:
    """One entry to append to ``key``.

    ``idempotency_key`` (a backend key, see :meth:`runnel.domain.keys.Keys.idempotency`)
    makes the append idempotent: while that key remembers an entry id (for the window the
    append is given), the entry is not added again and that id is returned instead.
    ``route`` is the hash of the entry's partition key (None when unknown): what routes
    it again if the stream grew meanwhile (its partition is ``route % count``).
    """

    key: str
    fields: Fields
    idempotency_key: str | None = None
    route: int | None = None


_new_object = object.__new__
_set_key = Append.__dict__["key"].__set__
_set_fields = Append.__dict__["fields"].__set__
_set_idempotency_key = Append.__dict__["idempotency_key"].__set__
_set_route = Append.__dict__["route"].__set__


def routed_append(key: str, fields: Fields, route: int) -> Append:
    """``Append(key, fields, None, route)``, made in half the time.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``;
    this sets the slots directly, which matters when a send encodes thousands of records.

    Example:
        >>> routed_append("k", {b"a": b"1"}, 7) == Append("k", {b"a": b"1"}, None, 7)
        True
    """
    append: Append = _new_object(Append)
    _set_key(append, key)
    _set_fields(append, fields)
    _set_idempotency_key(append, None)
    _set_route(append, route)
    return append


@dataclass(frozen=True, slots=True)
class Routing:
    """The partition count an append was routed with, and where each partition keeps its own.

    A partition whose routing record (``records[stream key]``, see
    :meth:`runnel.domain.keys.Keys.resize`) holds another count refuses the append
    (:class:`runnel.errors.StreamResized`); a partition without one accepts any.
    """

    count: int
    records: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """A consumer-group read of one partition.

    ``start`` is ``b">"`` for never-delivered entries, or an id (``b"0"``) to re-read this
    consumer's own pending entries after that id (history: each returned Entry then carries
    its delivery count from the pending entries list). Reads never block.
    """

    key: str
    group: str
    consumer: str
    count: int
    start: bytes = b">"
    fence: Fence | None = None


@dataclass(frozen=True, slots=True)
class AckRequest:
    """Acknowledge ``ids`` of ``key`` for ``group``, fenced by ``fence`` when given."""

    key: str
    group: str
    ids: Sequence[bytes]
    fence: Fence | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Append ``fields`` to ``sink_key`` and acknowledge ``id`` of ``key`` atomically.

    With ``sink_cap``, a sink already holding that many entries refuses the letter
    (:class:`runnel.errors.BackpressureError`, nothing written or acknowledged): a
    dead-letter stream keeps its letters until they are purged.
    """

    key: str
    group: str
    id: bytes
    sink_key: str
    fields: Fields
    fence: Fence | None = None
    sink_cap: int | None = None


@dataclass(frozen=True, slots=True)
class StateChange:
    """What one commit does to a partition's state hash at ``key``: set, then delete."""

    key: str
    set: Mapping[bytes, bytes]
    delete: Sequence[bytes] = ()


@dataclass(frozen=True, slots=True)
class Commit:
    """One iteration of an effectively-once processor, committed in one atomic step.

    The outputs are appended (each output stream under its cap in ``caps``, keyed by the
    output's stream key), the state changes applied and the input entries acknowledged,
    all or nothing, and only while ``ack.fence`` still holds its lock.
    """

    ack: AckRequest
    outputs: Sequence[Append] = ()
    caps: Mapping[str, Cap] = field(default_factory=dict)
    state: StateChange | None = None


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """A consumer group's state on one stream.

    ``lag`` is the number of entries not yet delivered to the group; None when the backend
    cannot tell (Redis after entries were deleted from the middle of the stream, or after
    the group was moved to an arbitrary id).
    """

    name: str
    consumers: int
    pending: int
    last_delivered_id: bytes
    lag: int | None = None


@dataclass(frozen=True, slots=True)
class PendingEntry:
    """One entry in a group's pending entries list."""

    id: bytes
    consumer: str
    idle: float
    delivery_count: int


@dataclass(frozen=True, slots=True)
class GroupProbe:
    """What :meth:`StreamAdmin.snapshot` looks at: a partition, its group and its lease."""

    key: str
    group: str
    lock_key: str


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """One partition as an operator sees it, read in the same round trip as the others.

    Attributes:
        length: entries stored (0 when the stream is missing).
        first_id: the oldest entry still stored, if any.
        last_id: the newest entry still stored, if any.
        group: the group's state (None when the stream or the group is missing).
        oldest_pending: the lowest id in the group's pending entries list, if any.
        holder: the token holding the lease (``b"<owner>:<epoch>"``), if any.
        lease_left: seconds until the lease expires (None when free).
        oldest_deliveries: how many times the oldest pending entry was delivered (a
            poison pill in a crash loop is delivered again by every new owner).
        oldest_idle: seconds since the oldest pending entry was last delivered.
    """

    length: int
    first_id: bytes | None
    last_id: bytes | None
    group: GroupInfo | None
    oldest_pending: bytes | None
    holder: bytes | None
    lease_left: float | None
    oldest_deliveries: int = 0
    oldest_idle: float | None = None


@dataclass(frozen=True, slots=True)
class KeyPeek:
    """A small value as read by :meth:`StreamAdmin.peek`: its bytes and time to live.

    ``value`` is None when the key is missing or holds no plain value; ``ttl`` is None when
    it does not expire (or is missing).
    """

    value: bytes | None
    ttl: float | None


@dataclass(frozen=True, slots=True)
class Lease:
    """A lock held with a fencing epoch; ``token`` is ``b"<owner>:<epoch>"``."""

    key: str
    token: bytes
    epoch: int


@dataclass(frozen=True, slots=True)
class MembershipKeys:
    """Where one processor's membership lives: the value, its version, the control stream."""

    value: str
    version: str
    control: str


@dataclass(frozen=True, slots=True)
class MembershipRecord:
    """A membership value as read, with its version (0 and None before the first write)."""

    version: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class MembershipWrite:
    """The outcome of a versioned update.

    ``written``: whether the value was replaced; ``version``: the version now current (the
    new one, or the one that made the update stale); ``announced``: the control entry's id.
    """

    written: bool
    version: int
    announced: bytes | None = None


# --------------------------------------------------------------------------- ports


class Clock(Protocol):
    """The only way domain and runtime code learn the time or wait for it."""

    def now(self) -> float:
        """Monotonic seconds; only differences mean anything."""
        ...

    def wall(self) -> datetime:
        """Aware UTC wall time, for values users read (dead-letter stamps, crontab)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...

    async def wait_for(self, waitable: asyncio.Future[Any] | asyncio.Event, timeout: float) -> bool:
        """Wait until ``waitable`` is done (or set), or ``timeout`` seconds of this clock pass.

        True if it finished in time. ``waitable`` is never cancelled by this call. The one
        way runtime and adapter code waits for something with a time limit.
        """
        ...


class StreamLog(Protocol):
    """Partitioned append-only logs with consumer groups (Redis Streams semantics).

    What workers and sends use: appends under a cap, groups, fetch rounds (acknowledge and
    read in one call, each partition fenced), the read-only doorbell, dead letters, and the
    control stream's entries.
    """

    async def append(
        self,
        entries: Sequence[Append],
        cap: Cap | None = None,
        window: float = 0.0,
        routing: Routing | None = None,
    ) -> list[bytes]:
        """Append every entry atomically, in order, in one round trip; return their ids.

        With a lossless ``cap``, either all are written or none (BackpressureError). An
        entry with an ``idempotency_key`` that already remembers an id (an earlier append
        within ``window`` seconds, or an earlier entry of the batch) is not added: its id
        is that one; a new one is remembered for ``window`` seconds. With ``routing``, a
        partition that routes with another count refuses (StreamResized, nothing written
        to it).
        """
        ...

    async def commit(self, commit: Commit) -> list[bytes] | None:
        """Append the outputs, apply the state changes and acknowledge, atomically.

        Returns the outputs' ids, or None when the commit was applied already (its first
        id to acknowledge is no longer pending: a retry after a lost reply).

        Raises:
            Fenced: the lease is gone (counted; nothing was written).
            BackpressureError: an output's lossless cap has no room (nothing was written).
        """
        ...

    def colocated(self, key: str, other: str) -> bool:
        """Whether one atomic step (a commit) can touch both ``key`` and ``other``: always
        on one server and in memory; on Redis Cluster when they share a slot. An output
        of a commit that is not colocated with its input goes through the partition's
        outbox (:mod:`runnel.domain.outbox`)."""
        ...

    async def read_outbox(self, outbox: str, fence: Fence, count: int) -> list[Entry]:
        """The oldest ``count`` entries of a partition's outbox, if ``fence`` still holds.

        Raises:
            Fenced: the lease is gone (counted; nothing is returned).
        """
        ...

    async def drop_relayed(self, outbox: str, fence: Fence, ids: Sequence[bytes]) -> int:
        """Delete the relayed entries ``ids`` from the outbox if ``fence`` still holds;
        return how many entries the outbox still holds.

        Raises:
            Fenced: the lease is gone (counted; nothing was deleted).
        """
        ...

    async def ensure_group(self, key: str, group: str, start: bytes = b"0") -> bool:
        """Create ``group`` on ``key`` (creating the stream) if missing; True if created."""
        ...

    async def exchange(
        self, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
    ) -> tuple[list[int | Exception], list[list[Entry] | Exception]]:
        """Acknowledge, then read, several partitions in one round trip (never blocking).

        Each slot is fenced on its own and answered on its own: an acknowledgement with
        the count acknowledged, a read with its entries, or either with the exception that
        refused it (:class:`~runnel.errors.Fenced` when its lease is gone,
        :class:`~runnel.errors.GroupMissing` when its group is). The acknowledgements are
        applied first, so a history read in the same call never returns an entry the call
        acknowledged. Entries trimmed after delivery come back with empty ``fields``.
        """
        ...

    async def wait(self, after: Mapping[str, bytes], timeout: float) -> set[str]:
        """Block up to ``timeout`` until a key has an entry with an id above ``after[key]``.

        Changes no state (a doorbell before a fenced read); returns the keys that have.
        """
        ...

    async def wait_and_read(
        self, after: Mapping[str, bytes], timeout: float, reads: Sequence[ReadRequest]
    ) -> tuple[set[str], list[list[Entry] | Exception] | None]:
        """:meth:`wait`, then the fenced reads ``reads`` the moment the wait ends.

        The reads are those of an :meth:`exchange` without acknowledgements, each fenced
        at the moment it runs, and run whether the wait woke or timed out (so an entry
        that arrived just after a timeout comes back too). Returns the woken keys and each
        read's result, or ``None`` instead of the results when the backend declines to
        read along with the wait: then no read has run and the caller reads in a round.
        A call that fails or is cancelled may have run its reads: their entries may be
        pending without having been returned.
        """
        ...

    async def dead_letter(self, letter: DeadLetter) -> bytes:
        """Append to the sink and ack the source entry atomically; return the sink id.

        Raises Fenced when the lease is gone (then nothing is written or acked).
        """
        ...

    async def range(
        self, key: str, start: bytes = b"-", end: bytes = b"+", count: int | None = None
    ) -> list[Entry]:
        """Entries of ``key`` with ids in ``[start, end]`` (``(id`` for exclusive start)."""
        ...

    async def groups(self, key: str) -> list[GroupInfo]:
        """The consumer groups of ``key`` (empty if the stream is missing)."""
        ...


class StreamAdmin(Protocol):
    """What operators' commands and tools do to the logs besides processing them."""

    async def ensure_group(self, key: str, group: str, start: bytes = b"0") -> bool:
        """Create ``group`` on ``key`` at ``start`` if missing; True if created."""
        ...

    async def destroy_group(self, key: str, group: str) -> bool:
        """Delete ``group`` and its pending entries list; True if it existed."""
        ...

    async def length(self, key: str) -> int:
        """Number of entries in ``key`` (0 if missing)."""
        ...

    async def pending(
        self, key: str, group: str, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        """Up to ``count`` pending entries of ``group`` in id order.

        Raises:
            GroupMissing: the stream or the group does not exist.
        """
        ...

    async def snapshot(self, probes: Sequence[GroupProbe]) -> list[GroupSnapshot]:
        """Each probed partition's length, ends, group, oldest pending entry and lease.

        One round trip for all of them, reading only summaries (no entry is listed
        beyond the first and the last); read-only.
        """
        ...

    async def peek(self, keys: Sequence[str]) -> list[KeyPeek]:
        """The value and time to live of each key, in one round trip; read-only."""
        ...

    async def move_group(
        self, key: str, group: str, after: bytes, lock_key: str | None = None
    ) -> None:
        """Make ``group`` deliver next the entries after ``after``, forgetting its pending
        entries, and drop the lease at ``lock_key`` (when given): one atomic step.

        Dropping the lease fences its holder out: its next read or acknowledgement is
        refused, and whoever takes the partition next (under a new epoch) starts from the
        new position. The group (and the stream) are created when missing.
        """
        ...

    async def count(self, key: str, start: bytes, end: bytes) -> int:
        """How many entries of ``key`` have ids in ``[start, end]`` (``(id``: exclusive)."""
        ...

    async def delete_entries(self, key: str, ids: Sequence[bytes]) -> int:
        """Delete the entries ``ids`` of ``key``; how many were there."""
        ...

    async def switch(self, key: str, record: str, count: int) -> bytes:
        """Record ``key``'s switch point for a resize to ``count`` partitions; its id.

        One atomic step: unless ``record`` already routes with ``count`` (a resize run
        again), a marker entry (:data:`runnel.domain.resize.MARKER_FIELD` -> ``count``) is
        appended to ``key``, its id stored in the hash ``record`` under the field
        ``count``, and the record's ``count`` field set to ``count``, so appends routed
        with another count are refused from then on.
        """
        ...


class PartitionLocks(Protocol):
    """Expiring locks with fencing epochs (partition leases and the leader key)."""

    async def acquire(self, key: str, epoch_key: str, owner: str, ttl: float) -> Lease | None:
        """Take ``key`` if free, incrementing ``epoch_key``; None if someone holds it."""
        ...

    async def extend(self, leases: Sequence[Lease], ttl: float) -> list[bool]:
        """Renew each lease still held with its token; never re-acquires a lost one."""
        ...

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        """Delete each lock still held with its token; True where it was."""
        ...

    async def holder(self, key: str) -> bytes | None:
        """The token currently holding ``key``, if any."""
        ...

    async def expires_in(self, key: str) -> float | None:
        """Seconds until the lock at ``key`` expires; None if it is free."""
        ...


class KeyValue(Protocol):
    """Small values: stream metadata, heartbeats, quarantine records, schedule slots."""

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        """Set ``key`` to ``value`` only if it holds ``expected`` (None: is missing)."""
        ...

    async def exists(self, keys: Sequence[str]) -> list[bool]: ...

    async def hash_get_all(self, key: str) -> dict[bytes, bytes]: ...

    async def hash_set(self, key: str, mapping: Mapping[bytes, bytes]) -> None: ...

    async def hash_set_missing(
        self, key: str, mapping: Mapping[bytes, bytes]
    ) -> dict[bytes, bytes]:
        """Set the fields of ``mapping`` that ``key`` lacks, atomically; return the whole hash."""
        ...

    async def hash_delete(self, key: str, *fields: bytes) -> int: ...

    async def delete(self, *keys: str) -> int: ...


class StoreDiagnostics(Protocol):
    """An optional capability: what a store can say about itself before a worker starts.

    How durable it is, and whether the credentials runnel uses may do what a worker will
    do. A backend without it (the in-memory one) says nothing.
    """

    async def durability_risks(self) -> list[str]:
        """How the store's own settings could lose or corrupt what runnel writes, a sentence
        each (no persistence, eviction); empty when none is known. When the store will not
        say, one sentence says that the check could not run."""
        ...

    async def loss_cause(self) -> str | None:
        """Why the store may have lost keys, when it can tell (a sentence naming the cause
        and what to change: eviction under ``maxmemory``, a restart without persistence);
        None when it cannot tell."""
        ...

    async def check_access(self, needs: Sequence[Access]) -> None:
        """Refuse when the store's user may not send the commands a worker will send to
        ``needs`` (one key of each kind).

        Raises:
            runnel.errors.PermissionDenied: naming every command and key refused.
        """
        ...


class Presence(Protocol):
    """An optional capability: which worker processes still hold a connection to the store.

    A worker holds one named connection for as long as it runs. When its process dies,
    the operating system closes that connection at once, and its peers can tell the
    worker is gone long before its heartbeat and leases expire.
    """

    async def hold(self, name: str, every: float) -> None:
        """Keep a connection named ``name`` open until cancelled, checking it every
        ``every`` seconds (and opening it again when it was closed). Never returns
        otherwise; failures are retried, not raised."""
        ...

    async def present(self, names: Collection[str]) -> set[str] | None:
        """Which of ``names`` have a connection open now; None when the store cannot tell
        (the permission to list connections is missing, say)."""
        ...


@runtime_checkable
class ReplicaShortfalls(Protocol):
    """An optional capability of a stream log whose writes wait for replicas
    (``redis_wait_replicas``): it tells ``on_short`` of every write of a worker's that
    fewer replicas confirmed in time than required, naming the write (``"fetch_round"``,
    ``"commit"`` or ``"dead_letter"``). The write is on the primary either way."""

    on_short: Callable[[str], None] | None


class Membership(Protocol):
    """A processor's versioned membership record and its control stream.

    The record is opaque bytes (the domain encodes it); every successful update bumps the
    version and announces itself on the control stream in the same atomic step, so nobody
    can see a change that was not announced, or an announcement of a change that failed.
    """

    async def read(self, keys: MembershipKeys) -> MembershipRecord:
        """The current version (0 if never written) and value (None if missing)."""
        ...

    async def update(
        self, keys: MembershipKeys, expected: int, value: bytes, note: Fields
    ) -> MembershipWrite:
        """Compare-and-set on the version: write ``value`` only if the version is ``expected``.

        On success the version becomes ``expected + 1`` and ``note`` (plus a ``version``
        field) is appended to the control stream, in the same atomic step. When someone
        else updated it first nothing is written and the current version is returned.
        """
        ...

    async def announce(self, keys: MembershipKeys, note: Fields) -> bytes:
        """Append ``note`` (plus the current ``version``) to the control stream; its id."""
        ...


async def _nothing_to_close() -> None:
    """What closing a backend that holds no connections does."""


@dataclass(frozen=True, slots=True)
class Backend:
    """The ports one App talks through, as the container wires them.

    ``diagnostics`` is None on a store that cannot say how durable it is (the in-memory
    one); ``presence`` is None where worker connections cannot be seen. ``closer``
    releases what the container built for the ports (the Redis client's connections);
    :meth:`aclose` calls it.
    """

    log: StreamLog
    admin: StreamAdmin
    locks: PartitionLocks
    kv: KeyValue
    membership: Membership
    clock: Clock
    diagnostics: StoreDiagnostics | None = None
    closer: Callable[[], Awaitable[None]] = _nothing_to_close
    presence: Presence | None = None

    async def aclose(self) -> None:
        """Release the backend's connections (the ports must not be used afterwards)."""
        await self.closer()
