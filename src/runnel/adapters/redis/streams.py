"""RedisStreamLog: the :class:`~runnel.ports.StreamLog` and
:class:`~runnel.ports.StreamAdmin` ports on Redis Streams.

Every batch method is one round trip: ``append`` is one Lua script call for the whole
batch, and ``exchange`` (acknowledging, reading, or both) one watched transaction, or one
call of ``exchange.lua``, for every partition of a fetch round, whose slots succeed or fail
independently. Fenced slots check the lease token inside the script, so a stale owner can
neither read (steal entries into the pending list) nor acknowledge.

Example:
    >>> from redis.asyncio import Redis
    >>> log = RedisStreamLog(Redis())   # no I/O until the first call
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import KeyT, StreamIdT

from runnel.adapters.redis import _errors, _replies
from runnel.adapters.redis._dead_letters import dead_letter_watched
from runnel.adapters.redis._errors import (
    Refusal,
    note_refusal,
    permission_denied,
    refused_permission,
    reply_lost,
    translate,
    translated,
)
from runnel.adapters.redis._scripts import Arg, call_packed, pack_evalsha, register, user_of
from runnel.adapters.redis._watched import exchange_watched, pack
from runnel.domain.model import Entry, Fields
from runnel.domain.resize import MARKER_FIELD
from runnel.errors import (
    BackendFull,
    BackendProtocolError,
    BackendUnavailable,
    Misconfigured,
    OutcomeUnknown,
    PermissionDenied,
    StreamResized,
)
from runnel.ports import (
    AckRequest,
    Append,
    Cap,
    Commit,
    DeadLetter,
    Fence,
    GroupInfo,
    GroupProbe,
    GroupSnapshot,
    KeyPeek,
    PendingEntry,
    ReadRequest,
    Routing,
)

REDIS_PY_SOCKET_TIMEOUT = 5.0
"""redis-py's socket timeout (seconds) for a pool built from a URL without one."""


def block_slice_ms(client: Redis) -> int | None:
    """The longest ``XREAD BLOCK`` (ms) that fits in ``client``'s socket timeout.

    A blocking read that outlasts the socket timeout would fail as a timeout, so
    :meth:`RedisStreamLog.wait` blocks in slices of at most this long: half the timeout,
    because Redis may answer a timed-out ``BLOCK`` up to one server tick (100 ms at the
    default ``hz 10``) late. ``None`` when the client has no socket timeout.

    Example:
        >>> from redis.asyncio import Redis
        >>> block_slice_ms(Redis(socket_timeout=2.0)), block_slice_ms(Redis(socket_timeout=None))
        (1000, None)
    """
    timeout = client.connection_pool.connection_kwargs.get(
        "socket_timeout", REDIS_PY_SOCKET_TIMEOUT
    )
    if timeout is None:
        return None
    return max(1, int(float(timeout) * 500))


def _to_ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _flat(fields: Fields) -> list[Arg]:
    out: list[Arg] = []
    for name, value in fields.items():
        out.append(name)
        out.append(value)
    return out


@contextlib.contextmanager
def _noting(client: Redis, keys: Sequence[str]) -> Iterator[None]:
    """Note the keys of a transaction on a permission it was refused (Redis names only
    the command)."""
    try:
        yield
    except ResponseError as exc:
        if refused_permission(exc):
            note_refusal(exc, Refusal(keys=tuple(dict.fromkeys(keys)), user=user_of(client)))
        raise


def _require_fields(fields: Fields, key: str) -> None:
    # Redis refuses XADD without fields; refusing here keeps a batch all-or-nothing.
    if not fields:
        raise BackendProtocolError(f"an entry needs at least one field; the one for {key} has none")


class RedisStreamLog:
    """Partitioned logs with consumer groups on Redis Streams (7.0 or later).

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=False`` (see
            :func:`runnel.adapters.redis.client.make_client`).

    Example:
        >>> from redis.asyncio import Redis
        >>> RedisStreamLog(Redis(socket_timeout=10.0))._block_slice
        5000
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._append = register(client, "append")
        self._exchange = register(client, "exchange")
        self._commit = register(client, "commit")
        self._count = register(client, "count")
        self._outbox = register(client, "outbox")
        self._switch = register(client, "switch")
        self._block_slice = block_slice_ms(client)

    async def append(
        self,
        entries: Sequence[Append],
        cap: Cap | None = None,
        window: float = 0.0,
        routing: Routing | None = None,
    ) -> list[bytes]:
        """Append ``entries`` atomically, in order, in one script call; return their ids.

        Entries with an ``idempotency_key`` already remembered are not added again (see
        the port).

        Raises:
            BackpressureError: a lossless ``cap`` would trim an unacknowledged entry.
            StreamResized: a partition routes with another count than ``routing``'s.
        """
        if not entries:
            return []
        keys, args, nstreams = append_call(entries, cap, window, routing)
        try:
            with translated():
                # Packed in one pass (redis-py's generic path costs about a microsecond an
                # argument, a large share of a one-record send).
                raw = await call_packed(self._client, self._append, keys, args)
            if isinstance(raw, ResponseError):
                raise translate(raw) from raw
        except StreamResized as exc:
            exc.ids = [b""] * len(entries)
            raise
        except BackendUnavailable as exc:
            if isinstance(exc, BackendFull) or not reply_lost(exc):
                raise  # nothing was written: safe to send again
            count = len(entries)
            keyed = all(entry.idempotency_key is not None for entry in entries)
            raise OutcomeUnknown(
                f"the append of {count} entr{'y' if count == 1 else 'ies'} to "
                f"{', '.join(keys[:nstreams])} was sent and its reply was lost ({exc}): it "
                "may or may not have been written, and "
                + (
                    "sending it again with the same idempotency keys is safe"
                    if keyed
                    else "sending it again may write it twice"
                ),
                cause=str(exc),
            ) from exc
        return _replies.ids(raw, len(entries))

    async def commit(self, commit: Commit) -> list[bytes] | None:
        """Outputs, state changes and the acknowledgement in one call of ``commit.lua``.

        Raises:
            Fenced: the lease is gone (counted; nothing was written).
            BackpressureError: an output's lossless cap has no room (nothing was written).
        """
        keys, args = commit_call(commit)
        with translated():
            raw = await call_packed(self._client, self._commit, keys, args)
        return commit_reply(raw, len(commit.outputs))

    def colocated(self, key: str, other: str) -> bool:
        """Always: one server runs a script on any keys."""
        return True

    async def read_outbox(self, outbox: str, fence: Fence, count: int) -> list[Entry]:
        """The oldest ``count`` entries of ``outbox``, fenced (``outbox.lua``).

        Raises:
            Fenced: the lease is gone (counted; nothing is returned).
        """
        raw = await self._run_outbox(*outbox_call(outbox, fence, ["read", count]))
        return _replies.entries_from_script(raw)

    async def drop_relayed(self, outbox: str, fence: Fence, ids: Sequence[bytes]) -> int:
        """Delete ``ids`` from ``outbox``, fenced; how many entries it still holds.

        Raises:
            Fenced: the lease is gone (counted; nothing was deleted).
        """
        if not ids:
            return 0
        raw = await self._run_outbox(*outbox_call(outbox, fence, ["drop", *ids]))
        return _replies.as_int(raw)

    async def _run_outbox(self, keys: list[str], args: list[Arg]) -> Any:
        """One call of ``outbox.lua`` (Redis Cluster sends it to the outbox's node)."""
        with translated():
            return await self._outbox(keys=keys, args=args)

    async def ensure_group(self, key: str, group: str, start: bytes = b"0") -> bool:
        """Create ``group`` on ``key`` (and the stream) at ``start``; False if it exists."""
        with translated():
            try:
                await self._client.xgroup_create(key, group, start, mkstream=True)
            except ResponseError as exc:
                if str(exc).startswith("BUSYGROUP"):
                    return False
                raise
        return True

    async def exchange(
        self, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
    ) -> tuple[list[int | Exception], list[list[Entry] | Exception]]:
        """Acknowledge ``acks``, then read ``reads``, in one step (see the port).

        Rounds that read go as a watched transaction (:mod:`._watched`: no Lua between the
        stream and the reply); acknowledgements alone, and rounds whose transaction kept
        being disturbed, as one call of ``exchange.lua``.
        """
        if not acks and not reads:
            return [], []
        if reads:
            with (
                translated(),
                _noting(self._client, [*(a.key for a in acks), *(r.key for r in reads)]),
            ):
                done = await exchange_watched(self._client, acks, reads)
            if done is not None:
                return done
        keys, args = exchange_call(acks, reads)
        with translated():
            raw = await call_packed(self._client, self._exchange, keys, args)
        if isinstance(raw, Exception):
            raise translate(raw)
        return _replies.exchange_slots(
            raw,
            [a.fence.lock_key if a.fence else a.key for a in acks],
            [r.fence.lock_key if r.fence else r.key for r in reads],
        )

    async def wait(self, after: Mapping[str, bytes], timeout: float) -> set[str]:
        """Block up to ``timeout`` seconds until a key has an entry above ``after[key]``.

        A read-only ``XREAD BLOCK`` (never ``BLOCK 0``, at least 1 ms), repeated in slices
        shorter than the client's socket timeout until data arrives or time is up.
        """
        if not after:
            await asyncio.sleep(max(0.0, timeout))
            return set()
        streams: dict[KeyT, StreamIdT] = dict(after.items())
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            block = max(1, _to_ms(deadline - time.monotonic()))
            if self._block_slice is not None:
                block = min(block, self._block_slice)
            with translated():
                read = self._client.xread(streams, count=1, block=block)
                raw = await (read if _errors.COUNTS_CANCELLATIONS else _errors.cancellable(read))
            woken = _replies.woken_keys(raw)
            if woken or time.monotonic() >= deadline:
                return woken

    async def wait_and_read(
        self, after: Mapping[str, bytes], timeout: float, reads: Sequence[ReadRequest]
    ) -> tuple[set[str], list[list[Entry] | Exception] | None]:
        """:meth:`wait`, with one ``exchange.lua`` read of ``reads`` pipelined behind each
        ``XREAD BLOCK`` on the same connection.

        Redis runs a connection's commands in order: the moment the ``XREAD`` answers
        (new entries, or its slice timed out), the script runs, fenced then and there, with
        no round trip in between. A slice whose read found nothing goes on to the next.
        """
        if not reads:
            return await self.wait(after, timeout), []
        keys, args = exchange_call((), reads)
        locks = [r.fence.lock_key if r.fence else r.key for r in reads]
        if not after:
            await asyncio.sleep(max(0.0, timeout))
            with translated():
                raw = await call_packed(self._client, self._exchange, keys, args)
            return set(), self._read_results(raw, keys, locks)
        streams = list(after)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            block = max(1, _to_ms(deadline - time.monotonic()))
            if self._block_slice is not None:
                block = min(block, self._block_slice)
            wake: list[Arg] = ["XREAD", "COUNT", 1, "BLOCK", block, "STREAMS", *streams]
            wake += [after[key] for key in streams]
            with translated():
                call = self._wake_and_read(wake, keys, args)
                woke, raw = await (
                    call if _errors.COUNTS_CANCELLATIONS else _errors.cancellable(call)
                )
            if isinstance(woke, ResponseError):
                raise translate(woke)
            results = self._read_results(raw, keys, locks)
            woken = _replies.woken_keys(woke)
            if woken or time.monotonic() >= deadline or any(results):
                return woken, results  # a refused slot (an exception) counts as news too

    async def _wake_and_read(
        self, wake: Sequence[Arg], keys: Sequence[str], args: Sequence[Arg]
    ) -> tuple[object, object]:
        """One ``XREAD BLOCK`` and one ``exchange.lua`` call, sent together; both replies
        (an error reply as its ``ResponseError``)."""
        payload = pack([wake]) + pack_evalsha(self._exchange.sha.encode(), keys, args)
        pool = self._client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # unannotated
        replies: list[object] = []
        try:
            await conn.send_packed_command(payload)
            for _ in range(2):
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            # Cancelled or failed mid-reply: the connection's state is unknown now.
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)
        woke, raw = replies
        if isinstance(raw, NoScriptError):  # nothing read: load it, and read in a call
            raw = await call_packed(self._client, self._exchange, keys, args)
        return woke, raw

    def _read_results(
        self, raw: object, keys: Sequence[str], locks: Sequence[str]
    ) -> list[list[Entry] | Exception]:
        """The read slots of an ``exchange.lua`` reply that carries no acknowledgement.

        A slot refused a permission was refused its ``XREADGROUP`` (the one command the
        script runs in a protected call): the refusal names it and the stream, as the
        transaction of a round would.
        """
        if isinstance(raw, ResponseError) and refused_permission(raw):
            note_refusal(raw, self._exchange.refusal(keys))
        if isinstance(raw, Exception):
            raise translate(raw)
        results = _replies.exchange_slots(raw, [], locks)[1]
        for i, result in enumerate(results):
            if isinstance(result, PermissionDenied) and result.command is None:
                said = _replies.as_bytes(_slot_message(raw, i)).decode("utf-8", "replace")
                note = Refusal(
                    command="xreadgroup", keys=(keys[3 * i],), user=user_of(self._client)
                )
                results[i] = permission_denied(ResponseError(said), note)
        return results

    async def dead_letter(self, letter: DeadLetter) -> bytes:
        """Append to the sink and ack the source entry atomically; return the sink id.

        A watched transaction (:mod:`._dead_letters`), not a script: the entry's fields
        go as one ``XADD``, however many there are.

        Raises:
            Fenced: the lease is gone; nothing was written or acknowledged.
        """
        _require_fields(letter.fields, letter.sink_key)
        with translated(), _noting(self._client, [letter.sink_key, letter.key]):
            return await dead_letter_watched(self._client, letter)

    async def range(
        self, key: str, start: bytes = b"-", end: bytes = b"+", count: int | None = None
    ) -> list[Entry]:
        """Entries of ``key`` with ids in ``[start, end]``; ``(id`` excludes ``id``."""
        with translated():
            raw = await self._client.xrange(key, start, end, count=count)
        return _replies.stream_entries(raw)

    async def length(self, key: str) -> int:
        """XLEN (0 for a missing key)."""
        with translated():
            return _replies.as_int(await self._client.xlen(key))

    async def groups(self, key: str) -> list[GroupInfo]:
        """The consumer groups of ``key`` (empty if the stream is missing)."""
        with translated():
            try:
                raw = await self._client.xinfo_groups(key)
            except ResponseError as exc:
                if refused_permission(exc) or await self._client.exists(key):
                    raise
                return []
        return _replies.groups(raw)

    async def pending(
        self, key: str, group: str, count: int = 100, consumer: str | None = None
    ) -> list[PendingEntry]:
        """Up to ``count`` pending entries of ``group`` (of ``consumer``) in id order."""
        with translated():
            raw = await self._client.xpending_range(
                key, group, min="-", max="+", count=count, consumername=consumer
            )
        return _replies.pending_entries(raw)

    async def destroy_group(self, key: str, group: str) -> bool:
        """XGROUP DESTROY; False if the group (or the stream) did not exist."""
        with translated():
            try:
                return bool(await self._client.xgroup_destroy(key, group))
            except ResponseError as exc:
                if refused_permission(exc) or await self._client.exists(key):
                    raise
                return False

    # ------------------------------------------------------------------ operators

    async def snapshot(self, probes: Sequence[GroupProbe]) -> list[GroupSnapshot]:
        """Each probed partition's summaries, in one pipeline (see :func:`_replies.snapshot`)."""
        if not probes:
            return []
        with translated():
            async with self._client.pipeline(transaction=False) as pipe:
                for probe in probes:
                    pipe.xlen(probe.key)
                    pipe.xrange(probe.key, "-", "+", count=1)
                    pipe.xrevrange(probe.key, "+", "-", count=1)
                    pipe.xinfo_groups(probe.key)
                    pipe.xpending_range(probe.key, probe.group, min="-", max="+", count=1)
                    pipe.get(probe.lock_key)
                    pipe.pttl(probe.lock_key)
                raw = await pipe.execute(raise_on_error=False)
            for i, probe in enumerate(probes):
                self._note_refusals(raw[7 * i : 7 * i + 7], [probe.key, probe.lock_key])
            return [
                _replies.snapshot(raw[7 * i : 7 * i + 7], probe.group)
                for i, probe in enumerate(probes)
            ]

    def _note_refusals(self, replies: Sequence[object], keys: Sequence[str]) -> None:
        """Name the keys of a pipeline's refused slots (Redis names only the command)."""
        for reply in replies:
            if isinstance(reply, ResponseError) and refused_permission(reply):
                note_refusal(reply, Refusal(keys=tuple(keys), user=user_of(self._client)))

    async def peek(self, keys: Sequence[str]) -> list[KeyPeek]:
        """GET and PTTL of each key, in one pipeline."""
        if not keys:
            return []
        with translated():
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.get(key)
                    pipe.pttl(key)
                raw = await pipe.execute(raise_on_error=False)
            for i, key in enumerate(keys):
                self._note_refusals(raw[2 * i : 2 * i + 2], [key])
            return [_replies.peek(raw[2 * i], raw[2 * i + 1]) for i in range(len(keys))]

    async def move_group(
        self, key: str, group: str, after: bytes, lock_key: str | None = None
    ) -> None:
        """``DEL`` the lease, ``XGROUP DESTROY`` and ``XGROUP CREATE ... MKSTREAM``: one
        ``MULTI``/``EXEC``, so no worker ever finds the group missing in between."""
        with translated(), _noting(self._client, [key] + ([lock_key] if lock_key else [])):
            async with self._client.pipeline(transaction=True) as pipe:
                if lock_key is not None:
                    pipe.delete(lock_key)
                pipe.exists(key)
                pipe.xgroup_destroy(key, group)
                pipe.xgroup_create(key, group, after, mkstream=True)
                raw = await pipe.execute(raise_on_error=False)
            created = raw[-1]
            if isinstance(created, Exception):
                raise translate(created)
            exists, destroyed = raw[-3], raw[-2]
            if isinstance(destroyed, Exception) and exists:
                raise translate(destroyed)

    async def count(self, key: str, start: bytes, end: bytes) -> int:
        """``count.lua``: the length of ``XRANGE key start end`` (the stream is capped)."""
        with translated(), _noting(self._client, [key]):
            return _replies.as_int(await self._count(keys=[key], args=[start, end]))

    async def delete_entries(self, key: str, ids: Sequence[bytes]) -> int:
        """XDEL."""
        if not ids:
            return 0
        with translated():
            return _replies.as_int(await self._client.xdel(key, *ids))

    async def switch(self, key: str, record: str, count: int) -> bytes:
        """``switch.lua``: record ``key``'s switch point for a resize to ``count``."""
        with translated(), _noting(self._client, [key, record]):
            raw = await self._switch(keys=[key, record], args=[count, MARKER_FIELD])
            return _replies.as_bytes(raw)


def append_call(
    entries: Sequence[Append], cap: Cap | None, window: float, routing: Routing | None
) -> tuple[list[str], list[Arg], int]:
    """The KEYS and ARGV of ``append.lua`` for ``entries``, and how many streams they name.

    KEYS: the distinct streams, their routing records (with ``routing``), the lost counter
    (with ``cap``; on Redis Cluster the first stream's own), then the distinct idempotency
    keys. ARGV: maxlen, mode, the number of streams, the idempotency window, the routed
    count, then per entry: its stream's index in KEYS, its idempotency key's (0 for none),
    its number of fields and the fields.
    """
    keys: list[str] = []
    index: dict[str, int] = {}
    for entry in entries:
        _require_fields(entry.fields, entry.key)
        if entry.key not in index:
            keys.append(entry.key)
            index[entry.key] = len(keys)
    nstreams = len(keys)
    stream = keys[0]
    keys += routing_keys(keys, routing)
    if cap is not None:
        keys.append(cap.lost_keys.get(stream, cap.lost_key) if cap.lost_keys else cap.lost_key)
    args: list[Arg] = [
        cap.maxlen if cap else 0,
        cap.mode if cap else "none",
        nstreams,
        max(1, _to_ms(window)),
        routing.count if routing is not None else 0,
    ]
    for entry in entries:
        dedup = 0
        if entry.idempotency_key is not None:
            dedup = index.get(entry.idempotency_key, 0)
            if not dedup:
                keys.append(entry.idempotency_key)
                dedup = index[entry.idempotency_key] = len(keys)
        args += [index[entry.key], dedup, len(entry.fields), *_flat(entry.fields)]
    return keys, args, nstreams


def routing_keys(streams: Sequence[str], routing: Routing | None) -> list[str]:
    """The routing record of each of ``streams`` (none without ``routing``).

    Raises:
        Misconfigured: ``routing`` names no record for one of them (a bug in the caller).
    """
    if routing is None:
        return []
    try:
        return [routing.records[key] for key in streams]
    except KeyError as exc:
        raise Misconfigured(f"no routing record for partition {exc.args[0]}") from None


def _slot_message(raw: Any, slot: int) -> Any:
    """The message of read slot ``slot`` of an ``exchange.lua`` reply (``[-1, message]``)."""
    return raw[1][slot][1]


def exchange_call(
    acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
) -> tuple[list[str], list[Arg]]:
    """The KEYS and ARGV of ``exchange.lua`` for ``acks`` then ``reads``."""
    keys: list[str] = []
    args: list[Arg] = [len(acks)]
    for a in acks:
        fence = a.fence
        if fence is None:
            keys += [a.key, a.key, a.key]  # unfenced: the lock and counter go unused
            args += [a.group, b"", len(a.ids), *a.ids]
        else:
            keys += [a.key, fence.lock_key, fence.counter_key]
            args += [a.group, fence.token, len(a.ids), *a.ids]
    for r in reads:
        fence = r.fence
        if fence is None:
            keys += [r.key, r.key, r.key]
            args += [r.group, r.consumer, r.count, r.start, b""]
        else:
            keys += [r.key, fence.lock_key, fence.counter_key]
            args += [r.group, r.consumer, r.count, r.start, fence.token]
    return keys, args


def commit_call(commit: Commit) -> tuple[list[str], list[Arg]]:
    """The KEYS and ARGV of ``commit.lua`` for ``commit``."""
    ack, state = commit.ack, commit.state
    fence = ack.fence
    if fence is None:
        raise ValueError("a commit must be fenced by the lease of its partition")
    state_key = state.key if state is not None else ack.key  # unused without state
    keys: list[str] = [ack.key, fence.lock_key, fence.counter_key, state_key]
    args: list[Arg] = [fence.token, ack.group, len(ack.ids), *ack.ids]
    if state is None:
        args += [0, 0]
    else:
        args.append(len(state.set))
        args += _flat(state.set)
        args += [len(state.delete), *state.delete]
    streams: dict[str, int] = {}
    for output in commit.outputs:
        _require_fields(output.fields, output.key)
        streams.setdefault(output.key, len(streams) + 1)
    args.append(len(streams))
    for key in streams:
        cap = commit.caps.get(key)
        keys.append(key)
        where = len(keys)
        if cap is None:
            args += [where, 0, "none", where]
        else:
            keys.append(cap.lost_keys.get(key, cap.lost_key) if cap.lost_keys else cap.lost_key)
            args += [where, cap.maxlen, cap.mode, len(keys)]
    for output in commit.outputs:
        args += [streams[output.key], len(output.fields), *_flat(output.fields)]
    return keys, args


def outbox_call(outbox: str, fence: Fence, args: Sequence[Arg]) -> tuple[list[str], list[Arg]]:
    """The KEYS and ARGV of ``outbox.lua`` (``args``: ``read`` and a count, or ``drop``
    and ids)."""
    return [outbox, fence.lock_key, fence.counter_key], [fence.token, *args]


def commit_reply(raw: object, outputs: int) -> list[bytes] | None:
    """The outputs' ids ``commit.lua`` answered, or None for "applied already".

    Raises:
        runnel.errors.BackendError: the script refused (``FENCED``, ``BACKPRESSURE``...).
    """
    if isinstance(raw, Exception):
        raise translate(raw)
    if raw == 0:
        return None
    return _replies.ids(raw, outputs)
