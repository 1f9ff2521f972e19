"""Our Lua scripts: loaded once from ``lua/*.lua`` and run by SHA.

A single call (``await script(keys, args)``) is redis-py's ``AsyncScript``: EVALSHA, with a
SCRIPT LOAD and one retry if the server does not know the SHA (after a restart or a
``SCRIPT FLUSH``). A batch goes through :func:`run_batch`: one pipeline of EVALSHAs in one
round trip. redis-py's own pipeline support would first send ``SCRIPT EXISTS`` on every
execute (a second round trip), so instead we send EVALSHA straight away and, only for the
slots that came back ``NOSCRIPT`` (they ran nothing), load the scripts and re-run those.

Example:
    >>> script_text("extend").startswith("--")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TypeAlias

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

Arg: TypeAlias = bytes | str | int
"""One EVALSHA argument as redis-py encodes it."""


@cache
def script_text(name: str) -> str:
    """The source of ``lua/<name>.lua`` (read once per process).

    Example:
        >>> "XREADGROUP" in script_text("exchange")
        True
    """
    return (
        resources.files("runnel.adapters.redis")
        .joinpath("lua")
        .joinpath(f"{name}.lua")
        .read_text("utf-8")
    )


def register(client: Redis, name: str) -> AsyncScript:
    """Register ``lua/<name>.lua`` with ``client``; no I/O until the first call.

    Example:
        >>> from redis.asyncio import Redis
        >>> len(register(Redis(), "release").sha)
        40
    """
    return client.register_script(script_text(name))


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One EVALSHA of a batch: the script, its KEYS and its ARGV."""

    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[Arg]


async def run_batch(client: Redis, calls: Sequence[ScriptCall]) -> list[object]:
    """Run ``calls`` in one pipeline; return each slot's reply or error instance.

    Slots refused with ``NOSCRIPT`` did nothing on the server, so loading their scripts
    and re-running just those slots is safe (it costs two more round trips, once per
    script cache flush).

    Args:
        client: the client to pipeline on.
        calls: the script calls, in order.

    Returns:
        One entry per call: the raw reply, or the ``ResponseError`` Redis answered with.

    Raises:
        redis.exceptions.RedisError: connection problems (the caller translates them).
    """
    results = await _pipelined(client, calls)
    stale = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if stale:
        scripts = {id(calls[i].script): calls[i].script for i in stale}
        loader = client.pipeline(transaction=False)
        for script in scripts.values():
            loader.script_load(script.script)
        shas = await loader.execute()
        for script, sha in zip(scripts.values(), shas, strict=True):
            script.sha = sha
        retried = await _pipelined(client, [calls[i] for i in stale])
        for i, result in zip(stale, retried, strict=True):
            results[i] = result
    return results


def _arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


def pack_evalsha(sha: bytes, keys: Sequence[str | bytes], args: Sequence[Arg]) -> bytes:
    """One ``EVALSHA`` in RESP, packed in one pass (the hot paths send large ones).

    Example:
        >>> pack_evalsha(b"ab", ["k"], [1])
        b'*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n$1\r\n1\r\n'
    """
    count = b"%d" % len(keys)
    parts = [
        b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
        % (3 + len(keys) + len(args), len(sha), sha, len(count), count)
    ]
    append = parts.append
    for value in (*keys, *args):
        raw = value if type(value) is bytes else _arg(value)
        append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


async def call_packed(
    client: Redis, script: AsyncScript, keys: Sequence[str | bytes], args: Sequence[Arg]
) -> object:
    """Run one script call on a pooled connection, packing the command ourselves.

    redis-py's generic command path costs about a microsecond per argument, which adds up
    for the multi-partition read and acknowledgement calls of every round; this packs the
    RESP request in one pass and reads the reply with the connection's parser. A script
    the server does not know (``NOSCRIPT``: nothing ran) is loaded and called once more.
    Error replies come back as the ``ResponseError`` instance (like a pipeline slot).

    Raises:
        redis.exceptions.RedisError: connection problems (the caller translates them).
    """
    for attempt in (1, 2):
        payload = pack_evalsha(script.sha.encode(), keys, args)
        pool = client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]  # unannotated
        try:
            await conn.send_packed_command(payload)
            reply = await conn.read_response()
        except ResponseError as exc:
            reply = exc
        except BaseException:
            # Cancelled or failed mid-reply: the connection's state is unknown now.
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)
        if isinstance(reply, NoScriptError) and attempt == 1:
            script.sha = await client.script_load(script.script)
            continue
        return reply
    raise AssertionError("unreachable")  # pragma: no cover


async def _pipelined(client: Redis, calls: Sequence[ScriptCall]) -> list[object]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    return await pipe.execute(raise_on_error=False)
