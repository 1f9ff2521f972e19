"""RedisKeyValue: the :class:`~runnel.ports.KeyValue` port on Redis strings and hashes.

Example:
    >>> from redis.asyncio import Redis
    >>> kv = RedisKeyValue(Redis())   # no I/O until the first call
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from runnel.adapters.redis import _probe, _replies
from runnel.adapters.redis._errors import translated
from runnel.adapters.redis._scripts import Arg, register
from runnel.domain.access import Access
from runnel.errors import BackendError, PermissionDenied


class RedisKeyValue:
    """Small values (metadata, heartbeats, quarantines, schedule slots) on Redis, and what
    the server's configuration says about durability (the backend's diagnostics).

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=False``.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._compare_and_set = register(client, "compare_and_set")
        self._hash_set_missing = register(client, "hash_set_missing")

    async def get(self, key: str) -> bytes | None:
        """GET."""
        with translated():
            return _replies.optional_bytes(await self._client.get(key))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """SET, expiring after ``ttl`` seconds (at least 1 ms) when given."""
        px = None if ttl is None else max(1, round(ttl * 1000))
        with translated():
            await self._client.set(key, value, px=px)

    async def compare_and_set(self, key: str, expected: bytes | None, value: bytes) -> bool:
        """Set ``key`` to ``value`` only if it holds ``expected`` (None: it is missing)."""
        args: list[Arg] = [b"0" if expected is None else b"1", expected or b"", value]
        with translated():
            raw = await self._compare_and_set(keys=[key], args=args)
        return _replies.as_int(raw) == 1

    async def exists(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key exists, in one pipeline."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.exists(key)
        with translated():
            raw = await pipe.execute()
        return _replies.flags(raw, len(keys))

    async def hash_get_all(self, key: str) -> dict[bytes, bytes]:
        """HGETALL (empty for a missing key)."""
        with translated():
            return _replies.hash_dict(await self._client.hgetall(key))

    async def hash_set(self, key: str, mapping: Mapping[bytes, bytes]) -> None:
        """HSET every field of ``mapping``."""
        if not mapping:
            return
        with translated():
            await self._client.hset(key, items=[part for pair in mapping.items() for part in pair])

    async def hash_set_missing(
        self, key: str, mapping: Mapping[bytes, bytes]
    ) -> dict[bytes, bytes]:
        """Set the fields of ``mapping`` that ``key`` lacks, atomically; return the hash."""
        args: list[Arg] = []
        for field, value in mapping.items():
            args += [field, value]
        with translated():
            raw = await self._hash_set_missing(keys=[key], args=args)
        return _replies.flat_hash(raw)

    async def hash_delete(self, key: str, *fields: bytes) -> int:
        """HDEL; the number of fields removed."""
        if not fields:
            return 0
        with translated():
            return _replies.as_int(await self._client.hdel(key, *fields))

    async def delete(self, *keys: str) -> int:
        """DEL; the number of keys that existed."""
        if not keys:
            return 0
        with translated():
            return _replies.as_int(await self._client.delete(*keys))

    async def durability_risks(self) -> list[str]:
        """What the server says about losing writes on a restart or to eviction.

        Read from ``INFO persistence`` and ``INFO memory`` (``aof_enabled``, ``maxmemory``,
        ``maxmemory_policy``), which need no ``CONFIG`` right: ``CONFIG GET`` also reads
        ``requirepass`` and every other secret of the server, so runnel never needs it.
        Only a server that refuses ``INFO`` is asked ``CONFIG GET`` instead; when it
        answers neither, the one risk returned says that the check could not run.
        """
        info = await self._info("persistence", "memory")
        if info is not None:
            aof = info.get("aof_enabled", "1") == "1"
            maxmemory = info.get("maxmemory", "0")
            policy = info.get("maxmemory_policy", "noeviction").lower()
        else:
            config = await self._config("appendonly", "maxmemory", "maxmemory-policy")
            if config is None:
                return [CANNOT_CHECK]
            aof = config.get("appendonly", "yes").lower() == "yes"
            maxmemory = config.get("maxmemory", "0")
            policy = config.get("maxmemory-policy", "noeviction").lower()
        risks = []
        if not aof:
            risks.append(
                "Redis writes no append-only file (appendonly no): if it restarts, every event "
                "sent since its last RDB snapshot is lost (every event not yet processed, if "
                "it takes no snapshots); set appendonly yes"
            )
        if maxmemory not in ("", "0") and policy != "noeviction":
            risks.append(
                f"Redis evicts keys when it reaches maxmemory (maxmemory-policy {policy}): an "
                "evicted stream loses its events, and an evicted lease lets two workers own "
                "one partition; set maxmemory-policy noeviction"
            )
        return risks

    async def loss_cause(self) -> str | None:
        """Why keys may have gone, from ``INFO``: keys evicted at ``maxmemory`` under an
        evicting policy, or a restart without an append-only file; None when neither
        shows (a flush, a failover to an empty replica) or ``INFO`` is refused."""
        info = await self._info("stats", "memory", "persistence", "server")
        if info is None:
            return None
        evicted = _number(info.get("evicted_keys"))
        policy = info.get("maxmemory_policy", "noeviction").lower()
        if evicted > 0 and policy != "noeviction":
            return (
                f"Redis evicted {evicted} key(s) to stay under maxmemory (maxmemory-policy "
                f"{policy}); set maxmemory-policy noeviction, so that a full Redis refuses "
                "sends instead of dropping data, and give it the memory it needs"
            )
        if info.get("aof_enabled", "1") != "1":
            return (
                f"Redis restarted without persistence (appendonly no; up for "
                f"{_number(info.get('uptime_in_seconds'))}s), was flushed, or failed over to "
                "an empty replica; turn on Redis persistence (appendonly yes) to keep this "
                "from happening"
            )
        return None

    async def check_access(self, needs: Sequence[Access]) -> None:
        """Dry-run, in one script call, every command a worker sends to each key of
        ``needs`` (:mod:`._probe`); nothing is written.

        Raises:
            PermissionDenied: the ACL refuses some of them (all are named).
            BackendError: the check could not run (then nothing is known).
        """
        with translated():
            problems = await _probe.refused(self._client, needs)
        if problems:
            raise PermissionDenied(_probe.summary(self._client, problems))

    async def _info(self, *sections: str) -> dict[str, str] | None:
        """The fields of INFO ``sections``; None when the server refuses INFO."""
        found: dict[str, str] = {}
        try:
            for section in sections:
                with translated():
                    raw = await self._client.info(section)
                found.update({_text(k): _text(v) for k, v in dict(raw).items()})
        except (BackendError, PermissionDenied):
            return None
        return found

    async def _config(self, *names: str) -> dict[str, str] | None:
        """CONFIG GET ``names``; None when the server refuses it (ACL, renamed command)."""
        try:
            with translated():
                raw = await self._client.config_get(*names)
        except (BackendError, PermissionDenied):
            return None
        return {_text(k): _text(v) for k, v in dict(raw).items()}


CANNOT_CHECK = (
    "could not check whether Redis keeps every write and evicts no keys: the Redis user "
    "may run neither INFO nor CONFIG GET; grant +info (see docs/security.md) for the check"
)
"""The risk reported when the server answers neither INFO nor CONFIG GET."""


def _number(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
