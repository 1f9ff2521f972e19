"""Checking at start-up that the Redis user may do everything a worker will do.

For each kind of key a worker touches (:mod:`runnel.domain.access`), :data:`PROBES` lists
the commands the Redis adapters send to such a key, in the form they send them. The
``probe.lua`` script dry-runs them all in one call: flagged ``no-writes``, it has Redis
check each command's ACL and then refuse every write before it runs, so nothing changes.
What the ACL refuses comes back as one line each (``SET on '__lock:shop.orders.p.0'``).

Commands that scripts cannot run (``WATCH``, ``MULTI``, ``EXEC``, ``SCRIPT LOAD``,
``INFO``) are not probed: a refusal of those still surfaces, at first use, as
:class:`~runnel.errors.PermissionDenied`.

Example:
    >>> words("lock", "__lock:a.s.p.0")[0]
    ['GET', '__lock:a.s.p.0']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis

from runnel.adapters.redis import _replies
from runnel.adapters.redis._scripts import register, user_of
from runnel.domain.access import Access, Kind

_NONE: Final = "18446744073709551615-18446744073709551615"
"""A stream id above every real one: reads from it return nothing."""

_G, _C = "runnel-probe", "runnel-probe"

_STREAM: Final = (
    ("XADD", "{k}", "*", "f", "v"),
    ("XLEN", "{k}"),
    ("XINFO", "GROUPS", "{k}"),
    ("XPENDING", "{k}", _G, "-", "+", "1"),
    ("XRANGE", "{k}", _NONE, "+"),
    ("XREADGROUP", "GROUP", _G, _C, "COUNT", "1", "STREAMS", "{k}", ">"),
    ("XREAD", "COUNT", "1", "STREAMS", "{k}", _NONE),
    ("XACK", "{k}", _G, "0-1"),
    ("XGROUP", "CREATE", "{k}", _G, "0"),
    ("EXISTS", "{k}"),
)
_LEASE: Final = (
    ("GET", "{k}"),
    ("MGET", "{k}"),
    ("EXISTS", "{k}"),
    ("SET", "{k}", "v", "PX", "1"),
    ("PEXPIRE", "{k}", "1"),
    ("PTTL", "{k}"),
    ("DEL", "{k}"),
)
_COUNTER: Final = (("EXISTS", "{k}"), ("SET", "{k}", "1"), ("INCR", "{k}"))

PROBES: Final[dict[Kind, tuple[tuple[str, ...], ...]]] = {
    "stream": _STREAM,
    "sink": (
        ("XADD", "{k}", "*", "f", "v"),
        ("XGROUP", "CREATE", "{k}", _G, "0"),
        ("TYPE", "{k}"),
    ),
    "meta": (("HSETNX", "{k}", "f", "v"), ("HGETALL", "{k}")),
    "lost": (("GET", "{k}"), ("INCRBY", "{k}", "1")),
    "lock": _LEASE,
    "epoch": _COUNTER,
    "fenced": (("INCR", "{k}"),),
    "membership": (("GET", "{k}"), ("MGET", "{k}"), ("SET", "{k}", "v")),
    "membership_version": (("GET", "{k}"), ("MGET", "{k}"), ("INCR", "{k}")),
    "control": (
        ("XADD", "{k}", "MAXLEN", "~", "1", "*", "f", "v"),
        ("XREAD", "COUNT", "1", "STREAMS", "{k}", _NONE),
        ("XRANGE", "{k}", _NONE, "+"),
    ),
    "beat": (("SET", "{k}", "v", "PX", "1"), ("EXISTS", "{k}"), ("GET", "{k}"), ("DEL", "{k}")),
    "quarantine": (("HSET", "{k}", "f", "v"), ("HGETALL", "{k}"), ("HDEL", "{k}", "f")),
    "leader": _LEASE,
    "leader_epoch": _COUNTER,
    "schedule": (("GET", "{k}"), ("SET", "{k}", "v")),
}
"""Per kind of key, the commands runnel sends to such a key (``{k}``)."""

UNKEYED: Final = (("TIME",),)
"""Commands without a key that scripts run (the epoch seed of acquire.lua)."""


def words(kind: Kind, key: str) -> list[list[str]]:
    """The probes of ``kind``, for ``key``."""
    return [[key if w == "{k}" else w for w in probe] for probe in PROBES[kind]]


def describe(probe: Sequence[str], key: str | None) -> str:
    """``SET on '__lock:...'``, ``XGROUP CREATE on '__strm:...'``, ``TIME``."""
    name = " ".join(probe[:2]) if probe[0] in ("XGROUP", "XINFO") else probe[0]
    return f"{name} on {key!r}" if key is not None else name


async def refused(client: Redis, needs: Sequence[Access]) -> list[str]:
    """What the ACL refuses among everything a worker will do (empty: nothing).

    Raises:
        redis.exceptions.RedisError: the probe itself failed (e.g. EVALSHA is refused,
            or the server is older than Redis 7.0 and knows no script flags).
    """
    probes: list[tuple[list[str], str | None]] = [(list(p), None) for p in UNKEYED]
    for need in needs:
        probes += [(p, need.key) for p in words(need.kind, need.key)]
    args: list[Any] = []
    for probe, _ in probes:
        args += [len(probe), *probe]
    script = register(client, "probe")
    raw = await script(keys=[], args=args)
    found = [describe(*probes[n]) for n in _replies.probe_refusals(raw, len(probes))]
    return list(dict.fromkeys(found))


def summary(client: Redis, problems: Sequence[str]) -> str:
    """One message naming the user and everything refused."""
    more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
    shown = "; ".join(problems[:20]) + more
    return (
        f"the Redis user {user_of(client)!r} may not run what a worker needs: {shown}. "
        "Grant the worker ACL of docs/security.md (printed by `runnel acl APP --role worker`)"
    )
