"""RedisMembership: the :class:`~runnel.ports.Membership` port on Redis strings and a stream.

The record is a string, its version a counter of its own, and the control stream a Redis
stream capped at about :data:`CONTROL_MAXLEN` entries (``MAXLEN ~``: only executors that
are more than that many announcements behind could miss one, and they re-read the record
on their periodic check anyway). An update is one Lua script: compare the version, write,
bump it and announce, so a change and its announcement never come apart.

Example:
    >>> from redis.asyncio import Redis
    >>> membership = RedisMembership(Redis())   # no I/O until the first call
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis

from runnel.adapters.redis import _replies
from runnel.adapters.redis._errors import translated
from runnel.adapters.redis._scripts import Arg, register
from runnel.domain.model import Fields
from runnel.ports import MembershipKeys, MembershipRecord, MembershipWrite

CONTROL_MAXLEN: Final = 1000
"""About how many announcements a control stream keeps."""


def _flat(note: Fields) -> list[Arg]:
    args: list[Arg] = []
    for name, value in note.items():
        args += [name, value]
    return args


class RedisMembership:
    """Versioned membership records with announcements, on Redis (two scripts).

    Args:
        client: a ``redis.asyncio.Redis`` with ``decode_responses=False``.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._update = register(client, "membership_update")
        self._announce = register(client, "membership_announce")

    async def read(self, keys: MembershipKeys) -> MembershipRecord:
        """The current version (0 if never written) and value, in one MGET."""
        with translated():
            raw = await self._client.mget([keys.value, keys.version])
        return _replies.membership_read(raw)

    async def update(
        self, keys: MembershipKeys, expected: int, value: bytes, note: Fields
    ) -> MembershipWrite:
        """Write ``value`` if the version is still ``expected``, bump it and announce."""
        args: list[Arg] = [expected, value, CONTROL_MAXLEN, *_flat(note)]
        with translated():
            raw = await self._update(keys=[keys.value, keys.version, keys.control], args=args)
        return _replies.membership_write(raw)

    async def announce(self, keys: MembershipKeys, note: Fields) -> bytes:
        """Append ``note`` with the current version to the control stream."""
        args: list[Arg] = [CONTROL_MAXLEN, *_flat(note)]
        with translated():
            raw = await self._announce(keys=[keys.version, keys.control], args=args)
        return _replies.as_bytes(raw)
