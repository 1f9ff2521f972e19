"""SystemClock: the real Clock (monotonic time, UTC wall time, asyncio sleeps).

Example:
    >>> clock = SystemClock()
    >>> clock.wall().tzinfo is not None
    True
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any


class SystemClock:
    """The Clock of production: :func:`time.monotonic` and :func:`asyncio.sleep`.

    Example:
        >>> a = SystemClock().now(); b = SystemClock().now()
        >>> b >= a
        True
    """

    def now(self) -> float:
        """Monotonic seconds."""
        return time.monotonic()

    def wall(self) -> datetime:
        """Aware UTC wall time."""
        return datetime.now(timezone.utc)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of real time (0 or less just yields once)."""
        await asyncio.sleep(max(0.0, seconds))

    async def wait_for(self, waitable: asyncio.Future[Any] | asyncio.Event, timeout: float) -> bool:
        """Wait until ``waitable`` is done (or set) or ``timeout`` seconds pass.

        Returns:
            True if ``waitable`` finished in time. It is never cancelled by this call.
        """
        if isinstance(waitable, asyncio.Event):
            if waitable.is_set():
                return True
            setter = asyncio.ensure_future(waitable.wait())
            try:
                return await self.wait_for(setter, timeout)
            finally:
                setter.cancel()
        if not waitable.done():
            await asyncio.wait({waitable}, timeout=max(0.0, timeout))
        return waitable.done()
