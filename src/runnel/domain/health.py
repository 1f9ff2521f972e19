"""Liveness, readiness and stuck partitions: the rules behind the probes, as data.

How it works:
    The worker keeps a few facts up to date (started, stopping, halted, the backend
    answering, and per processor whether its executor joined, how many partitions the
    assignment gives it and how many it holds). The probes turn a snapshot of those facts
    into a :class:`Verdict`, a list of named checks:

    ========== =========================================================================
    probe      passes when
    ========== =========================================================================
    liveness   the worker has not halted (and the event loop answered the probe at all)
    readiness  start-up finished, no stop is under way, the backend answers, and every
               processor's executor joined and owns a partition or legitimately waits:
               its assignment is empty (more executors than partitions)
    ========== =========================================================================

    A worker waiting for partitions the assignment gave it (their previous owner has not
    let go yet) is not ready: a rolling update that waits for readiness then keeps the old
    worker until the new one has taken over.

    The stuck-partition detector compares two ages with their thresholds: how long the
    iteration in flight has run, and how long the oldest pending entry has waited since
    it was delivered. :func:`stuck_reasons` names the thresholds crossed and
    :func:`stuck_change` says what to report when that set changes: a warning for each new
    reason, and one all-clear when none is left.

Example:
    >>> facts = WorkerFacts(started=True, stopping=False, halted=False, backend=True)
    >>> readiness(facts).ok, liveness(facts).ok
    (True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class ExecutorFacts:
    """What one processor's executor knows about its partitions.

    Example:
        >>> ExecutorFacts("printer", joined=True, assigned=2, owned=0).waiting
        True
    """

    processor: str
    joined: bool
    assigned: int
    owned: int

    @property
    def waiting(self) -> bool:
        """Assigned partitions but holding none of them yet."""
        return self.assigned > 0 and self.owned == 0


@dataclass(frozen=True, slots=True)
class WorkerFacts:
    """A snapshot of the facts the probes judge."""

    started: bool
    stopping: bool
    halted: bool
    backend: bool
    executors: tuple[ExecutorFacts, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    """One named check of a probe, with a short explanation."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a probe: ok when every check passed.

    Example:
        >>> Verdict((Check("a", True, ""), Check("b", False, "why"))).ok
        False
    """

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    def failing(self) -> tuple[Check, ...]:
        """The checks that did not pass."""
        return tuple(check for check in self.checks if not check.ok)


def liveness(facts: WorkerFacts) -> Verdict:
    """Whether the worker should be left running (a failing one is restarted).

    A stop under way is still alive: killing a draining worker would lose its grace period.

    Example:
        >>> liveness(WorkerFacts(True, True, True, True)).failing()[0].name
        'halted'
    """
    return Verdict(
        (
            Check(
                "halted",
                not facts.halted,
                "a HALT policy stopped the worker" if facts.halted else "not halted",
            ),
        )
    )


def readiness(facts: WorkerFacts) -> Verdict:
    """Whether the worker is doing its share of the work (see the module docstring).

    Example:
        >>> waiting = ExecutorFacts("printer", joined=True, assigned=1, owned=0)
        >>> v = readiness(WorkerFacts(True, False, False, True, (waiting,)))
        >>> v.ok, v.failing()[0].detail
        (False, 'waiting for its 1 assigned partition(s)')
    """
    checks = [
        Check("started", facts.started, "started" if facts.started else "still starting"),
        Check(
            "running",
            not (facts.stopping or facts.halted),
            "halted" if facts.halted else "stopping" if facts.stopping else "running",
        ),
        Check(
            "backend",
            facts.backend,
            "the backend answers" if facts.backend else "the backend does not answer",
        ),
    ]
    checks.extend(_executor_check(executor) for executor in facts.executors)
    return Verdict(tuple(checks))


def _executor_check(facts: ExecutorFacts) -> Check:
    name = f"processor:{facts.processor}"
    if not facts.joined:
        return Check(name, False, "not joined yet")
    if facts.assigned == 0:
        return Check(name, True, "no partition assigned (more executors than partitions)")
    if facts.owned == 0:
        return Check(name, False, f"waiting for its {facts.assigned} assigned partition(s)")
    return Check(name, True, f"owns {facts.owned} of {facts.assigned} assigned partition(s)")


# --------------------------------------------------------------------------- stuck partitions


class StuckReason(str, Enum):
    """Why a partition counts as stuck (the ``reason`` label of the warnings counter)."""

    ITERATION = "iteration"
    """The iteration in flight has run longer than the iteration threshold."""
    PENDING = "pending"
    """The oldest pending entry has waited longer than the pending threshold."""


@dataclass(frozen=True, slots=True)
class StuckThresholds:
    """Seconds past which a partition counts as stuck; None turns a check off.

    Example:
        >>> StuckThresholds(iteration=60.0, pending=None).pending is None
        True
    """

    iteration: float | None
    pending: float | None


@dataclass(frozen=True, slots=True)
class StuckChange:
    """What to report after a check: a warning per new reason, or the all-clear."""

    new: tuple[StuckReason, ...] = ()
    cleared: bool = False


def stuck_reasons(
    thresholds: StuckThresholds, iteration_age: float | None, oldest_pending: float | None
) -> frozenset[StuckReason]:
    """The thresholds a partition crosses.

    Args:
        thresholds: the limits (None: that check is off).
        iteration_age: seconds the iteration in flight has run (None: none in flight).
        oldest_pending: seconds the oldest pending entry has waited since it was
            delivered (None: nothing pending, or not known).

    Example:
        >>> sorted(stuck_reasons(StuckThresholds(10.0, 60.0), 11.0, 5.0))
        [<StuckReason.ITERATION: 'iteration'>]
    """
    reasons = set()
    if _over(iteration_age, thresholds.iteration):
        reasons.add(StuckReason.ITERATION)
    if _over(oldest_pending, thresholds.pending):
        reasons.add(StuckReason.PENDING)
    return frozenset(reasons)


def _over(age: float | None, limit: float | None) -> bool:
    return age is not None and limit is not None and age > limit


def stuck_change(before: frozenset[StuckReason], after: frozenset[StuckReason]) -> StuckChange:
    """What to report when a partition's stuck reasons go from ``before`` to ``after``.

    A reason that stays is not reported again; one that appears is (once each time it
    appears); the partition recovering from every reason is reported once.

    Example:
        >>> stuck_change(frozenset(), frozenset({StuckReason.PENDING})).new
        (<StuckReason.PENDING: 'pending'>,)
        >>> stuck_change(frozenset({StuckReason.PENDING}), frozenset()).cleared
        True
    """
    new = tuple(reason for reason in StuckReason if reason in after and reason not in before)
    return StuckChange(new=new, cleared=bool(before) and not after)
