"""When timers and crontab tasks fire.

How it works:
    **Timers** (``every=seconds``) run on a fixed grid on the monotonic clock: slot ``k`` is
    due at ``origin + k * interval``. Each due time is computed from its slot number, never by
    adding ``interval`` to the previous due time, so rounding errors cannot add up and a timer
    does not drift however long it runs. When a run overruns one or more slots, the missed
    slots are skipped, not run back to back: the next fire is the first slot strictly after
    ``now``. A slot that comes due while the previous run is still going, including exactly as
    it finishes, counts as missed.

    **Crontab** tasks fire at wall-clock times in a named time zone. The spec is matched
    against local wall time (by ``croniter``), then turned into an instant with ``zoneinfo``:

    ======================================= ============================================
    the local time the spec names           fires
    ======================================= ============================================
    exists once                             at that instant
    happens twice (clocks go back)          once, at the first occurrence
    is skipped (clocks go forward)          once, as far after the jump as it was
                                            into the gap (01:30 in a 01:00-02:00 gap
                                            fires at 02:30 new time)
    ======================================= ============================================

    So "45 17 * * *" in Europe/London fires at 17:45 local every day: 17:45 UTC in winter and
    16:45 UTC in summer. Each fire has a :meth:`CronSchedule.slot_id`, its UTC time, which
    leader fencing uses so that one slot runs once even if leadership changes hands.

Example:
    >>> timer = TimerSchedule(10.0, origin=100.0)
    >>> timer.next_fire(None, now=100.0)
    110.0
    >>> timer.next_fire(110.0, now=143.0)
    150.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

_UTC: Final = timezone.utc
_PROBE_FROM: Final = datetime(2000, 1, 1)
"""Where a new spec is first tried, to reject specs that can never fire (``0 0 30 2 *``)."""


@dataclass(frozen=True, slots=True)
class TimerSchedule:
    """A fixed-interval grid on the monotonic clock: slot ``k`` is due at ``origin + k*interval``.

    Args:
        interval: seconds between slots; finite and positive.
        origin: the monotonic time of slot 0, typically the clock's ``now()`` when the timer
            starts, so that the first fire comes one interval later.

    Raises:
        ValueError: ``interval`` is not a finite positive number, or ``origin`` not finite.

    Example:
        >>> timer = TimerSchedule(0.5, origin=2.0)
        >>> timer.next_fire(None, now=2.0), timer.slot(3.0)
        (2.5, 2)
    """

    interval: float
    origin: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval) and self.interval > 0):
            raise ValueError(
                f"interval must be a finite number of seconds > 0, got {self.interval!r}"
            )
        if not math.isfinite(self.origin):
            raise ValueError(f"origin must be a finite monotonic time, got {self.origin!r}")

    def due(self, slot: int) -> float:
        """The monotonic time slot number ``slot`` is due.

        Example:
            >>> TimerSchedule(0.1).due(1000)
            100.0
        """
        return self.origin + slot * self.interval

    def slot(self, due: float) -> int:
        """The number of the slot due at ``due`` (the nearest one if ``due`` is off the grid).

        Example:
            >>> TimerSchedule(5.0, origin=1.0).slot(16.0)
            3
        """
        return round((due - self.origin) / self.interval)

    def next_fire(self, prev_due: float | None, now: float) -> float:
        """When to fire next: the first slot after ``prev_due`` that is strictly after ``now``.

        Args:
            prev_due: the due time of the last run, or ``None`` before the first run.
            now: the current monotonic time.

        Returns:
            A due time on the grid. Slots that passed while the previous run was going are
            skipped, never bunched; the result is always later than ``prev_due``.

        Example:
            >>> timer = TimerSchedule(1.0)
            >>> timer.next_fire(3.0, now=3.2)
            4.0
            >>> timer.next_fire(3.0, now=7.5)
            8.0
        """
        # Start from the slot the arithmetic suggests, then correct for rounding at the edges.
        slot = math.floor((now - self.origin) / self.interval) + 1
        while self.due(slot) <= now:
            slot += 1
        while self.due(slot - 1) > now:
            slot -= 1
        if prev_due is not None:
            slot = max(slot, self.slot(prev_due) + 1)
        return self.due(slot)

    def missed(self, prev_due: float, next_due: float) -> int:
        """How many slots were skipped between two consecutive fires (for logging).

        Example:
            >>> timer = TimerSchedule(1.0)
            >>> timer.missed(3.0, timer.next_fire(3.0, now=7.5))
            4
        """
        return max(0, self.slot(next_due) - self.slot(prev_due) - 1)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A crontab spec in a named time zone, checked when it is built.

    Args:
        spec: a crontab expression as ``croniter`` reads it, e.g. ``"45 17 * * *"``.
        timezone: an IANA zone name, e.g. ``"Europe/London"`` or ``"UTC"``.

    Raises:
        ValueError: the spec does not parse or can never fire, or the zone is unknown; the
            message names the offending value.

    Example:
        >>> daily = CronSchedule("45 17 * * *", "Europe/London")
        >>> fire = daily.next_after(datetime(2025, 7, 1, 12, 0, tzinfo=timezone.utc))
        >>> fire.isoformat(), daily.slot_id(fire)
        ('2025-07-01T17:45:00+01:00', '2025-07-01T16:45:00Z')
    """

    spec: str
    timezone: str
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.spec, str):
            raise ValueError(f"invalid cron spec {self.spec!r}: expected a str like '45 17 * * *'")
        try:
            croniter(self.spec, _PROBE_FROM).get_next(datetime)
        except CroniterBadDateError as exc:
            raise ValueError(f"cron spec {self.spec!r} never fires: {exc}") from exc
        except (CroniterError, ValueError, KeyError, IndexError) as exc:
            raise ValueError(
                f"invalid cron spec {self.spec!r} (expected e.g. '45 17 * * *'): {exc}"
            ) from exc
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.timezone!r} for cron {self.spec!r}") from exc
        object.__setattr__(self, "_zone", zone)

    def next_after(self, moment: datetime) -> datetime:
        """The first fire strictly after ``moment``, as an aware datetime in the schedule's zone.

        Raises:
            ValueError: ``moment`` is naive, or the spec has no fire after it (a past year).

        Example:
            >>> utc = CronSchedule("0 * * * *", "UTC")
            >>> utc.next_after(datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc)).hour
            10
        """
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"next_after needs an aware datetime, got naive {moment!r}")
        after = moment.astimezone(_UTC)
        # Iterate in naive local wall time, where cron specs live, and map each match to an
        # instant. Folds can make a match map to an instant at or before ``moment`` (its first
        # occurrence already passed), so keep going until one lies after it.
        wall = croniter(self.spec, moment.astimezone(self._zone).replace(tzinfo=None))
        while True:
            try:
                match = wall.get_next(datetime)
            except CroniterError as exc:
                raise ValueError(f"cron spec {self.spec!r} has no fire after {moment}") from exc
            fire = match.replace(tzinfo=self._zone, fold=0).astimezone(_UTC)
            if fire > after:
                return fire.astimezone(self._zone)

    def slot_id(self, fire: datetime) -> str:
        """A stable name for one fire, the same on every worker: its UTC time.

        Example:
            >>> CronSchedule("0 9 * * *", "Europe/Paris").slot_id(
            ...     datetime(2025, 1, 2, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
            ... )
            '2025-01-02T08:00:00Z'
        """
        if fire.tzinfo is None or fire.utcoffset() is None:
            raise ValueError(f"slot_id needs an aware datetime, got naive {fire!r}")
        return fire.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
