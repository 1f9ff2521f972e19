"""Warnings that a retrying loop would otherwise repeat many times a second.

While Redis is unreachable, every loop of a worker (heartbeat, fetch, control stream,
leader election) fails and retries; each failure is worth knowing about once, not five
times a second. A :class:`RepeatedWarning` logs the first failure at once, then at most
one every :data:`REPEAT_EVERY` seconds saying how many like it were held back, and one
INFO line when the loop works again.

Example:
    >>> import logging
    >>> from runnel.adapters.memory.clock import SimulatedClock
    >>> clock = SimulatedClock()
    >>> warning = RepeatedWarning(logging.getLogger("doc"), clock, every=30.0)
    >>> [warning.warn("fetch failed: %s", "down") for _ in range(3)]
    [True, False, False]
    >>> warning.held
    2
"""

from __future__ import annotations

import logging
from typing import Final

from runnel.ports import Clock

REPEAT_EVERY: Final = 30.0
"""Seconds between two lines of one repeated warning."""


class RepeatedWarning:
    """One kind of warning, rate-limited: see the module docstring.

    Attributes:
        failures: failures since the loop last worked (logged or not).
        held: failures not logged since the last line.
    """

    def __init__(self, logger: logging.Logger, clock: Clock, every: float = REPEAT_EVERY) -> None:
        self._log = logger
        self._clock = clock
        self.every = every
        self.failures = 0
        self.held = 0
        self._last: float | None = None

    def warn(self, message: str, *args: object) -> bool:
        """Log ``message % args`` at WARNING unless one was logged in the last ``every``
        seconds; whether it was logged. A line after held-back ones says how many."""
        now = self._clock.now()
        self.failures += 1
        last = self._last
        if last is not None and now - last < self.every:
            self.held += 1
            return False
        if self.held:
            message += " (%d more like it in the last %.0fs)"
            args = (*args, self.held, now - last if last is not None else 0.0)
        self._log.warning(message, *args)
        self._last, self.held = now, 0
        return True

    def clear(self, what: str) -> None:
        """The loop worked: say so once at INFO if it had failed more than once."""
        if self.failures > 1:
            self._log.info("%s works again after %d failure(s)", what, self.failures)
        self.failures = self.held = 0
        self._last = None
