"""Small asyncio helpers that take time from the Clock port."""

from __future__ import annotations

import asyncio
from typing import Any

from runnel.ports import Clock


async def wait_within(task: asyncio.Future[Any], timeout: float, clock: Clock) -> bool:
    """Wait for ``task`` up to ``timeout`` seconds of ``clock``; True if it finished."""
    if task.done():
        return True
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
    return task.done()


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel tasks and wait until they have finished."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def wait_event(flag: asyncio.Event, timeout: float, clock: Clock) -> bool:
    """Wait for ``flag`` up to ``timeout`` seconds of ``clock``; True if it was set."""
    if flag.is_set():
        return True
    waiter = asyncio.ensure_future(flag.wait())
    try:
        return await wait_within(waiter, timeout, clock)
    finally:
        waiter.cancel()
