"""Building the redis-py client the Redis adapters share.

Example:
    >>> client = make_client("redis://127.0.0.1:6379/0", pool_size=4)   # connects lazily
    >>> client.connection_pool.max_connections
    4
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from runnel._redact import redact_url
from runnel.adapters.redis._errors import (
    Refusal,
    note_refusal,
    note_reply_lost,
    refused_permission,
)
from runnel.adapters.redis._scripts import user_of
from runnel.adapters.redis._url import check_url
from runnel.errors import Misconfigured

SOCKET_TIMEOUT = 15.0
"""Seconds a command may wait for its reply before it fails as BackendUnavailable.

Blocking reads stay under it: ``RedisStreamLog.wait`` blocks in shorter slices."""

CONNECT_TIMEOUT = 5.0
"""Seconds to establish a connection."""

POOL_TIMEOUT = 20.0
"""Seconds a call waits for a free pooled connection when all ``pool_size`` are busy."""

HEALTH_CHECK_INTERVAL = 15
"""A connection idle longer than this many seconds is PINGed before it is reused."""


class RunnelRedis(Redis):
    """redis-py's client, whose refused commands note the command, keys and user.

    Redis 7.0 names neither the key nor the user in a ``NOPERM`` reply ("no permissions
    to access one of the keys used as arguments"): the note lets
    :class:`~runnel.errors.PermissionDenied` name them.
    """

    async def parse_response(self, connection: Any, command_name: Any, **options: Any) -> Any:
        """Read a reply; a connection lost or timed out here is marked "reply lost".

        redis-py reads the reply only once the request was written whole: a failure now
        leaves the request's outcome unknown (``send`` raises
        :class:`~runnel.errors.OutcomeUnknown`), while one before it means nothing was
        sent.
        """
        try:
            return await super().parse_response(connection, command_name, **options)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            note_reply_lost(exc)
            raise

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]  # unannotated in redis-py
        except ResponseError as exc:
            # A script call is noted by the script itself (runnel.adapters.redis._scripts),
            # which knows its name, its commands and which of its arguments are keys.
            if refused_permission(exc) and not _is_script_call(args):
                note_refusal(exc, _refusal(self, args))
            raise


def _is_script_call(args: tuple[Any, ...]) -> bool:
    name = args[0] if args else b""
    text = name.decode() if isinstance(name, bytes) else str(name)
    return text.upper().startswith(("EVAL", "FCALL"))


def _refusal(client: Redis, args: tuple[Any, ...]) -> Refusal:
    words = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in args]
    command = words[0].upper() if words else "(unknown)"
    rest = words[1:]
    if "STREAMS" in (w.upper() for w in rest):  # XREAD, XREADGROUP: keys, then as many ids
        at = [w.upper() for w in rest].index("STREAMS") + 1
        names = rest[at:]
        keys = names[: len(names) // 2]
    elif command in ("MGET", "DEL", "EXISTS", "WATCH", "UNLINK"):
        keys = rest
    elif command in ("CONFIG GET", "INFO", "PING", "TIME", "SCRIPT LOAD", "ACL DRYRUN"):
        keys = []
    else:
        keys = rest[:1]
    return Refusal(command=command, keys=tuple(keys), user=user_of(client))


def make_client(url: str, pool_size: int, password: str | None = None) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with at most ``pool_size`` connections.

    RESP2 replies as bytes (``protocol=2``, ``decode_responses=False``), as the adapters'
    reply parsers expect. The pool blocks (up to :data:`POOL_TIMEOUT`) instead of failing
    when every connection is busy. Commands are never retried by the client: a connection
    that drops after an append reached the server would make a retry write it twice, so
    failures surface as :class:`~runnel.errors.BackendUnavailable` and the caller decides
    (the worker's loops retry reads, acknowledgements and renewals themselves). Idle
    connections are checked with a PING before reuse. Options in the URL's query string
    win over these defaults. Nothing connects until the first command.

    The URL is checked first (:func:`runnel.adapters.redis._url.check_url`): an unknown
    option, a missing certificate or key file, or a bad db number is one clear
    :class:`~runnel.errors.Misconfigured` naming it, and turning TLS certificate checks off
    logs a WARNING.

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.
        pool_size: the maximum number of connections.
        password: the user's password, when it is not in ``url``.

    Raises:
        Misconfigured: ``pool_size`` is below 1, or the URL cannot be used.

    Example:
        >>> make_client("unix:///run/redis.sock?db=2", 8).connection_pool.connection_kwargs["db"]
        2
    """
    if pool_size < 1:
        raise Misconfigured(f"pool_size must be at least 1, got {pool_size}")
    check_url(url)
    tcp = not url.lower().startswith("unix://")
    extra: dict[str, object] = {"socket_keepalive": True} if tcp else {}
    if password is not None:
        extra["password"] = password
    try:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=POOL_TIMEOUT,
            protocol=2,
            decode_responses=False,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            health_check_interval=HEALTH_CHECK_INTERVAL,
            retry=Retry(NoBackoff(), 0, supported_errors=(RedisConnectionError,)),
            **extra,
        )
    except (ValueError, TypeError) as exc:
        raise Misconfigured(f"cannot use Redis URL {redact_url(url)}: {exc}") from None
    return RunnelRedis.from_pool(pool)
