"""SystemClock: the real Clock (monotonic time, UTC wall time, asyncio sleeps).

Example:
    >>> clock = SystemClock()
    >>> clock.wall().tzinfo is not None
    True
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any


class SystemClock:
    """The Clock of production: :func:`time.monotonic` and :func:`asyncio.sleep`.

    Example:
        >>> a = SystemClock().now(); b = SystemClock().now()
        >>> b >= a
        True
    """

    now = staticmethod(time.monotonic)
    """Monotonic seconds (the builtin itself: it is read for every event handed out)."""

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
            return await wait_for_event(self.wait_for, waitable, timeout)
        if not waitable.done():
            await asyncio.wait({waitable}, timeout=max(0.0, timeout))
        return waitable.done()


async def wait_for_event(
    wait_for: Callable[[asyncio.Future[Any], float], Awaitable[bool]],
    flag: asyncio.Event,
    timeout: float,
) -> bool:
    """A clock's ``wait_for`` of an event, made from its ``wait_for`` of a future.

    Example:
        >>> async def main() -> bool:
        ...     flag = asyncio.Event()
        ...     asyncio.get_running_loop().call_soon(flag.set)
        ...     return await wait_for_event(SystemClock().wait_for, flag, timeout=5.0)
        >>> asyncio.run(main())
        True
    """
    if flag.is_set():
        return True
    setter = asyncio.ensure_future(flag.wait())
    try:
        return await wait_for(setter, timeout)
    finally:
        setter.cancel()
