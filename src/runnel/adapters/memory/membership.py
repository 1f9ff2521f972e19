"""MemoryMembership: the :class:`~runnel.ports.Membership` port on a :class:`MemoryBroker`.

The same shapes as on Redis (a string record, a version counter, a control stream), each
update applied in one synchronous step, so it is as atomic as the Redis script.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> from runnel.ports import MembershipKeys, MembershipRecord, MembershipWrite
    >>> m = MemoryMembership(MemoryBroker(SimulatedClock()))
    >>> keys = MembershipKeys("memb", "mver", "ctrl")
    >>> asyncio.run(m.update(keys, 0, b"{}", {b"type": b"join"})).version
    1
"""

from __future__ import annotations

from typing import Final

from runnel.adapters.memory.broker import MemoryBroker
from runnel.domain.model import Fields
from runnel.ports import MembershipKeys, MembershipRecord, MembershipWrite

CONTROL_MAXLEN: Final = 1000
"""How many announcements a control stream keeps."""


class MemoryMembership:
    """Versioned membership records with announcements in a broker's keyspace (see the
    module's example)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def _version(self, keys: MembershipKeys) -> int:
        raw = self.broker.get_string(keys.version)
        return 0 if raw is None else int(raw)

    async def read(self, keys: MembershipKeys) -> MembershipRecord:
        """The current version (0 if never written) and value."""
        return MembershipRecord(self._version(keys), self.broker.get_string(keys.value))

    async def update(
        self, keys: MembershipKeys, expected: int, value: bytes, note: Fields
    ) -> MembershipWrite:
        """Write ``value`` if the version is still ``expected``, bump it and announce."""
        current = self._version(keys)
        if current != expected:
            return MembershipWrite(False, current)
        version = self.broker.incr(keys.version)
        self.broker.set_string(keys.value, value)
        return MembershipWrite(True, version, self._append(keys, note, version))

    async def announce(self, keys: MembershipKeys, note: Fields) -> bytes:
        """Append ``note`` with the current version to the control stream."""
        return self._append(keys, note, self._version(keys))

    def _append(self, keys: MembershipKeys, note: Fields, version: int) -> bytes:
        stream = self.broker.stream(keys.control, create=True)
        assert stream is not None
        sid = self.broker.next_id(stream)
        stream.add(sid, {**note, b"version": str(version).encode()})
        stream.trim(CONTROL_MAXLEN)
        self.broker.ring()
        return sid.encode()
