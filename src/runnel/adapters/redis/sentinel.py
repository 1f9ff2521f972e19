"""A client for a Sentinel-managed primary (``redis+sentinel://``).

The client asks the Sentinels where the primary of the service is before it opens a
connection, and again after the primary stopped being one: when a failover promotes a
replica, a command on a connection to the old primary fails (a connection error, or
``READONLY`` once it has been turned into a replica) as
:class:`~runnel.errors.BackendUnavailable`, the pool drops its connections, and the
worker's next call reaches the new primary. The adapters are the single-server ones, on
the single-server key layout.

Replication is asynchronous: what the old primary acknowledged but had not passed on to
the replica is gone after a failover (``docs/architecture.md`` says what that means for
sends, acknowledgements and leases, and how ``wait_replicas`` narrows it).

Example:
    >>> client = make_sentinel_client("redis+sentinel://127.0.0.1:26379/main", 4)
    >>> client.connection_pool.service_name
    'main'
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from runnel._redact import redact_url
from runnel.adapters.redis._url import parse_hosts_url
from runnel.adapters.redis.client import (
    CONNECT_TIMEOUT,
    HEALTH_CHECK_INTERVAL,
    POOL_TIMEOUT,
    SOCKET_TIMEOUT,
    RunnelRedis,
)
from runnel.errors import Misconfigured

SENTINEL_TIMEOUT = 2.0
"""Seconds a question to one Sentinel may take before the next Sentinel is asked."""


class BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool, which waits for a free connection (as the single-server one does)
    instead of failing when all ``max_connections`` are busy."""


def make_sentinel_client(url: str, pool_size: int, password: str | None = None) -> Redis:
    """A client of the primary a ``redis+sentinel://host:port[,...]/service`` URL names.

    The connection options (``?db=``, timeouts, TLS with ``rediss+sentinel://``, the user
    and password) are the primary's; the Sentinels are asked without them. Defaults as for
    one server (:func:`runnel.adapters.redis.client.make_client`).

    Raises:
        Misconfigured: ``pool_size`` is below 1, or the URL cannot be used.
    """
    from redis.asyncio.connection import SSLConnection, parse_url

    if pool_size < 1:
        raise Misconfigured(f"pool_size must be at least 1, got {pool_size}")
    parsed = parse_hosts_url(url)
    if parsed.kind != "sentinel":
        raise Misconfigured(f"not a Redis Sentinel URL: {redact_url(url)}")
    options: dict[str, Any] = dict(parse_url(parsed.single))
    for name in ("host", "port", "path"):
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
    sentinels = Sentinel(
        list(parsed.hosts),
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT,
            "socket_connect_timeout": SENTINEL_TIMEOUT,
            "protocol": 2,
        },
    )
    try:
        client = sentinels.master_for(
            parsed.service,
            redis_class=RunnelRedis,
            connection_pool_class=BlockingSentinelPool,
            max_connections=pool_size,
            timeout=POOL_TIMEOUT,
            protocol=2,
            decode_responses=False,
            retry=Retry(NoBackoff(), 0, supported_errors=(RedisConnectionError,)),
            **settings,
        )
    except (ValueError, TypeError) as exc:
        raise Misconfigured(f"cannot use Redis URL {redact_url(url)}: {exc}") from None
    return client  # type: ignore[no-any-return]
