"""The composition root: settings -> backend adapters (chosen by URL scheme) -> services.

The container stays synchronous and connects lazily. Override any provider to plug in
your own pieces, e.g. a pre-built Redis client or your own default serializer::

    from dependency_injector import providers
    from runnel.container import Container

    container = Container(settings=Settings(redis_url="redis://cache:6379/2"))
    container.redis_client.override(providers.Object(my_redis_client))
    container.serializer.override(providers.Singleton(MsgpackSerializer))
    app = App(name="shop", container=container)

Example:
    >>> c = Container(settings=Settings(redis_url="memory://doc-container"))
    >>> type(c.backend().log).__name__
    'MemoryStreamLog'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dependency_injector import containers, providers

from runnel.adapters.compressors import compressor_named
from runnel.adapters.hashers import default_hasher
from runnel.adapters.memory.broker import get_broker
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.adapters.memory.membership import MemoryMembership
from runnel.adapters.memory.presence import MemoryPresence
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.adapters.serializers import serializer_named
from runnel.adapters.system_clock import SystemClock
from runnel.domain.keys import KeyLayout
from runnel.errors import Misconfigured
from runnel.ports import Backend
from runnel.settings import Settings
from runnel.telemetry import Metrics, NoMetrics, NoTracing, Tracing

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from runnel.adapters.redis.keyvalue import RedisKeyValue
    from runnel.adapters.redis.locks import RedisPartitionLocks
    from runnel.adapters.redis.membership import RedisMembership
    from runnel.adapters.redis.presence import RedisPresence
    from runnel.adapters.redis.streams import RedisStreamLog


def redis_password(settings: Settings) -> str | None:
    """The password of ``settings`` as the Redis client takes it (None when not set).

    Example:
        >>> redis_password(Settings(redis_password="pw")), redis_password(Settings())
        ('pw', None)
    """
    secret = settings.redis_password
    return None if secret is None else secret.get_secret_value()


def backend_kind(url: str) -> str:
    """``memory`` for ``memory://`` URLs, ``redis`` for every Redis URL (one server, a
    cluster or a Sentinel-managed primary).

    Example:
        >>> backend_kind("rediss://h:6380"), backend_kind("memory://x")
        ('redis', 'memory')
    """
    return "memory" if url.lower().startswith("memory://") else "redis"


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
"""URL schemes of a Redis Cluster (the cluster key layout)."""

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
"""URL schemes of a Sentinel-managed primary (the single-server key layout)."""


def url_scheme(url: str) -> str:
    """The lower-case scheme of ``url`` (empty when it has none).

    Example:
        >>> url_scheme("Redis+Cluster://h:7000")
        'redis+cluster'
    """
    return url.split("://", 1)[0].lower() if "://" in url else ""


def key_layout(url: str) -> KeyLayout:
    """``cluster`` for a Redis Cluster URL, ``single`` for every other backend.

    Example:
        >>> key_layout("redis+cluster://h:7000,h:7001"), key_layout("redis://h")
        ('cluster', 'single')
    """
    return "cluster" if url_scheme(url) in CLUSTER_SCHEMES else "single"


def memory_name(url: str) -> str:
    """The broker name of a ``memory://[name]`` URL (``default`` when empty).

    Example:
        >>> memory_name("memory://tests"), memory_name("memory://")
        ('tests', 'default')
    """
    parts = urlsplit(url)
    return (parts.netloc + parts.path).strip("/") or "default"


def _by_kind(
    kind: providers.Provider[str], redis: providers.Provider[Any], memory: providers.Provider[Any]
) -> providers.Selector[Any]:
    """The ``redis`` provider for a Redis URL, the ``memory`` one for ``memory://``."""
    return providers.Selector(kind, redis=redis, memory=memory)


def _port(
    kind: providers.Provider[str],
    client: providers.Provider[Any],
    broker: providers.Provider[Any],
    on_redis: Callable[[Any], Any],
    in_memory: Callable[[Any], Any],
) -> providers.Selector[Any]:
    """One port: made once from the Redis client, or from the memory broker."""
    return _by_kind(
        kind, providers.Singleton(on_redis, client), providers.Singleton(in_memory, broker)
    )


def closer_of(client: Redis) -> Callable[[], Awaitable[None]]:
    """What closes ``client``'s connections (the backend's ``closer`` on Redis)."""
    return client.aclose


async def nothing_to_close() -> None:
    """The backend's ``closer`` in memory: the broker outlives the App, as Redis would."""


# redis-py is imported only when a Redis backend is built: an App on the memory backend, a
# command that never reaches Redis and `import runnel` do not pay for it.
def _redis_client(url: str, pool_size: int, password: str | None = None) -> Redis:
    """The client the URL's scheme asks for: one server, a Sentinel-managed primary, or a
    Redis Cluster (a ``RedisCluster``, which the cluster adapters take)."""
    scheme = url_scheme(url)
    if scheme in CLUSTER_SCHEMES:
        from runnel.adapters.redis.cluster import make_cluster_client

        return make_cluster_client(url, pool_size, password=password)  # type: ignore[return-value]
    if scheme in SENTINEL_SCHEMES:
        from runnel.adapters.redis.sentinel import make_sentinel_client

        return make_sentinel_client(url, pool_size, password=password)
    from runnel.adapters.redis.client import make_client

    return make_client(url, pool_size, password=password)


def _on_cluster(client: object) -> bool:
    from runnel.adapters.redis.cluster import RunnelRedisCluster

    return isinstance(client, RunnelRedisCluster)


def _redis_stream_log(
    client: Redis, wait_replicas: int = 0, wait_timeout: float = 1.0
) -> RedisStreamLog:
    if _on_cluster(client):
        if wait_replicas:
            raise Misconfigured("redis_wait_replicas is not supported on Redis Cluster")
        from runnel.adapters.redis.cluster import ClusterStreamLog

        return ClusterStreamLog(client)  # type: ignore[arg-type]
    if wait_replicas:
        from runnel.adapters.redis.replicated import ReplicatedStreamLog

        return ReplicatedStreamLog(client, wait_replicas, wait_timeout)
    from runnel.adapters.redis.streams import RedisStreamLog

    return RedisStreamLog(client)


def _redis_locks(client: Redis) -> RedisPartitionLocks:
    if _on_cluster(client):
        from runnel.adapters.redis.cluster import ClusterPartitionLocks

        return ClusterPartitionLocks(client)  # type: ignore[arg-type]
    from runnel.adapters.redis.locks import RedisPartitionLocks

    return RedisPartitionLocks(client)


def _redis_presence(client: Redis) -> RedisPresence | None:
    # A worker's named connection lives on one node of a cluster, and CLIENT LIST on
    # another node would not show it: there, a dead worker is noticed by its heartbeat.
    if _on_cluster(client):
        return None
    from runnel.adapters.redis.presence import RedisPresence

    return RedisPresence(client)


def _redis_kv(client: Redis) -> RedisKeyValue:
    if _on_cluster(client):
        from runnel.adapters.redis.cluster import ClusterKeyValue

        return ClusterKeyValue(client)  # type: ignore[arg-type]
    from runnel.adapters.redis.keyvalue import RedisKeyValue

    return RedisKeyValue(client)


def _redis_membership(client: Redis) -> RedisMembership:
    from runnel.adapters.redis.membership import RedisMembership

    return RedisMembership(client)


def prometheus_installed() -> bool:
    """Whether the ``metrics`` extra (prometheus-client) can be imported."""
    return importlib.util.find_spec("prometheus_client") is not None


def make_metrics(enabled: bool | None, http_address: str | None, registry: object) -> Metrics:
    """The metrics port the settings ask for.

    ``enabled=None`` means "when the HTTP endpoint is on and prometheus-client is
    installed"; ``registry`` is the prometheus_client registry to export through (None: a
    registry of the App's own).

    Raises:
        Misconfigured: metrics are asked for explicitly but prometheus-client is missing.

    Example:
        >>> type(make_metrics(None, None, None)).__name__
        'NoMetrics'
    """
    on = enabled if enabled is not None else http_address is not None and prometheus_installed()
    if not on:
        return NoMetrics()
    try:
        from runnel.adapters.prometheus import PrometheusMetrics
    except ImportError as exc:
        raise Misconfigured(
            "metrics=True needs prometheus-client: pip install 'runnel[metrics]'"
        ) from exc
    from prometheus_client import CollectorRegistry

    if registry is not None and not isinstance(registry, CollectorRegistry):
        raise Misconfigured(
            f"metrics_registry must be a prometheus_client CollectorRegistry, got {registry!r}"
        )
    return PrometheusMetrics(registry)


def make_tracing(enabled: bool) -> Tracing:
    """The tracing port the settings ask for.

    Raises:
        Misconfigured: tracing is on but the OpenTelemetry API is missing.

    Example:
        >>> make_tracing(False).enabled
        False
    """
    if not enabled:
        return NoTracing()
    try:
        from runnel.adapters.otel import OpenTelemetryTracing
    except ImportError as exc:
        raise Misconfigured(
            "tracing=True needs the OpenTelemetry API: pip install 'runnel[otel]'"
        ) from exc
    return OpenTelemetryTracing()


class Container(containers.DeclarativeContainer):
    """Providers of everything an App needs; see the module docstring to override them."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)

    redis_client = providers.Singleton(
        _redis_client,
        settings.provided.redis_url,
        settings.provided.default_pool_size,
        password=providers.Callable(redis_password, settings),
    )
    memory_broker = providers.Singleton(
        get_broker, providers.Callable(memory_name, settings.provided.redis_url), clock
    )
    kind = providers.Callable(backend_kind, settings.provided.redis_url)

    # Each port: the Redis adapter on the shared client, or the memory one on the broker.
    stream_log = _by_kind(
        kind,
        providers.Singleton(
            _redis_stream_log,
            redis_client,
            settings.provided.redis_wait_replicas,
            settings.provided.redis_wait_timeout,
        ),
        providers.Singleton(MemoryStreamLog, memory_broker),
    )
    locks = _port(kind, redis_client, memory_broker, _redis_locks, MemoryPartitionLocks)
    kv = _port(kind, redis_client, memory_broker, _redis_kv, MemoryKeyValue)
    membership = _port(kind, redis_client, memory_broker, _redis_membership, MemoryMembership)
    # Redis can say how durable it is (the key-value adapter asks it); memory cannot.
    diagnostics = _by_kind(kind, kv, providers.Object(None))
    closer = _by_kind(
        kind, providers.Callable(closer_of, redis_client), providers.Object(nothing_to_close)
    )
    presence = _port(kind, redis_client, memory_broker, _redis_presence, MemoryPresence)
    backend = providers.Singleton(
        Backend,
        log=stream_log,
        admin=stream_log,
        diagnostics=diagnostics,
        locks=locks,
        kv=kv,
        membership=membership,
        clock=clock,
        closer=closer,
        presence=presence,
    )

    serializer = providers.Singleton(serializer_named, settings.provided.default_serializer)
    compressor = providers.Singleton(compressor_named, settings.provided.default_compressor)
    hasher = providers.Singleton(default_hasher)

    # Observability (docs/observability.md). Override ``metrics_registry`` with a
    # prometheus_client registry of your own (or ``prometheus_client.REGISTRY``) to export
    # runnel's metrics next to yours; override ``metrics`` or ``tracing`` outright to plug
    # in another implementation of the port.
    metrics_registry: providers.Provider[object | None] = providers.Object(None)
    metrics: providers.Provider[Metrics] = providers.Singleton(
        make_metrics,
        settings.provided.metrics,
        settings.provided.http_address,
        metrics_registry,
    )
    tracing: providers.Provider[Tracing] = providers.Singleton(
        make_tracing, settings.provided.tracing
    )
