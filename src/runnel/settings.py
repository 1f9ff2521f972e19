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

import re
import warnings
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from runnel.domain.model import TrimMode
from runnel.domain.policy import ExceptionPolicy

__all__ = ["Settings", "TrimMode"]


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
    """Backend URL: ``redis://``, ``rediss://`` (TLS), ``unix://`` or ``memory://[name]``."""
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

    default_exception_policy: ExceptionPolicy = ExceptionPolicy.HALT
    default_lock_expiry: float = Field(default=10.0, gt=0)
    """Seconds a partition lease lives without renewal. A killed worker's partitions are
    processed again within about ``lock_expiry + assignment_sleep``."""
    default_read_timeout: int = Field(default=2000, ge=1)
    """Milliseconds a fetch blocks waiting for new entries before looping."""
    default_prefetch_count: int = Field(default=8, ge=1)
    default_assignment_attempts: int = Field(default=32, ge=1)
    default_assignment_sleep: float = Field(default=2.0, ge=0)
    default_grace_period: float = Field(default=8.0, ge=0)
    default_pool_size: int = Field(default=16, ge=1)
    default_join_delay: float = Field(default=2.0, ge=0)
    default_heartbeat_interval: float = Field(default=1.0, gt=0)
    """Seconds between executor heartbeats; an executor is dead after three missed beats."""

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

    @field_validator("redis_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in {"redis", "rediss", "unix", "memory"}:
            raise ValueError(
                f"unsupported backend URL {_redact(value)!r}: expected redis://, rediss://, "
                "unix:// or memory://[name]"
            )
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (self.redacted_url() if name == "redis_url" else value)

    def redacted_url(self) -> str:
        """The backend URL with any password replaced by ``***`` (safe to log).

        Both places a Redis URL can carry a password are hidden: the user info
        (``redis://user:pw@host``) and the ``password`` query parameter
        (``unix:///run/redis.sock?password=pw``).

        Example:
            >>> Settings(redis_url="redis://h:6379/0?password=pw&db=1").redacted_url()
            'redis://h:6379/0?password=***&db=1'
        """
        return _redact(self.redis_url)


def _redact(url: str) -> str:
    return _redact_userinfo(_redact_query(url))


# A query parameter anywhere in the URL, as redis-py reads it from the query string
# (``?password=...``). The value runs to the next ``&``: redacting up to a ``#`` or ``;``
# could show the rest of a password that contains one.
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^?&;=#]*)=(?P<value>[^&]*)")


def _redact_query(url: str) -> str:
    def hide(match: re.Match[str]) -> str:
        if unquote_plus(match["name"]).strip().lower() != "password":
            return match[0]
        return f"{match['sep']}{match['name']}=***"

    return _QUERY_PARAM.sub(hide, url)


def _redact_userinfo(url: str) -> str:
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}://" if sep else ""
    # Without a scheme (a common typo), everything before the last "@" may be credentials.
    creds, host = (rest if sep else url).rsplit("@", 1)
    user = creds.split(":", 1)[0] if ":" in creds else ""
    return f"{prefix}{user}:***@{host}" if user else f"{prefix}***@{host}"
