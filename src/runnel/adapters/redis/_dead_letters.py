"""Dead-lettering as a watched transaction, for entries of any size and field count.

A dead letter copies every field of the failed entry into the sink, plus the error's
fields, then acknowledges the source entry, atomically and fenced by the lease. A Lua
script cannot do that for every entry Redis can hold: its arguments reach ``XADD``
through ``unpack()``, which stops at about 8,000 values, so an entry of 20,000 fields
could never be dead-lettered and its partition was stuck for good. The fields travel as
an ordinary command instead:

1. ``WATCH`` the lease lock and the sink, ``GET`` the lock: if another token holds it,
   ``INCR`` the refusal counter and raise :class:`~runnel.errors.Fenced` (nothing
   written);
2. ``TYPE`` of the sink: a key of another type (not a stream, not missing) is refused
   with :class:`~runnel.errors.BackendProtocolError`, nothing written; with a
   ``sink_cap``, a full sink (``XLEN``) is refused with
   :class:`~runnel.errors.BackpressureError`;
3. ``MULTI``, ``XADD`` the sink, ``XACK`` the source entry, ``EXEC``.

``EXEC`` runs only if neither the lock nor the sink was written in between (the lock
taken by a new owner or renewed by our own lease keeper, another dead letter appended);
an aborted attempt looks again. The sink's type is checked first because a transaction
is not rolled back when one of its commands fails: an ``XADD`` refused inside it
(``WRONGTYPE``) would leave the ``XACK`` done, and the entry acknowledged without its
dead letter would be lost. ``XACK`` cannot fail on a missing group (it answers 0).

Example:
    >>> ATTEMPTS
    8
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis
from redis.exceptions import WatchError

from runnel.adapters.redis import _replies
from runnel.errors import BackendProtocolError, BackendUnavailable, BackpressureError, Fenced
from runnel.ports import DeadLetter

ATTEMPTS: Final = 8
"""Transactions tried before the dead letter fails (it stays pending and is retried)."""


async def dead_letter_watched(client: Redis, letter: DeadLetter) -> bytes:
    """Append ``letter`` to its sink and acknowledge its source entry; the sink id.

    Raises:
        Fenced: the lease is gone (counted; nothing written or acknowledged).
        BackpressureError: the sink holds ``sink_cap`` letters (nothing written).
        BackendProtocolError: the sink key holds another type (nothing written).
        BackendUnavailable: the lock kept changing during every attempt.
        redis.exceptions.RedisError: anything else (the caller translates it).
    """
    fence = letter.fence
    cap = letter.sink_cap
    async with client.pipeline(transaction=True) as pipe:
        for _ in range(ATTEMPTS):
            # The sink is always watched: its type and length are checked before the
            # transaction, and a letter written meanwhile means looking again.
            watched = [fence.lock_key] if fence is not None else []
            await pipe.watch(*watched, letter.sink_key)
            if fence is not None:
                holder = await pipe.get(fence.lock_key)
                if holder != fence.token:
                    await pipe.reset()  # type: ignore[no-untyped-call]  # unannotated in redis-py
                    await client.incr(fence.counter_key)
                    raise Fenced(
                        f"lease {fence.lock_key} is no longer held by this owner (a dead "
                        f"letter for {letter.key} entry {letter.id.decode()} was refused)"
                    )
            kind = _replies.as_bytes(await pipe.type(letter.sink_key))
            if kind not in (b"stream", b"none"):
                await pipe.reset()  # type: ignore[no-untyped-call]  # unannotated in redis-py
                raise BackendProtocolError(
                    f"dead-letter sink {letter.sink_key} holds a {kind.decode()}, not a stream "
                    f"(WRONGTYPE): {letter.key} entry {letter.id.decode()} was not dead-lettered "
                    "and stays pending"
                )
            if cap is not None:
                held = _replies.as_int(await pipe.xlen(letter.sink_key))
                if held >= cap:
                    await pipe.reset()  # type: ignore[no-untyped-call]  # unannotated in redis-py
                    raise BackpressureError(
                        f"dead-letter stream {letter.sink_key!r} is full ({held} of {cap} "
                        "letters kept until purged): the letter was not written"
                    )
            pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            pipe.xadd(letter.sink_key, dict(letter.fields))  # type: ignore[arg-type]  # bytes fields
            pipe.xack(letter.key, letter.group, letter.id)
            try:
                sink_id, _ = await pipe.execute()
            except WatchError:
                continue  # the lock or the sink was written meanwhile: look again
            return _replies.as_bytes(sink_id)
    raise BackendUnavailable(
        f"could not dead-letter {letter.key} entry {letter.id.decode()}: its lease lock "
        f"changed during each of {ATTEMPTS} attempts"
    )
