"""Runnel's settings: environment variables ``RUNNEL_*``, overridden by App kwargs.

Durations are seconds unless the name says otherwise (``*_interval`` and
``default_read_timeout`` are milliseconds, as in the original design).
Explicit zero values are honoured everywhere: runnel never replaces a falsy setting
with its default.

Example:
    >>> from runnel.settings import Settings
    >>> Settings(default_partition_count=4).default_partition_count
    4
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runnel._redact import redact_url, url_secrets
from runnel.domain.limits import (
    DEFAULT_MAX_DECOMPRESSED_SIZE,
    DEFAULT_MAX_FIELD_COUNT,
    DEFAULT_MAX_FIELD_SIZE,
    DecodeLimits,
)
from runnel.domain.model import TrimMode
from runnel.domain.policy import ExceptionPolicy

__all__ = ["Settings", "TrimMode"]

DEFAULT_PREFETCH_BYTES = 64 * 1024 * 1024
"""The default byte budget of a worker's buffered events (64 MiB)."""


class Settings(BaseSettings):
    """Every setting of an App; most are defaults that streams and processors override.

    Example:
        >>> Settings(redis_url="memory://demo").redis_url
        'memory://demo'
    """

    model_config = SettingsConfigDict(
        env_prefix="RUNNEL_",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
        frozen=True,
        # A rejected value may be a URL with a password: error messages name the problem
        # (our validators show a redacted URL), never the raw input.
        hide_input_in_errors=True,
    )

    redis_url: str = "redis://127.0.0.1:6379"
    """Backend URL: ``redis://``, ``rediss://`` (TLS), ``unix://``,
    ``redis+cluster://host:port[,host:port...]`` (Redis Cluster),
    ``redis+sentinel://host:port[,host:port...]/service`` (a Sentinel-managed primary) or
    ``memory://[name]``.

    Options of the Redis client go in its query string (``?ssl_ca_certs=/etc/ca.pem``);
    an unknown option, a missing file or a bad db number is refused before any I/O.
    Shown everywhere with its secrets masked (:meth:`redacted_url`)."""
    redis_password: SecretStr | None = None
    """Password of the Redis user, when it is not in ``redis_url``
    (``RUNNEL_REDIS_PASSWORD``; the CLI also reads it from ``--redis-password-file``), so
    that it appears in no URL, process list or log line. Give it in one place only."""
    redis_wait_replicas: int = Field(default=0, ge=0)
    """Replicas that must confirm a write before it counts (0: do not wait, the default).

    Above 0, every send waits (Redis ``WAIT``) until this many replicas have its events,
    and fails with :class:`~runnel.errors.NotReplicated` if they do not within
    ``redis_wait_timeout``; every fetch round (acknowledgements, reads) waits the same way
    and logs a warning when it falls short. It narrows what a failover can lose, at the
    cost of a round trip per call and the replicas' lag (docs/architecture.md). Not on
    Redis Cluster."""
    redis_wait_timeout: float = Field(default=1.0, gt=0)
    """Seconds a write waits for ``redis_wait_replicas`` replicas."""
    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    autodiscover: str | None = None
    """A glob (``myproj/**/streams.py``) of modules the worker imports at start-up."""
    timezone: str = "UTC"
    """Default timezone of crontab schedules (an IANA name)."""
    leadership_poll_interval: int = Field(default=4000, ge=1)
    """Milliseconds between leader-election attempts and lease renewals."""
    testing: bool = False
    """Accepted for compatibility with the original design, and ignored (a DeprecationWarning
    says so when it is set): test an App with :class:`runnel.testing.Harness`."""

    default_partition_count: int = Field(default=16, ge=1)
    default_partition_size: int = Field(default=50_000, ge=1)
    default_serializer: Literal["auto", "json", "orjson"] = "auto"
    """``auto`` picks orjson when installed, else the stdlib json module (same wire format)."""
    default_compressor: Literal["gzip", "lz4"] | None = None
    default_hasher: Literal["xxh64"] = "xxh64"
    default_trim_mode: TrimMode = "lossless"
    """``lossless`` refuses a send that would trim unacknowledged entries, ``wait`` waits
    for room (up to ``default_send_wait_timeout``), ``lossy`` trims like ``MAXLEN`` and
    counts every unprocessed entry it drops."""
    default_send_wait_timeout: float = Field(default=30.0, ge=0)
    """Seconds a ``wait``-mode send waits for processors to acknowledge enough entries to
    make room before it raises ``BackpressureError``. A batch with more events for one
    partition than its ``partition_size`` can never fit, and fails without waiting."""

    idempotency_window: float = Field(default=86400.0, gt=0)
    """Seconds an idempotency key of a send remembers the entry it added: a send repeated
    with that key within the window adds nothing and returns the original entry id."""

    default_exception_policy: ExceptionPolicy = ExceptionPolicy.HALT
    default_lock_expiry: float = Field(default=10.0, gt=0)
    """Seconds a partition lease lives without renewal. A killed worker's partitions are
    processed again within about ``lock_expiry + assignment_sleep``."""
    default_read_timeout: int = Field(default=2000, ge=1)
    """Milliseconds a fetch blocks waiting for new entries before looping."""
    default_prefetch_count: int = Field(default=8, ge=1)
    """Events a partition reads ahead to start with, and the least it ever reads ahead:
    its buffer holds up to twice its read-ahead."""
    default_prefetch_max: int = Field(default=128, ge=1)
    """The most events a partition reads ahead while it has a backlog: its read-ahead
    doubles, from ``prefetch_count``, each time a read comes back full, up to this (and
    within ``prefetch_bytes``), and halves each time a read finds the partition caught up.
    At most ``prefetch_count``, or 1, turns the adaptation off."""
    prefetch_bytes: int | None = Field(default=DEFAULT_PREFETCH_BYTES, ge=0)
    """Bytes of fetched but not yet processed events a worker buffers, over all the
    partitions of all its processors, on top of ``prefetch_count``; an event counts its
    field names and values. A partition with an empty buffer always reads one entry, so a
    single larger event still flows: the buffered bytes stay within this plus about one
    event per partition. None: no byte limit."""
    default_assignment_attempts: int = Field(default=32, ge=1)
    default_assignment_sleep: float = Field(default=2.0, ge=0)
    default_grace_period: float = Field(default=8.0, ge=0)
    default_pool_size: int = Field(default=16, ge=1)
    default_join_delay: float = Field(default=2.0, ge=0)
    default_heartbeat_interval: float = Field(default=1.0, gt=0)
    """Seconds between executor heartbeats (and lease renewals); an executor is dead once
    its heartbeat is older than ``max(3 * heartbeat_interval, lock_expiry)``."""

    http_address: str | None = None
    """``HOST:PORT`` where a worker serves ``/metrics``, ``/healthz`` and ``/readyz``
    (``:PORT`` for every interface, ``[::1]:PORT`` for IPv6); off when None."""
    metrics: bool | None = None
    """Collect Prometheus metrics (the ``metrics`` extra). None: when the HTTP endpoint is
    on and prometheus-client is installed."""
    tracing: bool = False
    """OpenTelemetry spans from send to processor (the ``otel`` extra); the application
    configures the SDK. Entries sent with it on carry their trace context."""
    partition_check_interval: float = Field(default=5.0, gt=0)
    """Seconds between checks of each owned partition: lag, pending entries and the age of
    the oldest (as metrics), and the stuck-partition detector."""
    stuck_iteration_seconds: float = Field(default=120.0, ge=0)
    """An iteration running longer than this makes its partition stuck: a warning and
    ``runnel_partition_stuck``. 0 turns this check off."""
    stuck_pending_seconds: float = Field(default=300.0, ge=0)
    """A partition whose oldest pending entry was delivered longer ago than this is stuck.
    0 turns this check off."""

    max_field_count: int = Field(default=DEFAULT_MAX_FIELD_COUNT, ge=1)
    """Fields an entry may have; a worker refuses an entry with more before decoding it
    (:class:`~runnel.errors.LimitExceeded`, handled by the exception policy)."""
    max_field_size: int = Field(default=DEFAULT_MAX_FIELD_SIZE, ge=1)
    """Bytes one field of an entry may hold (16 MiB); larger entries are refused before
    decoding, and ``send`` refuses records that would be larger."""
    max_decompressed_size: int = Field(default=DEFAULT_MAX_DECOMPRESSED_SIZE, ge=1)
    """Bytes a compressed payload may inflate to (32 MiB); the decompressor stops there,
    so a small hostile payload cannot take a worker's memory."""

    @field_validator("testing")
    @classmethod
    def _ignored_testing(cls, value: bool) -> bool:
        if value:
            warnings.warn(
                "the testing setting is accepted for compatibility and ignored: test an App "
                "with runnel.testing.Harness (in-process workers on a simulated clock)",
                DeprecationWarning,
                stacklevel=2,
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}: expected an IANA name like 'UTC'"
            ) from exc
        return value

    @field_validator("http_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_address(value)
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in {
            "redis",
            "rediss",
            "unix",
            "memory",
            "redis+cluster",
            "rediss+cluster",
            "redis+sentinel",
            "rediss+sentinel",
        }:
            raise ValueError(
                f"unsupported backend URL {redact_url(value)!r}: expected redis://, "
                "rediss://, unix://, redis+cluster://, redis+sentinel:// or memory://[name]"
            )
        return value

    @model_validator(mode="after")
    def _one_password(self) -> Settings:
        if self.redis_password is not None and _url_password(self.redis_url):
            raise ValueError(
                "the Redis password is given twice, in redis_url and in redis_password "
                "(RUNNEL_REDIS_PASSWORD or --redis-password-file): give it once"
            )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (self.redacted_url() if name == "redis_url" else value)

    def redacted_url(self) -> str:
        """The backend URL with every secret replaced by ``***`` (safe to log).

        Hidden: the password of the user info (``redis://user:pw@host``) and every query
        parameter named like a secret (``password``, ``ssl_password``, ``token``, ...;
        see :mod:`runnel._redact`).

        Example:
            >>> Settings(redis_url="rediss://h/0?ssl_password=kp&db=1").redacted_url()
            'rediss://h/0?ssl_password=***&db=1'
        """
        return redact_url(self.redis_url, user_is_public=self.redis_password is not None)

    def secret_values(self) -> list[str]:
        """Every secret these settings hold (to mask them in free text, such as logs).

        Example:
            >>> Settings(redis_url="redis://:pw1@h", redis_password=None).secret_values()
            ['pw1']
        """
        found = url_secrets(self.redis_url, user_is_public=self.redis_password is not None)
        if self.redis_password is not None:
            found.append(self.redis_password.get_secret_value())
        return [s for s in found if s]

    def decode_limits(self) -> DecodeLimits:
        """The decoding limits of :mod:`runnel.domain.limits` these settings set.

        Example:
            >>> Settings(max_field_count=8).decode_limits().max_field_count
            8
        """
        return DecodeLimits(
            max_field_count=self.max_field_count,
            max_field_size=self.max_field_size,
            max_decompressed_size=self.max_decompressed_size,
        )

    def http_host_port(self) -> tuple[str, int] | None:
        """The HTTP endpoint's address as ``(host, port)``, or None when it is off.

        Example:
            >>> Settings(http_address=":9100").http_host_port()
            ('0.0.0.0', 9100)
        """
        return None if self.http_address is None else split_address(self.http_address)


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``: ``:PORT`` is every IPv4 interface, ``[::1]:PORT``
    an IPv6 address.

    Raises:
        ValueError: not of that form, or the port is not in 0..65535.

    Example:
        >>> split_address("[::1]:9100"), split_address("127.0.0.1:0")
        (('::1', 9100), ('127.0.0.1', 0))
    """
    host, colon, port = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        colon = ""  # an IPv6 address must be bracketed
    if (
        not colon
        or not port.isdigit()
        or not 0 <= int(port) <= 65535
        or any(c.isspace() or c in "[]/" for c in host)
    ):
        raise ValueError(
            f"expected HOST:PORT (like 127.0.0.1:9100, :9100 or [::1]:9100), got {address!r}"
        )
    return host or "0.0.0.0", int(port)


def _url_password(url: str) -> bool:
    """Whether ``url`` carries a password (in its user info or its query string)."""
    creds = url.partition("://")[2].rsplit("@", 1)
    in_userinfo = len(creds) == 2 and ":" in creds[0] and bool(creds[0].split(":", 1)[1])
    return in_userinfo or "password" in parse_qs(url.partition("?")[2])
