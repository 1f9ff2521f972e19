"""Checking a Redis URL before a client is built from it.

redis-py passes every query option it does not know straight to the connection class, so
a misspelled option (``ssl_ca_cert=``) fails only when a command first connects, with a
long ``TypeError`` traceback from every command; a path that is not a number
(``/notadb``) silently selects db 0; an option with no value is dropped. :func:`check_url`
refuses all of these at once, in one line naming the option, and warns when TLS
certificate checks are turned off.

Example:
    >>> check_url("rediss://h:6380/0?ssl_cert_reqs=required")
    >>> check_url("rediss://h:6380/0?ssl_ca_cert=/ca.pem")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    runnel.errors.Misconfigured: unknown Redis URL option 'ssl_ca_cert' (did you mean ...?)
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection

from runnel._redact import redact_url
from runnel.errors import Misconfigured

log = logging.getLogger("runnel.adapters.redis.client")

COMMON_OPTIONS: Final = frozenset(
    {
        "client_name",
        "db",
        "encoding",
        "encoding_errors",
        "health_check_interval",
        "lib_name",
        "lib_version",
        "max_connections",
        "password",
        "retry_on_error",
        "retry_on_timeout",
        "socket_connect_timeout",
        "socket_keepalive",
        "socket_read_size",
        "socket_timeout",
        "timeout",
        "username",
    }
)
"""Query options of every scheme that redis-py can take as text from a URL."""

TLS_OPTIONS: Final = frozenset(
    {
        "ssl_ca_certs",
        "ssl_ca_data",
        "ssl_ca_path",
        "ssl_cert_reqs",
        "ssl_certfile",
        "ssl_check_hostname",
        "ssl_ciphers",
        "ssl_exclude_verify_flags",
        "ssl_include_verify_flags",
        "ssl_keyfile",
        "ssl_min_version",
        "ssl_password",
    }
)
"""Query options of ``rediss://`` URLs only."""

FIXED_OPTIONS: Final = {
    "decode_responses": "runnel reads every reply as bytes",
    "protocol": "runnel speaks RESP2 (protocol 2)",
}
"""Options that would break runnel's reply parsing if a URL changed them."""

FILE_OPTIONS: Final = {
    "ssl_ca_certs": "file",
    "ssl_certfile": "file",
    "ssl_keyfile": "file",
    "ssl_ca_path": "directory",
}

BOOLEAN_OPTIONS: Final = frozenset({"retry_on_timeout", "socket_keepalive", "ssl_check_hostname"})
_BOOLEANS: Final = frozenset({"0", "1", "true", "false", "yes", "no", "y", "n", "t", "f"})
_CERT_REQS: Final = ("none", "optional", "required")


@cache
def _accepted(tls: bool, unix: bool) -> frozenset[str]:
    """Every keyword the installed redis-py's pool and connection classes accept."""
    cls = UnixDomainSocketConnection if unix else SSLConnection if tls else Connection
    names: set[str] = set()
    for owner in (*cls.__mro__, BlockingConnectionPool, *BlockingConnectionPool.__mro__):
        init = owner.__dict__.get("__init__")
        if init is None:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
                names.add(parameter.name)
    return frozenset(names)


def known_options(scheme: str) -> frozenset[str]:
    """The query options a ``scheme`` URL may carry with the installed redis-py.

    Example:
        >>> "ssl_ca_certs" in known_options("rediss"), "ssl_ca_certs" in known_options("redis")
        (True, False)
    """
    tls, unix = scheme == "rediss", scheme == "unix"
    wanted = COMMON_OPTIONS | (TLS_OPTIONS if tls else frozenset())
    return wanted & _accepted(tls, unix)


def check_url(url: str) -> None:
    """Refuse a Redis URL that redis-py would misread; warn when TLS checks are off.

    Raises:
        Misconfigured: one line naming the option (or path) and what is wrong with it.
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port raises on a bad one
    except ValueError as exc:
        raise Misconfigured(f"cannot use Redis URL {shown}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise Misconfigured(
            f"unsupported Redis URL {shown}: expected redis://, rediss:// or unix://"
        )
    known = known_options(scheme)
    options = parse_qs(parts.query, keep_blank_values=True)
    for name, values in options.items():
        if name in FIXED_OPTIONS:
            raise Misconfigured(f"Redis URL option {name!r} cannot be set: {FIXED_OPTIONS[name]}")
        if name not in known:
            raise Misconfigured(_unknown(name, scheme, known))
        if len(values) > 1:
            raise Misconfigured(f"Redis URL option {name!r} is given {len(values)} times")
        if not values[0]:
            raise Misconfigured(f"Redis URL option {name!r} has no value")
    flat = {name: values[0] for name, values in options.items()}
    for name, value in flat.items():
        _check_value(name, value)
    if scheme != "unix":
        _check_db_path(parts.path, flat)
    if flat.get("ssl_cert_reqs", "").lower() == "none":
        log.warning(
            "TLS certificate verification is off (ssl_cert_reqs=none): anyone on the network "
            "path can pose as the Redis server and read every event and password; give the "
            "server's CA with ssl_ca_certs instead (%s)",
            shown,
        )
    elif flat.get("ssl_check_hostname", "").lower() in ("0", "false", "no", "n", "f"):
        log.warning(
            "TLS host name checking is off (ssl_check_hostname=false): any server with a "
            "certificate from the trusted CAs can pose as this Redis (%s)",
            shown,
        )


def _unknown(name: str, scheme: str, known: frozenset[str]) -> str:
    if scheme != "rediss" and name in TLS_OPTIONS:
        return f"Redis URL option {name!r} needs a rediss:// (TLS) URL"
    if name in COMMON_OPTIONS or (scheme == "rediss" and name in TLS_OPTIONS):
        return (
            f"Redis URL option {name!r} is not supported by the installed redis-py "
            f"{_redis_version()}: its asyncio client does not take it (a newer redis-py does)"
        )
    close = difflib.get_close_matches(name, sorted(known | TLS_OPTIONS), n=1, cutoff=0.75)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown Redis URL option {name!r}{hint}"


def _redis_version() -> str:
    try:
        return metadata.version("redis")
    except metadata.PackageNotFoundError:  # pragma: no cover - redis-py runs this module
        return "(version unknown)"


def _check_value(name: str, value: str) -> None:
    if name in BOOLEAN_OPTIONS and value.lower() not in _BOOLEANS:
        raise Misconfigured(f"Redis URL option {name!r} must be true or false, not {value!r}")
    if name == "ssl_cert_reqs" and value.lower() not in _CERT_REQS:
        raise Misconfigured(
            f"Redis URL option 'ssl_cert_reqs' must be none, optional or required, not {value!r}"
        )
    kind = FILE_OPTIONS.get(name)
    if kind is not None:
        path = os.path.expanduser(value)
        exists = os.path.isdir(path) if kind == "directory" else os.path.isfile(path)
        if not exists:
            raise Misconfigured(f"Redis URL option {name!r}: no such {kind} {value!r}")
        if not os.access(path, os.R_OK):
            raise Misconfigured(f"Redis URL option {name!r}: cannot read {kind} {value!r}")


def _check_db_path(path: str, options: dict[str, str]) -> None:
    number = unquote(path).strip("/")
    if number and not number.isdigit():
        raise Misconfigured(
            f"Redis URL path {unquote(path)!r} is not a database number (expected /0, /1, ...)"
        )
    db = options.get("db")
    if db is not None and not db.isdigit():
        raise Misconfigured(f"Redis URL option 'db' must be a database number, not {db!r}")


MULTI_HOST_SCHEMES: Final = {
    "redis+cluster": ("redis", "cluster"),
    "rediss+cluster": ("rediss", "cluster"),
    "redis+sentinel": ("redis", "sentinel"),
    "rediss+sentinel": ("rediss", "sentinel"),
}
"""Schemes naming several servers: a Redis Cluster's nodes or a primary's Sentinels."""


@dataclass(frozen=True, slots=True)
class HostsUrl:
    """A ``redis+cluster://`` or ``redis+sentinel://`` URL taken apart.

    Attributes:
        kind: ``cluster`` or ``sentinel``.
        hosts: the ``(host, port)`` of every node (cluster) or Sentinel given.
        service: the primary's service name (Sentinel; empty for a cluster).
        single: the same URL for the first host with a single-server scheme, path and
            query (``redis://`` or ``rediss://``), which redis-py can parse for the
            connection options.
    """

    kind: str
    hosts: tuple[tuple[str, int], ...]
    service: str
    single: str


def parse_hosts_url(url: str) -> HostsUrl:
    """Take apart ``redis+cluster://[user:pw@]host:port[,host:port...][/0][?options]`` or
    ``redis+sentinel://[user:pw@]host:port[,host:port...]/service_name[?options]``.

    The options are those of ``redis://`` (``rediss+...``: and ``rediss://``), checked as
    :func:`check_url` checks them; a Sentinel URL takes the database as ``?db=N`` since
    its path names the service. A port defaults to 6379 (26379 for a Sentinel).

    Raises:
        Misconfigured: one line saying what is wrong.

    Example:
        >>> parsed = parse_hosts_url("redis+sentinel://s1:26379,s2/main?db=2")
        >>> parsed.hosts, parsed.service, parsed.single
        ((('s1', 26379), ('s2', 26379)), 'main', 'redis://s1:26379/2')
    """
    shown = redact_url(url)
    scheme, sep, rest = url.partition("://")
    found = MULTI_HOST_SCHEMES.get(scheme.lower()) if sep else None
    if found is None:
        raise Misconfigured(
            f"unsupported Redis URL {shown}: expected redis+cluster:// or redis+sentinel://"
        )
    base, kind = found
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    default_port = 26379 if kind == "sentinel" else 6379
    hosts = []
    for part in hostlist.split(","):
        if not part.strip():
            raise Misconfigured(f"Redis URL {shown} names an empty host")
        try:
            parts = urlsplit(f"//{part.strip()}")
            host, port = parts.hostname, parts.port or default_port
        except ValueError as exc:
            raise Misconfigured(f"cannot use Redis URL {shown}: {exc}") from None
        if not host:
            raise Misconfigured(f"Redis URL {shown} names an empty host")
        hosts.append((host, port))
    service = unquote(path.strip("/"))
    options = parse_qs(query, keep_blank_values=True)
    if kind == "sentinel":
        if not service or "/" in service:
            raise Misconfigured(
                f"Redis URL {shown} needs the primary's service name as its path "
                "(redis+sentinel://host:26379,host:26380/mymaster)"
            )
        db = options.get("db", ["0"])[0]
    else:
        if service not in ("", "0"):
            raise Misconfigured(
                f"Redis URL path /{service} of a cluster: Redis Cluster has only database 0"
            )
        if options.get("db", ["0"])[0] != "0":
            raise Misconfigured("Redis URL option 'db' of a cluster: Redis Cluster has only db 0")
        service, db = "", "0"
    kept = "&".join(p for p in query.split("&") if p and not p.startswith("db="))
    host, port = hosts[0]
    single = f"{base}://{userinfo}{at}{_host_text(host)}:{port}/{db}" + (f"?{kept}" if kept else "")
    check_url(single)
    return HostsUrl(kind, tuple(hosts), service, single)


def _host_text(host: str) -> str:
    return f"[{host}]" if ":" in host else host
