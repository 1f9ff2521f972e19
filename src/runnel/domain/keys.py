"""Backend key names (the layouts of the architecture document).

Every key starts with a double-underscore tag and names the app, the stream and, where it
belongs to one, the processor and partition. ``docs/architecture.md`` lists them all.

There are two layouts. The ``single`` layout, for one Redis server (or a Sentinel-managed
primary), is the one documented since the first release. The ``cluster`` layout, for Redis
Cluster, names the same keys with hash tags (the part in ``{...}``, which alone picks a
key's slot): every key of one partition (its stream, its leases, fencing epochs and
refusal counters, and its lost-entries counter) shares the partition's tag
``{app.stream.n}``, so the scripts that touch them together stay in one slot while the
partitions of a stream spread over the shards; the keys of one processor (membership,
version, control stream, heartbeats, quarantines) share ``{app.stream.processor}``.

Example:
    >>> Keys("myapp", "orders").stream(7)
    '__strm:myapp.orders.7'
    >>> Keys("myapp", "orders").lock("printer", 7)
    '__lock:myapp.orders.printer.7'
    >>> Keys("myapp", "orders", "cluster").lock("printer", 7)
    '__lock:{myapp.orders.7}.printer'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

KeyLayout: TypeAlias = Literal["single", "cluster"]
"""How key names are laid out: for one server, or with hash tags for Redis Cluster."""

LAYOUTS: tuple[KeyLayout, ...] = ("single", "cluster")


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one stream of one app, in one layout (``single`` by default)."""

    app: str
    stream_name: str
    layout: KeyLayout = "single"

    @property
    def _base(self) -> str:
        return f"{self.app}.{self.stream_name}"

    @property
    def _cluster(self) -> bool:
        return self.layout == "cluster"

    def _part(self, partition: int) -> str:
        return f"{{{self._base}.{partition}}}"

    def _proc(self, processor: str) -> str:
        return f"{{{self._base}.{processor}}}"

    def partition_tag(self, partition: int) -> str | None:
        """The hash tag every key of ``partition`` carries (None in the single layout).

        Example:
            >>> Keys("a", "s", "cluster").partition_tag(3), Keys("a", "s").partition_tag(3)
            ('a.s.3', None)
        """
        return f"{self._base}.{partition}" if self._cluster else None

    def stream(self, partition: int) -> str:
        """The partition's stream: ``__strm:{app}.{stream}.{n}``."""
        if self._cluster:
            return f"__strm:{self._part(partition)}"
        return f"__strm:{self._base}.{partition}"

    def meta(self) -> str:
        """The stream's metadata hash: ``__meta:{app}.{stream}``."""
        return f"__meta:{{{self._base}}}" if self._cluster else f"__meta:{self._base}"

    def lost(self) -> str:
        """Counter of entries a lossy cap trimmed unprocessed: ``__lost:{app}.{stream}``.

        In the cluster layout each partition counts its own (:meth:`lost_counter`): this
        is then the counter of partition 0.
        """
        return self.lost_counter(0) if self._cluster else f"__lost:{self._base}"

    def lost_counter(self, partition: int) -> str:
        """The lost-entries counter an append to ``partition`` increments.

        The stream's one counter (:meth:`lost`) in the single layout; the partition's own,
        ``__lost:{app.stream.n}``, in the cluster layout (an append script touches one slot).
        """
        return f"__lost:{self._part(partition)}" if self._cluster else self.lost()

    def lost_counters(self, partition_count: int) -> list[str]:
        """Every lost-entries counter of the stream (their sum is the stream's count).

        Example:
            >>> Keys("a", "s").lost_counters(3), Keys("a", "s", "cluster").lost_counters(2)
            (['__lost:a.s'], ['__lost:{a.s.0}', '__lost:{a.s.1}'])
        """
        if not self._cluster:
            return [self.lost()]
        return [self.lost_counter(n) for n in range(partition_count)]

    def resize(self, partition: int) -> str:
        """A partition's routing record (hash): ``__rsz:{app}.{stream}.{n}``.

        Written by a resize (see :mod:`runnel.domain.resize`): ``count`` is the partition
        count senders must route with to append to it, and each field ``<N>`` the id of
        the partition's last entry when the stream grew to ``N`` partitions (its switch
        point). Missing on a stream that never grew. In the partition's slot in the
        cluster layout, so the append script checks it atomically with the append.

        Example:
            >>> Keys("a", "s").resize(2), Keys("a", "s", "cluster").resize(2)
            ('__rsz:a.s.2', '__rsz:{a.s.2}')
        """
        if self._cluster:
            return f"__rsz:{self._part(partition)}"
        return f"__rsz:{self._base}.{partition}"

    def membership(self, processor: str) -> str:
        """Executors and their partitions: ``__memb:{app}.{stream}.{processor}``."""
        if self._cluster:
            return f"__memb:{self._proc(processor)}"
        return f"__memb:{self._base}.{processor}"

    def membership_version(self, processor: str) -> str:
        """The membership's version counter: ``__mver:{app}.{stream}.{processor}``."""
        if self._cluster:
            return f"__mver:{self._proc(processor)}"
        return f"__mver:{self._base}.{processor}"

    def control(self, processor: str) -> str:
        """Control stream of join/leave announcements: ``__ctrl:{app}.{stream}.{processor}``."""
        if self._cluster:
            return f"__ctrl:{self._proc(processor)}"
        return f"__ctrl:{self._base}.{processor}"

    def lock(self, processor: str, partition: int) -> str:
        """A partition's lease: ``__lock:{app}.{stream}.{processor}.{n}``."""
        if self._cluster:
            return f"__lock:{self._part(partition)}.{processor}"
        return f"__lock:{self._base}.{processor}.{partition}"

    def epoch(self, processor: str, partition: int) -> str:
        """A partition's fencing epoch counter: ``__epoch:{app}.{stream}.{processor}.{n}``."""
        if self._cluster:
            return f"__epoch:{self._part(partition)}.{processor}"
        return f"__epoch:{self._base}.{processor}.{partition}"

    def beat(self, processor: str, executor_id: str) -> str:
        """An executor's heartbeat: ``__beat:{app}.{stream}.{processor}.{executor_id}``."""
        if self._cluster:
            return f"__beat:{self._proc(processor)}.{executor_id}"
        return f"__beat:{self._base}.{processor}.{executor_id}"

    def quarantine(self, processor: str) -> str:
        """Quarantined partitions (hash of n -> JSON): ``__quar:{app}.{stream}.{processor}``."""
        if self._cluster:
            return f"__quar:{self._proc(processor)}"
        return f"__quar:{self._base}.{processor}"

    def idempotency(self, key: str, partition: int = 0) -> str:
        """What an idempotency key of a send remembers: ``__idem:{app}.{stream}.{key}``.

        In the cluster layout the key is in the slot of the partition the entry goes to,
        ``__idem:{app.stream.n}.key``, so the append script checks it atomically with the
        partition's cap (one slot); ``partition`` names it (unused in the single layout,
        where keys are per stream).

        Example:
            >>> Keys("a", "s").idempotency("k", 3), Keys("a", "s", "cluster").idempotency("k", 3)
            ('__idem:a.s.k', '__idem:{a.s.3}.k')
        """
        if self._cluster:
            return f"__idem:{self._part(partition)}.{key}"
        return f"__idem:{self._base}.{key}"

    def outbox(self, processor: str, partition: int) -> str:
        """The outbox of an effectively-once processor's partition (a stream):
        ``__outbox:{app}.{stream}.{processor}.{n}``; in the cluster layout in the
        partition's slot, ``__outbox:{app.stream.n}.processor``.

        Its commits write there the outputs that are in another slot than the partition;
        the partition's owner relays them (see ``docs/effectively-once.md``).

        Example:
            >>> Keys("a", "s", "cluster").outbox("p", 2)
            '__outbox:{a.s.2}.p'
        """
        if self._cluster:
            return f"__outbox:{self._part(partition)}.{processor}"
        return f"__outbox:{self._base}.{processor}.{partition}"

    def state(self, processor: str, partition: int) -> str:
        """A partition's keyed state (hash): ``__state:{app}.{stream}.{processor}.{n}``
        (in the cluster layout, in the partition's slot)."""
        if self._cluster:
            return f"__state:{self._part(partition)}.{processor}"
        return f"__state:{self._base}.{processor}.{partition}"

    def halts(self, processor: str) -> str:
        """Partitions that halted a worker (n -> JSON): ``__halt:{app}.{stream}.{processor}``."""
        if self._cluster:
            return f"__halt:{self._proc(processor)}"
        return f"__halt:{self._base}.{processor}"

    def skips(self, processor: str) -> str:
        """Entries operators skipped (``n:id`` -> JSON): ``__skip:{app}.{stream}.{processor}``."""
        if self._cluster:
            return f"__skip:{self._proc(processor)}"
        return f"__skip:{self._base}.{processor}"

    def fenced(self, processor: str) -> str:
        """Counter of stale-owner operations refused: ``__fenc:{app}.{stream}.{processor}``.

        In the cluster layout each partition counts its own (:meth:`fenced_counter`).
        """
        if self._cluster:
            return f"__fenc:{self._proc(processor)}"
        return f"__fenc:{self._base}.{processor}"

    def fenced_counter(self, processor: str, partition: int) -> str:
        """The refusal counter a fenced operation on ``partition`` increments.

        The processor's one counter (:meth:`fenced`) in the single layout; the partition's
        own, ``__fenc:{app.stream.n}.processor``, in the cluster layout, so a fenced
        script touches one slot.

        Example:
            >>> Keys("a", "s", "cluster").fenced_counter("p", 2)
            '__fenc:{a.s.2}.p'

        """
        if self._cluster:
            return f"__fenc:{self._part(partition)}.{processor}"
        return self.fenced(processor)


def relay_key(destination: str, outbox: str, entry_id: bytes) -> str:
    """The idempotency key of an outbox entry relayed to ``destination`` (a stream key):
    ``__rlay:`` then the destination's hash tag (the same slot as the destination, so the
    append script checks it with the destination's cap), the outbox key without its
    prefix, and the outbox entry's id. A relay repeated after a crash uses the same key,
    and the append adds nothing.

    Example:
        >>> relay_key("__strm:{a.t.1}", "__outbox:{a.s.0}.p", b"5-0")
        '__rlay:{a.t.1}.a.s.0.p.5-0'
        >>> relay_key("__strm:a.t.1", "__outbox:a.s.p.0", b"5-0")
        '__rlay:a.t.1.a.s.p.0.5-0'
    """
    tag = _hash_tag(destination)
    where = f"{{{tag}}}" if tag is not None else destination.partition(":")[2]
    source = outbox.partition(":")[2].replace("{", "").replace("}", "")
    return f"__rlay:{where}.{source}.{entry_id.decode()}"


def _hash_tag(key: str) -> str | None:
    """The hash tag of ``key`` (what Redis Cluster hashes), or None if it has none."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start < 0 or end <= start + 1:
        return None
    return key[start + 1 : end]


def leader_key(app: str, layout: KeyLayout = "single") -> str:
    """The leader's name: ``__lead:{app}`` (in the cluster layout, tagged with the app).

    Example:
        >>> leader_key("myapp"), leader_key("myapp", "cluster")
        ('__lead:myapp', '__lead:{myapp}')
    """
    return f"__lead:{{{app}}}" if layout == "cluster" else f"__lead:{app}"


def leader_epoch_key(app: str, layout: KeyLayout = "single") -> str:
    """The leader election's epoch counter: ``__lepoch:{app}`` (tagged like the leader's
    name in the cluster layout, so the election's script touches one slot)."""
    return f"__lepoch:{{{app}}}" if layout == "cluster" else f"__lepoch:{app}"


def schedule_key(app: str, task: str) -> str:
    """Last fired slot of a leader-only timer or crontab: ``__sched:{app}.{task}``."""
    return f"__sched:{app}.{task}"
