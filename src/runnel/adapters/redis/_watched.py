"""Fenced reads and acknowledgements as an optimistic transaction (no Lua on the hot path).

A Lua script that reads stream entries pays twice for every entry: Redis turns the
``XREADGROUP`` reply into Lua tables, and the script's return value back into a reply.
That costs Redis more than the read itself. So a fetch round is sent as:

1. ``WATCH`` every lease lock of the round, then ``MGET`` them: the reply says which leases
   still hold our tokens;
2. ``MULTI``, the ``XACK``/``XREADGROUP``/``XPENDING`` commands of the partitions whose
   leases hold (an ``INCR`` of the refusal counter for each that does not), ``EXEC``.

``EXEC`` runs only if none of the watched locks was written in between, so a stale owner
can neither read nor acknowledge: a new owner's acquisition (or a renewal, or an expiry)
aborts the transaction, and the round is tried again on fresh tokens. Two round trips
instead of one, but each entry goes straight from the stream to the reply.

:func:`exchange_watched` returns ``None`` when every attempt was aborted; the caller then
falls back to the script, which does the same in one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import redis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from runnel.adapters.redis import _replies
from runnel.adapters.redis._errors import translate
from runnel.adapters.redis._lanes import lanes_of, write
from runnel.domain.ids import MIN_ID, StreamId
from runnel.domain.model import Entry
from runnel.errors import Fenced
from runnel.ports import AckRequest, ReadRequest

ATTEMPTS: Final = 3
"""Transactions tried before the round falls back to the script."""

Command = Sequence[bytes | str | int]
Reader = Callable[[], Awaitable[Any]]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


ONE_TIMER: Final = sys.version_info >= (3, 11) and (8, 1) <= _version(redis.__version__) < (9,)
"""Whether an attempt's replies are read under one deadline instead of one per reply.

redis-py arms a timer for every ``read_response`` (one per queued command, about 35 per
round); from redis-py 8.1 on, ``timeout=math.inf`` reads a reply without one, so the
attempt takes a single ``asyncio.timeout`` of the connection's socket timeout instead
(Python 3.11 and later). Other versions read reply by reply as before (redis-py plans
to change what ``timeout`` means in its next major release)."""


def pack(commands: Sequence[Command]) -> bytes:
    """Several commands in RESP, in one buffer.

    Example:
        >>> pack([["GET", "k"]])
        b'*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n'
    """
    parts: list[bytes] = []
    append = parts.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for value in command:
            if isinstance(value, bytes):
                raw = value
            elif isinstance(value, str):
                raw = value.encode()
            else:
                raw = b"%d" % value
            append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def _history_range(start: bytes) -> bytes:
    # XREADGROUP <id> returns pending entries after <id>; XPENDING takes the same range.
    return b"-" if StreamId.parse(start) == MIN_ID else b"(" + start


async def exchange_watched(
    client: Redis, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
) -> tuple[list[int | Exception], list[list[Entry] | Exception]] | None:
    """The exchange of ``acks`` then ``reads`` as a watched transaction; None if aborted."""
    lanes = lanes_of(client)
    conn = await lanes.take()
    try:
        for _ in range(ATTEMPTS):
            read, deadline = _reading(conn)
            async with deadline:
                result = await _attempt(conn, read, acks, reads)
            if result is not None:
                return result
        return None
    except BaseException:
        # Cancelled or failed mid-reply: the connection's state is unknown now.
        await conn.disconnect(nowait=True)
        raise
    finally:
        await lanes.give(conn)


def _reading(conn: Any) -> tuple[Reader, contextlib.AbstractAsyncContextManager[Any]]:
    """How an attempt reads its replies: the reader, and the deadline to run it under."""
    if sys.version_info >= (3, 11) and ONE_TIMER:  # (the version test is for mypy too)
        read = functools.partial(conn.read_response, timeout=math.inf)
        return read, asyncio.timeout(conn.socket_timeout)
    return conn.read_response, contextlib.nullcontext()


async def _attempt(
    conn: Any, read_response: Reader, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
) -> tuple[list[int | Exception], list[list[Entry] | Exception]] | None:
    tokens: dict[str, bytes] = {}
    for fence in [a.fence for a in acks] + [r.fence for r in reads]:
        if fence is not None:
            tokens[fence.lock_key] = fence.token
    stale: set[str] = set()
    if tokens:
        locks = list(tokens)
        await write(conn, pack([["WATCH", *locks], ["MGET", *locks]]))
        await read_response()
        held = await read_response()
        stale = {k for k, v in zip(locks, held, strict=True) if v != tokens[k]}

    commands: list[Command] = [["MULTI"]]
    # What each queued reply is: ("ack", slot) | ("read", slot) | ("pending", slot) | None
    plan: list[tuple[str, int] | None] = []
    acked: list[int | Exception] = [0] * len(acks)
    read: list[list[Entry] | Exception] = [[] for _ in reads]
    for slot, a in enumerate(acks):
        if a.fence is not None and a.fence.lock_key in stale:
            acked[slot] = _fenced(a.fence.lock_key)
            commands.append(["INCR", a.fence.counter_key])
            plan.append(None)
        elif a.ids:
            commands.append(["XACK", a.key, a.group, *a.ids])
            plan.append(("ack", slot))
    for slot, r in enumerate(reads):
        if r.fence is not None and r.fence.lock_key in stale:
            read[slot] = _fenced(r.fence.lock_key)
            commands.append(["INCR", r.fence.counter_key])
            plan.append(None)
            continue
        commands.append(
            [
                "XREADGROUP",
                "GROUP",
                r.group,
                r.consumer,
                "COUNT",
                r.count,
                "STREAMS",
                r.key,
                r.start,
            ]
        )
        plan.append(("read", slot))
        if r.start != b">":
            commands.append(
                ["XPENDING", r.key, r.group, _history_range(r.start), "+", r.count, r.consumer]
            )
            plan.append(("pending", slot))
    commands.append(["EXEC"])
    # Never on a new connection: the transaction must run where the WATCH was.
    await write(conn, pack(commands), reconnect=not tokens)
    await read_response()  # OK for MULTI
    queued_error: ResponseError | None = None
    for _ in plan:
        try:
            await read_response()  # QUEUED
        except ResponseError as exc:  # a malformed command: EXEC will be refused
            queued_error = exc
    try:
        replies = await read_response()
    except ResponseError:
        if queued_error is not None:
            raise queued_error from None
        raise
    if replies is None:
        return None  # a watched lock changed: try again on fresh tokens
    pending_rows: dict[int, Any] = {}
    for what, reply in zip(plan, replies, strict=True):
        if what is None:
            continue
        kind, slot = what
        if kind == "ack":
            if isinstance(reply, ResponseError):
                acked[slot] = translate(reply)
            else:
                acked[slot] = _replies.as_int(reply)
        elif kind == "read":
            if isinstance(reply, ResponseError):
                read[slot] = translate(reply)
            else:
                read[slot] = _replies.xreadgroup_entries(reply)
        else:
            pending_rows[slot] = reply
    for slot, rows in pending_rows.items():
        entries = read[slot]
        if isinstance(entries, list):
            if isinstance(rows, ResponseError):
                read[slot] = translate(rows)
            else:
                read[slot] = _replies.with_delivery_counts(entries, rows)
    return acked, read


def _fenced(lock: str) -> Fenced:
    return Fenced(f"lease {lock} is no longer held by this owner (its lock changed hands)")
