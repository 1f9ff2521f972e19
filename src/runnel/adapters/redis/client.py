"""Building the redis-py client the Redis adapters share.

Example:
    >>> client = make_client("redis://127.0.0.1:6379/0", pool_size=4)   # connects lazily
    >>> client.connection_pool.max_connections
    4
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

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


def make_client(url: str, pool_size: int) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with at most ``pool_size`` connections.

    RESP2 replies as bytes (``protocol=2``, ``decode_responses=False``), as the adapters'
    reply parsers expect. The pool blocks (up to :data:`POOL_TIMEOUT`) instead of failing
    when every connection is busy. Commands are never retried by the client: a connection
    that drops after an append reached the server would make a retry write it twice, so
    failures surface as :class:`~runnel.errors.BackendUnavailable` and the caller decides
    (the worker's loops retry reads, acknowledgements and renewals themselves). Idle
    connections are checked with a PING before reuse. Options in the URL's query string
    win over these defaults. Nothing connects until the first command.

    Args:
        url: ``redis://``, ``rediss://`` (TLS) or ``unix://`` URL.
        pool_size: the maximum number of connections.

    Raises:
        Misconfigured: ``pool_size`` is below 1, or the URL cannot be used.

    Example:
        >>> make_client("unix:///run/redis.sock?db=2", 8).connection_pool.connection_kwargs["db"]
        2
    """
    if pool_size < 1:
        raise Misconfigured(f"pool_size must be at least 1, got {pool_size}")
    tcp = not url.lower().startswith("unix://")
    extra: dict[str, object] = {"socket_keepalive": True} if tcp else {}
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
    except ValueError as exc:
        raise Misconfigured(f"cannot use Redis URL: {exc}") from exc
    return Redis.from_pool(pool)
