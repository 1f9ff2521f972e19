"""Simulated ``asyncio.sleep`` for code running under a harness.

While at least one harness is open, the module attribute ``asyncio.sleep`` is a function
that looks up the harness scope of the calling context (a context variable, inherited by
every task created from it) and, for a positive delay, sleeps on that harness's simulated
clock instead of the event loop's. Everywhere else (no scope, a closed harness, a delay of
zero or less) it calls the real ``asyncio.sleep``, so the replacement is harmless to code
that does not run under a harness, including other threads.

The replacement is reference-counted: the first harness to open installs it, the last to
close puts the real function back (unless someone else has replaced it meanwhile, in which
case theirs stays and ours keeps deferring to the real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar

from runnel.adapters.memory.clock import SimulatedClock

T = TypeVar("T")


@dataclass(eq=False)
class SleepScope:
    """Where simulated sleeps go for the contexts that carry this scope."""

    clock: SimulatedClock
    active: bool = True


_SCOPE: ContextVar[SleepScope | None] = ContextVar("runnel_testing_sleep_scope", default=None)
_lock = threading.Lock()
_installs = 0
_real_sleep: Callable[..., Awaitable[Any]] = asyncio.sleep


async def simulated_sleep(delay: float, result: T = None) -> T:  # type: ignore[assignment]  # same default as asyncio.sleep
    """``asyncio.sleep`` that sleeps on the harness clock of the calling context.

    Example:
        >>> import asyncio
        >>> asyncio.run(simulated_sleep(0, "no harness: the real sleep"))
        'no harness: the real sleep'
    """
    scope = _SCOPE.get()
    if scope is not None and scope.active and delay > 0:
        if math.isinf(delay):
            # "Sleep forever" must not become a deadline the clock could jump to.
            await asyncio.get_running_loop().create_future()
        await scope.clock.sleep(delay)
        return result
    return await _real_sleep(delay, result)  # type: ignore[no-any-return]  # the real sleep returns result


def enter(scope: SleepScope) -> Token[SleepScope | None]:
    """Install the replacement (once) and put the calling context under ``scope``."""
    global _installs, _real_sleep
    with _lock:
        if _installs == 0 and asyncio.sleep is not simulated_sleep:
            _real_sleep = asyncio.sleep
            asyncio.sleep = simulated_sleep
        _installs += 1
    return _SCOPE.set(scope)


def bind(scope: SleepScope) -> None:
    """Put the current context (a task's own copy) under ``scope``."""
    _SCOPE.set(scope)


def leave(scope: SleepScope, token: Token[SleepScope | None] | None) -> None:
    """Close ``scope``, restore the calling context, and uninstall with the last harness."""
    global _installs
    scope.active = False
    if token is not None:
        # Left from another context (a fixture's teardown)? That context is gone anyway.
        with contextlib.suppress(ValueError, RuntimeError):
            _SCOPE.reset(token)
    with _lock:
        _installs = max(0, _installs - 1)
        if _installs == 0 and asyncio.sleep is simulated_sleep:
            asyncio.sleep = _real_sleep  # type: ignore[assignment]  # putting the original back


def installed() -> bool:
    """Whether ``asyncio.sleep`` is currently the simulated replacement.

    Example:
        >>> installed()
        False
    """
    return asyncio.sleep is simulated_sleep


def current() -> SleepScope | None:
    """The scope of the calling context, if any (open or closed)."""
    return _SCOPE.get()
