"""Worker presence in a memory broker: a name is present while a task holds it.

The in-process counterpart of :mod:`runnel.adapters.redis.presence`: :meth:`hold`
registers the name until its task ends (a stopped or killed virtual worker's tasks are
cancelled), and :meth:`present` answers from the registry.

Example:
    >>> import asyncio
    >>> from runnel.adapters.memory.broker import MemoryBroker
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> presence = MemoryPresence(MemoryBroker(SimulatedClock()))
    >>> asyncio.run(presence.present(["w1"]))
    set()
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from runnel.adapters.memory.broker import MemoryBroker


class MemoryPresence:
    """The Presence capability on a memory broker."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    async def hold(self, name: str, every: float) -> None:
        """Hold ``name`` until cancelled (``every`` is unused: nothing to check)."""
        held = self.broker.presence
        held[name] = held.get(name, 0) + 1
        try:
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            held[name] -= 1
            if not held[name]:
                del held[name]

    async def present(self, names: Collection[str]) -> set[str] | None:
        """Which of ``names`` are held now."""
        return {n for n in names if n in self.broker.presence}
