"""The Redis adapters on Redis Cluster (redis-py's asyncio ``RedisCluster``).

Redis Cluster runs a command, a script or a transaction only when all its keys hash to one
slot. The single-server adapters batch work over many partitions into one call (an append
script for a whole batch, one exchange for a fetch round, one extend for every lease);
here the same work is split by slot and the per-slot calls go in one cluster pipeline,
which sends each node its share in one round trip, the nodes in parallel. With the
cluster key layout (:mod:`runnel.domain.keys`) every key one partition's script touches
(its stream, lease, fencing epoch and counters) shares a slot, so each per-partition step
stays as atomic as on one server; what is no longer atomic is a step over several
partitions (see ``docs/architecture.md``):

* an append of a batch that spans partitions is atomic per partition: a lossless cap
  that refuses one partition's entries does not undo another's (the error says how many
  were written);
* a dead letter is written to its sink, then the source entry is acknowledged, fenced:
  a crash (or a lost lease) between the two can leave a second dead letter for the same
  entry when it is processed again, never none.

Redirections (``MOVED``, ``ASK`` while a slot migrates) are followed by redis-py: a
redirected command did not run, so following it neither loses nor repeats anything.
Commands are never retried after a connection error (a write may have happened); the
error reaches the worker as :class:`~runnel.errors.BackendUnavailable`, and its next call
goes to the slot's owner after redis-py refreshes the topology (after a failover, the
promoted replica).

Example:
    >>> slot_of("__strm:{shop.orders.3}") == slot_of("__lock:{shop.orders.3}.printer")
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from runnel._redact import redact_url
from runnel.adapters.redis import _errors, _replies
from runnel.adapters.redis._errors import translate, translated
from runnel.adapters.redis._scripts import Arg, Script, register
from runnel.adapters.redis.keyvalue import RedisKeyValue
from runnel.adapters.redis.locks import RedisPartitionLocks, _ttl_ms
from runnel.adapters.redis.streams import (
    RedisStreamLog,
    _require_fields,
    _to_ms,
    append_call,
    commit_call,
    commit_reply,
    exchange_call,
)
from runnel.domain.model import Entry
from runnel.errors import (
    BackendError,
    BackendProtocolError,
    BackpressureError,
    Fenced,
    Misconfigured,
    PermissionDenied,
    StreamResized,
)
from runnel.ports import (
    AckRequest,
    Append,
    Cap,
    Commit,
    DeadLetter,
    Lease,
    ReadRequest,
    Routing,
)

T = TypeVar("T")

Call = tuple[list[str], list[Arg]]
"""One script call: its keys (all in one slot) and its arguments."""


def slot_of(key: str | bytes) -> int:
    """The cluster slot of ``key`` (CRC16 of its hash tag, or of the whole key, mod 16384).

    Example:
        >>> slot_of("{a}x") == slot_of("{a}y"), 0 <= slot_of("k") < 16384
        (True, True)
    """
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def by_slot(items: Iterable[T], key: Any) -> dict[int, list[tuple[int, T]]]:
    """``items`` grouped by the slot of ``key(item)``, each with its index, in order.

    Example:
        >>> groups = by_slot(["{a}1", "{b}1", "{a}2"], lambda k: k)
        >>> sorted(len(g) for g in groups.values())
        [1, 2]
    """
    groups: dict[int, list[tuple[int, T]]] = {}
    for index, item in enumerate(items):
        groups.setdefault(slot_of(key(item)), []).append((index, item))
    return groups


async def run_per_slot(client: RedisCluster, script: Script, calls: Sequence[Call]) -> list[Any]:
    """Run ``script`` once per call, all in one cluster pipeline; the replies in order.

    Each node gets its calls in one round trip, the nodes in parallel. An error reply is
    returned as its ``ResponseError`` (like a pipeline slot). A node that does not know
    the script (``NOSCRIPT``: nothing ran; e.g. a replica promoted since) gets it loaded,
    and those calls are sent once more.

    Raises:
        redis.exceptions.RedisError: a node could not be reached (the caller translates it).
    """
    replies: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in (1, 2):
        pipe = client.pipeline(transaction=False)
        for index in todo:
            keys, args = calls[index]
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results = await pipe.execute(raise_on_error=False)
        missing = []
        for index, result in zip(todo, results, strict=True):
            if isinstance(result, NoScriptError) and attempt == 1:
                missing.append(index)
            else:
                replies[index] = result
        if not missing:
            break
        await client.script_load(script.script)  # every primary
        todo = missing
    return replies


class ClusterStreamLog(RedisStreamLog):
    """:class:`~runnel.adapters.redis.streams.RedisStreamLog` on Redis Cluster.

    Single-key commands are the single-server adapter's; ``append``, ``exchange``,
    ``wait`` and ``dead_letter`` are split by slot (see the module docstring).

    Args:
        client: a ``RedisCluster`` with ``decode_responses=False`` (see
            :func:`runnel.adapters.redis.client.make_cluster_client`).
    """

    def __init__(self, client: RedisCluster) -> None:
        self._client = client  # type: ignore[assignment]  # the commands used are shared
        self._cluster = client
        self._append = register(client, "append")  # type: ignore[arg-type]
        self._exchange = register(client, "exchange")  # type: ignore[arg-type]
        self._count = register(client, "count")  # type: ignore[arg-type]
        self._switch = register(client, "switch")  # type: ignore[arg-type]
        self._commit = register(client, "commit")  # type: ignore[arg-type]
        self._outbox = register(client, "outbox")  # type: ignore[arg-type]
        timeout = client.get_connection_kwargs().get("socket_timeout")
        self._block_slice = None if timeout is None else max(1, int(float(timeout) * 500))

    async def append(
        self,
        entries: Sequence[Append],
        cap: Cap | None = None,
        window: float = 0.0,
        routing: Routing | None = None,
    ) -> list[bytes]:
        """Append ``entries`` in order, atomically per partition; return their ids.

        Raises:
            BackpressureError: a lossless ``cap`` refused the entries of some partition
                (those of the other partitions were appended; the message says how many).
            BackendProtocolError: an entry's idempotency key is not in its partition's
                slot (a key layout that is not the cluster one).
            StreamResized: a partition routes with another count than ``routing``'s (its
                ``ids`` say which entries the other partitions took).
        """
        if not entries:
            return []
        groups = by_slot(entries, lambda e: e.key)
        calls: list[Call] = []
        for members in groups.values():
            calls.append(self._append_call([entry for _, entry in members], cap, window, routing))
        with translated():
            raw = await run_per_slot(self._cluster, self._append, calls)
        ids: list[bytes] = [b""] * len(entries)
        refused: Exception | None = None
        written = 0
        for members, reply in zip(groups.values(), raw, strict=True):
            if isinstance(reply, Exception):
                refused = refused or translate(reply)
                continue
            for (index, _), new_id in zip(members, _replies.ids(reply, len(members)), strict=True):
                ids[index] = new_id
                written += 1
        if refused is not None:
            if isinstance(refused, StreamResized):
                refused.ids = ids  # the entries of the partitions that took them have ids
                raise refused
            if written and isinstance(refused, BackpressureError):
                raise BackpressureError(
                    f"{refused} ({written} of the batch's {len(entries)} entries, for other "
                    "partitions, were appended: on Redis Cluster a batch is atomic per "
                    "partition)"
                ) from refused
            raise refused
        return ids

    @staticmethod
    def _append_call(
        entries: Sequence[Append], cap: Cap | None, window: float, routing: Routing | None = None
    ) -> Call:
        # The idempotency keys of the cluster layout are in their partition's slot.
        keys, args, _ = append_call(entries, cap, window, routing)
        _one_slot(keys)
        return keys, args

    def colocated(self, key: str, other: str) -> bool:
        """Whether ``key`` and ``other`` share a slot (one script can touch both)."""
        return slot_of(key) == slot_of(other)

    async def commit(self, commit: Commit) -> list[bytes] | None:
        """An effectively-once commit: every key it touches must be in one slot (the
        outputs of other slots go through the partition's outbox, which the runtime
        routes: :mod:`runnel.domain.outbox`).

        Raises:
            Misconfigured: an output is in another slot than the input partition.
        """
        keys, args = commit_call(commit)
        if len({slot_of(k) for k in keys}) > 1:
            raise Misconfigured(
                "on Redis Cluster an effectively-once commit must stay in its partition's "
                f"slot, but {commit.ack.key} and its outputs span slots (outputs for other "
                "slots go through the partition's outbox)"
            )
        with translated():
            (raw,) = await run_per_slot(self._cluster, self._commit, [(keys, args)])
        return commit_reply(raw, len(commit.outputs))

    async def _run_outbox(self, keys: list[str], args: list[Arg]) -> Any:
        """One call of ``outbox.lua`` on the outbox's node (all its keys in one slot)."""
        _one_slot(keys)
        with translated():
            (raw,) = await run_per_slot(self._cluster, self._outbox, [(keys, args)])
        if isinstance(raw, Exception):
            raise translate(raw)
        return raw

    async def exchange(
        self, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
    ) -> tuple[list[int | Exception], list[list[Entry] | Exception]]:
        """Acknowledge ``acks``, then read ``reads``: one ``exchange.lua`` call per slot,
        in one pipeline (one round trip per node)."""
        if not acks and not reads:
            return [], []
        slots: dict[int, tuple[list[tuple[int, AckRequest]], list[tuple[int, ReadRequest]]]] = {}
        for i, a in enumerate(acks):
            slots.setdefault(slot_of(a.key), ([], []))[0].append((i, a))
        for i, r in enumerate(reads):
            slots.setdefault(slot_of(r.key), ([], []))[1].append((i, r))
        calls = [_exchange_call([a for _, a in s[0]], [r for _, r in s[1]]) for s in slots.values()]
        with translated():
            raw = await run_per_slot(self._cluster, self._exchange, calls)
        acked: list[int | Exception] = [0] * len(acks)
        read: list[list[Entry] | Exception] = [[] for _ in reads]
        for (slot_acks, slot_reads), reply in zip(slots.values(), raw, strict=True):
            if isinstance(reply, Exception):
                error = translate(reply)
                for i, _ in slot_acks:
                    acked[i] = error
                for i, _ in slot_reads:
                    read[i] = error
                continue
            got_acks, got_reads = _replies.exchange_slots(
                reply,
                [a.fence.lock_key if a.fence else a.key for _, a in slot_acks],
                [r.fence.lock_key if r.fence else r.key for _, r in slot_reads],
            )
            for (i, _), value in zip(slot_acks, got_acks, strict=True):
                acked[i] = value
            for (i, _), entries in zip(slot_reads, got_reads, strict=True):
                read[i] = entries
        return acked, read

    async def wait(self, after: Mapping[str, bytes], timeout: float) -> set[str]:
        """Block up to ``timeout`` seconds until a key has an entry above ``after[key]``.

        One read-only ``XREAD BLOCK`` per slot, concurrently (a blocking read cannot span
        slots); the first to wake ends the others.
        """
        if not after:
            await asyncio.sleep(max(0.0, timeout))
            return set()
        groups = by_slot(after.items(), lambda item: item[0])
        if len(groups) == 1:
            return await self._wait_slot(dict(after), timeout)
        tasks = [
            asyncio.ensure_future(self._wait_slot(dict(m for _, m in members), timeout))
            for members in groups.values()
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        woken: set[str] = set()
        for task in done:
            woken |= task.result()
        return woken

    async def wait_and_read(
        self, after: Mapping[str, bytes], timeout: float, reads: Sequence[ReadRequest]
    ) -> tuple[set[str], None]:
        """:meth:`wait` alone: the cluster declines to read along with it (the caller reads
        in a round). Its blocking reads go through redis-py's per-node connections, one
        per slot, so a fenced read pipelined behind each would need a connection of its
        own per slot."""
        return await self.wait(after, timeout), None

    async def _wait_slot(self, after: dict[str, bytes], timeout: float) -> set[str]:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            block = max(1, _to_ms(deadline - time.monotonic()))
            if self._block_slice is not None:
                block = min(block, self._block_slice)
            with translated():
                read = self._cluster.xread(dict(after.items()), count=1, block=block)
                raw = await (read if _errors.COUNTS_CANCELLATIONS else _errors.cancellable(read))
            woken = _replies.woken_keys(raw)
            if woken or time.monotonic() >= deadline:
                return woken

    async def dead_letter(self, letter: DeadLetter) -> bytes:
        """Append to the sink, then acknowledge the source entry, fenced.

        The sink and the source are in different slots, so this is two steps: the lease
        is checked first (nothing is written when it is gone), the dead letter is
        appended, and the acknowledgement is fenced again. If the lease is lost between
        the steps, the entry stays pending and its next owner may dead-letter it once
        more (a duplicate dead letter, never a missing one).

        Raises:
            Fenced: the lease is gone (before anything was written, or before the
                acknowledgement).
        """
        _require_fields(letter.fields, letter.sink_key)
        fence = letter.fence
        if fence is not None:
            with translated():
                holder = await self._cluster.get(fence.lock_key)
            if holder != fence.token:
                with translated():
                    await self._cluster.incr(fence.counter_key)
                raise Fenced(
                    f"lease {fence.lock_key} is no longer held by this owner (a dead letter "
                    f"for {letter.key} entry {letter.id.decode()} was refused)"
                )
        if letter.sink_cap is not None:  # a full sink refuses: letters are kept until purged
            with translated():
                held = _replies.as_int(await self._cluster.xlen(letter.sink_key))
            if held >= letter.sink_cap:
                raise BackpressureError(
                    f"dead-letter stream {letter.sink_key!r} is full ({held} of "
                    f"{letter.sink_cap} letters kept until purged): the letter was not written"
                )
        with translated():
            sink_id = await self._cluster.xadd(letter.sink_key, dict(letter.fields))  # type: ignore[arg-type]  # bytes keys and values
        (acked,), _ = await self.exchange(
            [AckRequest(letter.key, letter.group, [letter.id], fence)], []
        )
        if isinstance(acked, Exception):
            raise acked
        return _replies.as_bytes(sink_id)


def _exchange_call(acks: Sequence[AckRequest], reads: Sequence[ReadRequest]) -> Call:
    keys, args = exchange_call(acks, reads)
    _one_slot(keys)
    return keys, args


def _one_slot(keys: Sequence[str]) -> None:
    """Refuse, in one line, a per-partition call whose keys span slots (a key layout that
    is not the cluster one: Redis would answer CROSSSLOT)."""
    slots = {slot_of(k) for k in keys}
    if len(slots) > 1:
        raise BackendProtocolError(
            "on Redis Cluster the keys of one partition must share a hash tag, but "
            f"{', '.join(sorted(set(keys)))} are in {len(slots)} slots: use the cluster key "
            "layout (a redis+cluster:// URL)"
        )


class ClusterPartitionLocks(RedisPartitionLocks):
    """:class:`~runnel.adapters.redis.locks.RedisPartitionLocks` on Redis Cluster:
    ``extend`` and ``release`` run one script call per slot, in one pipeline."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client  # type: ignore[assignment]  # the commands used are shared
        self._cluster = client
        self._acquire = register(client, "acquire")  # type: ignore[arg-type]
        self._extend = register(client, "extend")  # type: ignore[arg-type]
        self._release = register(client, "release")  # type: ignore[arg-type]

    async def acquire(self, key: str, epoch_key: str, owner: str, ttl: float) -> Lease | None:
        """Take ``key`` for ``ttl`` seconds if free, with the next epoch; None if held."""
        _one_slot([key, epoch_key])
        return await super().acquire(key, epoch_key, owner, ttl)

    async def extend(self, leases: Sequence[Lease], ttl: float) -> list[bool]:
        """Renew each lease still held with its token to ``ttl`` seconds from now."""
        return await self._per_lease(
            self._extend, leases, lambda group: [_ttl_ms(ttl), *(lease.token for lease in group)]
        )

    async def release(self, leases: Sequence[Lease]) -> list[bool]:
        """Delete each lock still held with its lease's token; True where it was."""
        return await self._per_lease(
            self._release, leases, lambda group: [lease.token for lease in group]
        )

    async def _per_lease(self, script: Script, leases: Sequence[Lease], args: Any) -> list[bool]:
        if not leases:
            return []
        groups = by_slot(leases, lambda lease: lease.key)
        calls: list[Call] = []
        for members in groups.values():
            group = [lease for _, lease in members]
            calls.append(([lease.key for lease in group], args(group)))
        with translated():
            raw = await run_per_slot(self._cluster, script, calls)
        out = [False] * len(leases)
        for members, reply in zip(groups.values(), raw, strict=True):
            if isinstance(reply, ResponseError):
                raise translate(reply)
            for (index, _), held in zip(members, _replies.flags(reply, len(members)), strict=True):
                out[index] = held
        return out


class ClusterKeyValue(RedisKeyValue):
    """:class:`~runnel.adapters.redis.keyvalue.RedisKeyValue` on Redis Cluster: the
    durability check asks every primary."""

    def __init__(self, client: RedisCluster) -> None:
        super().__init__(client)  # type: ignore[arg-type]  # the commands used are shared
        self._cluster = client

    async def durability_risks(self) -> list[str]:
        """What any primary says about losing writes (each risk once, naming the nodes)."""
        try:
            with translated():
                persistence = await self._cluster.info(
                    "persistence", target_nodes=RedisCluster.PRIMARIES
                )
                memory = await self._cluster.info("memory", target_nodes=RedisCluster.PRIMARIES)
        except (BackendError, PermissionDenied):  # refused: ask as on one server
            return await super().durability_risks()
        risks: dict[str, list[str]] = {}
        for node, info in _per_node(persistence).items():
            merged = {**info, **_per_node(memory).get(node, {})}
            for risk in _risks(merged):
                risks.setdefault(risk, []).append(node)
        return [f"{risk} (primaries {', '.join(sorted(nodes))})" for risk, nodes in risks.items()]


def _per_node(raw: Any) -> dict[str, dict[str, str]]:
    if not isinstance(raw, dict):
        return {}
    out: dict[str, dict[str, str]] = {}
    for node, info in raw.items():
        if isinstance(info, dict):
            out[str(node)] = {_text(k): _text(v) for k, v in info.items()}
    return out


def _risks(info: Mapping[str, str]) -> list[str]:
    found = []
    if info.get("aof_enabled", "1") != "1":
        found.append(
            "Redis writes no append-only file (appendonly no): if a primary restarts "
            "without a replica to fail over to, the events it held since its last snapshot "
            "are lost; set appendonly yes"
        )
    maxmemory = info.get("maxmemory", "0")
    policy = info.get("maxmemory_policy", "noeviction").lower()
    if maxmemory not in ("", "0") and policy != "noeviction":
        found.append(
            f"Redis evicts keys when it reaches maxmemory (maxmemory-policy {policy}); "
            "set maxmemory-policy noeviction"
        )
    return found


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class RunnelRedisCluster(RedisCluster):
    """redis-py's ``RedisCluster``; a distinct class so the container can tell it apart."""


CONNECTIONS_PER_NODE_FACTOR = 4
"""A node's pool holds ``pool_size`` times this many connections: a worker's idle wait
blocks one connection per slot it waits on, beside its pipelines."""


def make_cluster_client(url: str, pool_size: int, password: str | None = None) -> RedisCluster:
    """A ``RedisCluster`` for a ``redis+cluster://host:port[,host:port...]`` URL.

    The nodes given are where the client starts: it discovers the others (and every later
    change of the topology) from them. As for one server (:func:`.client.make_client`):
    RESP2 replies as bytes, the same timeouts, no retry after a connection error (a write
    may have happened; the worker's loops retry themselves). ``MOVED`` and ``ASK``
    redirections are followed: a redirected command did not run.

    Raises:
        Misconfigured: ``pool_size`` is below 1, or the URL cannot be used.

    Example:
        >>> client = make_cluster_client("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", 4)
        >>> [node.port for node in client.startup_nodes]
        [7000, 7001]
    """
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.connection import SSLConnection, parse_url
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from runnel.adapters.redis._url import parse_hosts_url
    from runnel.adapters.redis.client import (
        CONNECT_TIMEOUT,
        HEALTH_CHECK_INTERVAL,
        SOCKET_TIMEOUT,
    )

    if pool_size < 1:
        raise Misconfigured(f"pool_size must be at least 1, got {pool_size}")
    parsed = parse_hosts_url(url)
    if parsed.kind != "cluster":
        raise Misconfigured(f"not a Redis Cluster URL: {redact_url(url)}")
    options: dict[str, Any] = dict(parse_url(parsed.single))
    for name in ("host", "port", "db", "path"):
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    options.pop("max_connections", None)
    if password is not None:
        options["password"] = password
    settings: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "socket_keepalive": True,
    }
    settings.update(options)
    try:
        return RunnelRedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in parsed.hosts],
            max_connections=pool_size * CONNECTIONS_PER_NODE_FACTOR,
            protocol=2,
            decode_responses=False,
            retry=Retry(NoBackoff(), 0),
            **settings,
        )
    except (ValueError, TypeError) as exc:
        raise Misconfigured(f"cannot use Redis URL {redact_url(url)}: {exc}") from None
