"""Our Lua scripts: loaded once from ``lua/*.lua`` and run by SHA.

A call (``await script(keys, args)``) is redis-py's ``AsyncScript``: EVALSHA, with a
SCRIPT LOAD and one retry if the server does not know the SHA (after a restart or a
``SCRIPT FLUSH``). The hot calls of every fetch round go through :func:`call_packed`
instead, which packs the request in one pass and handles ``NOSCRIPT`` the same way.

Example:
    >>> script_text("extend").startswith("--")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
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
        b'*5\\r\\n$7\\r\\nEVALSHA\\r\\n$2\\r\\nab\\r\\n$1\\r\\n1\\r\\n$1\\r\\nk\\r\\n$1\\r\\n1\\r\\n'
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
