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

import re
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runnel.adapters.redis._errors import (
    SCRIPT_NAMES,
    Refusal,
    note_refusal,
    note_reply_lost,
    refused_permission,
)
from runnel.adapters.redis._lanes import lanes_of, write

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # pragma: no cover - hiredis comes with redis[hiredis]
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None

Arg: TypeAlias = bytes | str | int
"""One EVALSHA argument as redis-py encodes it."""


_INCLUDE = re.compile(r"^--!include (?P<name>[a-z_]+)$", re.MULTILINE)


@cache
def script_text(name: str) -> str:
    """The source of ``lua/<name>.lua`` (read once per process).

    A line ``--!include _cap`` stands for the shared file ``lua/_cap.lua`` (the length
    cap rule that ``append.lua`` and ``commit.lua`` both apply), placed at the top of
    the script. Only whole files are joined: no value is ever built into Lua source.

    Example:
        >>> "XREADGROUP" in script_text("exchange")
        True
        >>> "local function cap_check" in script_text("commit")
        True
    """
    text = (
        resources.files("runnel.adapters.redis")
        .joinpath("lua")
        .joinpath(f"{name}.lua")
        .read_text("utf-8")
    )
    included = [script_text(m["name"]) for m in _INCLUDE.finditer(text)]
    return "\n".join([*included, text]) if included else text


_CALLS = re.compile(r"redis\.p?call\('([A-Za-z]+)'")


@cache
def script_commands(name: str) -> tuple[str, ...]:
    """The commands ``lua/<name>.lua`` runs (what its user must be allowed), sorted.

    Example:
        >>> script_commands("acquire")
        ('EXISTS', 'INCR', 'SET', 'TIME')
    """
    return tuple(sorted({c.upper() for c in _CALLS.findall(script_text(name))}))


def user_of(client: object) -> str:
    """The name of the Redis user ``client`` authenticates as (``default`` without one).

    A cluster client has no pool of its own: its nodes' connection options are on it.
    """
    source = getattr(client, "connection_pool", client)
    kwargs = getattr(source, "connection_kwargs", {})
    return str(kwargs.get("username") or "default")


class Script(AsyncScript):
    """One of our scripts: redis-py's ``AsyncScript``, whose refused calls say which script
    it was, what it runs and on which keys (:class:`~runnel.errors.PermissionDenied`)."""

    def __init__(self, client: Redis, name: str) -> None:
        super().__init__(client, script_text(name))
        self.name = name
        SCRIPT_NAMES[self.sha] = name

    def refusal(self, keys: Iterable[Any]) -> Refusal:
        """What a refused call of this script was doing."""
        return Refusal(
            keys=tuple(_text(k) for k in keys),
            script=self.name,
            commands=script_commands(self.name),
            user=user_of(self.registered_client),
        )

    async def __call__(
        self,
        keys: Sequence[Any] | None = None,
        args: Iterable[Any] | None = None,
        client: Any = None,
    ) -> Any:
        try:
            return await super().__call__(keys=keys, args=args, client=client)
        except ResponseError as exc:
            if refused_permission(exc):
                note_refusal(exc, self.refusal(keys or ()))
            raise


def _text(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)


def register(client: Redis, name: str) -> Script:
    """Register ``lua/<name>.lua`` with ``client``; no I/O until the first call.

    Example:
        >>> from redis.asyncio import Redis
        >>> len(register(Redis(), "release").sha)
        40
    """
    return Script(client, name)


def _arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return str(value).encode()


def pack_evalsha(sha: bytes, keys: Sequence[str | bytes], args: Sequence[Arg]) -> bytes:
    """One ``EVALSHA`` in RESP, packed in one pass (the hot paths send large ones).

    With hiredis installed (redis-py's ``hiredis`` extra, a dependency of runnel) its C
    packer does it; the same bytes come out either way.

    Example:
        >>> pack_evalsha(b"ab", ["k"], [1])
        b'*5\\r\\n$7\\r\\nEVALSHA\\r\\n$2\\r\\nab\\r\\n$1\\r\\n1\\r\\n$1\\r\\nk\\r\\n$1\\r\\n1\\r\\n'
        >>> pack_evalsha(b"ab", ["k"], [1]) == _pack_python(b"ab", ["k"], [1])
        True
    """
    if _hiredis_pack is not None:
        return _hiredis_pack((b"EVALSHA", sha, len(keys), *keys, *args))
    return _pack_python(sha, keys, args)


def _pack_python(sha: bytes, keys: Sequence[str | bytes], args: Sequence[Arg]) -> bytes:
    count = b"%d" % len(keys)
    parts = [
        b"*%d\r\n$7\r\nEVALSHA\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
        % (3 + len(keys) + len(args), len(sha), sha, len(count), count)
    ]
    append = parts.append
    for value in (*keys, *args):
        # Inline rather than through _arg(): a call per argument shows in one-record sends.
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str):
            raw = value.encode()
        else:
            raw = b"%d" % value if type(value) is int else str(value).encode()
        append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


async def call_packed(
    client: Redis, script: AsyncScript, keys: Sequence[str | bytes], args: Sequence[Arg]
) -> object:
    """Run one script call on a pooled connection, packing the command ourselves.

    redis-py's generic command path costs about a microsecond per argument, which adds up
    for the multi-partition read and acknowledgement calls of every round; this packs the
    RESP request in one pass, writes it on a kept connection when one is free
    (:mod:`runnel.adapters.redis._lanes`) and reads the reply with the connection's
    parser. A script the server does not know (``NOSCRIPT``: nothing ran) is loaded and
    called once more.
    Error replies come back as the ``ResponseError`` instance (like a pipeline slot).

    Raises:
        redis.exceptions.RedisError: connection problems (the caller translates them).
    """
    for attempt in (1, 2):
        payload = pack_evalsha(script.sha.encode(), keys, args)
        lanes = lanes_of(client)
        conn = await lanes.take()
        try:
            await write(conn, payload)
            try:
                reply = await conn.read_response()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                note_reply_lost(exc)  # the request was written: its outcome is unknown
                raise
        except ResponseError as exc:
            reply = exc
        except BaseException:
            # Cancelled or failed mid-reply: the connection's state is unknown now.
            await conn.disconnect(nowait=True)
            raise
        finally:
            await lanes.give(conn)
        if isinstance(reply, NoScriptError) and attempt == 1:
            script.sha = await client.script_load(script.script)
            continue
        if (
            isinstance(reply, ResponseError)
            and isinstance(script, Script)
            and refused_permission(reply)
        ):
            note_refusal(reply, script.refusal(keys))
        return reply
    raise AssertionError("unreachable")  # pragma: no cover
