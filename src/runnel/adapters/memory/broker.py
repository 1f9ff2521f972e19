"""MemoryBroker: the in-process state behind the memory adapters.

One broker is one keyspace, like one Redis database: streams (with consumer groups and
pending entries lists), strings with optional expiry (locks, counters, small values) and
hashes. The memory StreamLog, PartitionLocks and KeyValue adapters are views of a broker,
so a fence's lock key is looked up where the locks adapter wrote it. Time comes from the
broker's Clock: stream ids from ``wall()``, expiry and idle times from ``now()``.

``memory://name`` URLs in one process share the broker :func:`get_broker` returns.

Example:
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> broker = MemoryBroker(SimulatedClock())
    >>> broker.set_string("k", b"v", ttl=1.0)
    >>> broker.get_string("k")
    b'v'
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TypeAlias

from runnel.adapters.memory._stream_state import Stream
from runnel.adapters.system_clock import SystemClock
from runnel.domain.ids import StreamId
from runnel.errors import BackendProtocolError, Misconfigured
from runnel.ports import Clock

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)
_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


@dataclass(slots=True)
class _String:
    value: bytes
    expires_at: float | None = None


_Value: TypeAlias = "Stream | _String | dict[bytes, bytes]"


class MemoryBroker:
    """All in-process backend state: one keyspace of streams, strings and hashes.

    Args:
        clock: where ids, expiry and idle times come from.

    Example:
        >>> from runnel.adapters.memory.clock import SimulatedClock
        >>> broker = MemoryBroker(SimulatedClock())
        >>> broker.incr("n", 2)
        2
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._keys: dict[str, _Value] = {}
        self._volatile: set[str] = set()
        self._writes = 0
        self._bell: asyncio.Future[None] | None = None
        self.presence: dict[str, int] = {}
        """Worker connection names held now, with how many holders each (not data: a
        flush keeps them, as a Redis restart drops connections but they come back)."""

    # ------------------------------------------------------------------ keyspace

    def _live(self, key: str) -> _Value | None:
        value = self._keys.get(key)
        expired = (
            isinstance(value, _String)
            and value.expires_at is not None
            and value.expires_at <= self.clock.now()
        )
        if expired:
            del self._keys[key]
            self._volatile.discard(key)
            return None
        return value

    def flush(self) -> int:
        """Forget every key, as a Redis restarted without persistence does; how many."""
        gone = len(self._keys)
        self._keys.clear()
        self._volatile.clear()
        self.ring()  # blocked readers look again (and find their groups gone)
        return gone

    def exists(self, key: str) -> bool:
        """True if ``key`` holds a live value of any type."""
        return self._live(key) is not None

    def delete(self, keys: tuple[str, ...] | list[str]) -> int:
        """Delete ``keys``; return how many existed."""
        gone = 0
        for key in keys:
            if self._live(key) is not None:
                del self._keys[key]
                self._volatile.discard(key)
                gone += 1
        return gone

    def get_string(self, key: str) -> bytes | None:
        """The string at ``key`` (None if missing or expired)."""
        value = self._live(key)
        if value is None:
            return None
        if not isinstance(value, _String):
            raise BackendProtocolError(_WRONGTYPE)
        return value.value

    def set_string(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store a string, replacing any value and expiry (SET [PX])."""
        expires_at = None if ttl is None else self.clock.now() + ttl
        self._keys[key] = _String(bytes(value), expires_at)
        if expires_at is None:
            self._volatile.discard(key)
        else:
            self._volatile.add(key)
        self._writes += 1
        if self._writes % 1024 == 0:
            self._sweep()

    def expire(self, key: str, ttl: float) -> bool:
        """Give the string at ``key`` a new time to live; False if it is missing."""
        value = self._live(key)
        if not isinstance(value, _String):
            return False
        value.expires_at = self.clock.now() + ttl
        self._volatile.add(key)
        return True

    def ttl(self, key: str) -> float | None:
        """Seconds the value at ``key`` has left (inf without expiry); None if missing."""
        value = self._live(key)
        if value is None:
            return None
        if not isinstance(value, _String) or value.expires_at is None:
            return float("inf")
        return value.expires_at - self.clock.now()

    def incr(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to the integer string at ``key`` (missing is 0); keeps its TTL."""
        value = self._live(key)
        if value is None:
            self._keys[key] = _String(str(amount).encode())
            return amount
        if not isinstance(value, _String):
            raise BackendProtocolError(_WRONGTYPE)
        try:
            total = int(value.value) + amount
        except ValueError:
            raise BackendProtocolError("ERR value is not an integer or out of range") from None
        value.value = str(total).encode()
        return total

    def hash(self, key: str, create: bool = False) -> dict[bytes, bytes] | None:
        """The hash at ``key``; created empty when missing and ``create`` is True."""
        value = self._live(key)
        if value is None:
            if not create:
                return None
            value = self._keys[key] = {}
        if not isinstance(value, dict):
            raise BackendProtocolError(_WRONGTYPE)
        return value

    def drop_if_empty(self, key: str) -> None:
        """Delete the hash at ``key`` if it has no fields left (Redis deletes empty hashes)."""
        if self._keys.get(key) == {}:
            del self._keys[key]

    def stream(self, key: str, create: bool = False) -> Stream | None:
        """The stream at ``key``; created empty when missing and ``create`` is True."""
        value = self._live(key)
        if value is None:
            if not create:
                return None
            value = self._keys[key] = Stream()
        if not isinstance(value, Stream):
            raise BackendProtocolError(_WRONGTYPE)
        return value

    def _sweep(self) -> None:
        for key in list(self._volatile):
            self._live(key)

    # ------------------------------------------------------------------ streams

    def wall_ms(self) -> int:
        """The clock's wall time in whole milliseconds since the Unix epoch."""
        return (self.clock.wall() - _UNIX_EPOCH) // _ONE_MS

    def next_id(self, stream: Stream) -> StreamId:
        """A new id for ``stream``: wall-clock ms, strictly above its last id (like XADD *)."""
        ms = self.wall_ms()
        last = stream.last_id
        return StreamId(ms, 0) if ms > last.ms else last.next()

    def ring(self) -> None:
        """Wake everyone waiting in :meth:`wait_for_append`: a stream got an entry."""
        bell, self._bell = self._bell, None
        if bell is not None and not bell.done():
            bell.set_result(None)

    async def wait_for_append(self, timeout: float) -> bool:
        """Wait up to ``timeout`` on the broker's clock for the next append; True if one came."""
        loop = asyncio.get_running_loop()
        if self._bell is None or self._bell.get_loop() is not loop:
            self._bell = loop.create_future()
        return await self.clock.wait_for(self._bell, timeout)


_BROKERS: dict[str, MemoryBroker] = {}


def get_broker(name: str, clock: Clock) -> MemoryBroker:
    """The process-wide broker called ``name``, created on first use with ``clock``.

    Brokers of one name share state, so they must share a clock too; several
    :class:`SystemClock` instances count as one.

    Raises:
        Misconfigured: the broker already runs on another (e.g. simulated) clock.

    Example:
        >>> get_broker("doc", SystemClock()) is get_broker("doc", SystemClock())
        True
    """
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker(clock)
    elif broker.clock is not clock and not (
        isinstance(broker.clock, SystemClock) and isinstance(clock, SystemClock)
    ):
        raise Misconfigured(
            f"memory://{name} already runs on clock {broker.clock!r}, not {clock!r}; "
            "share one clock between apps of one broker, or call reset_brokers() between tests"
        )
    return broker


def reset_brokers() -> None:
    """Forget every named broker (tests call this to start from an empty backend)."""
    _BROKERS.clear()
