"""Exception policies as a state machine.

How it works:
    A partition's consumer is ``RUNNING`` until a failure. Any failure in the processing
    chain (an undecodable entry, a middleware raising, the processor raising, or the
    processor returning while events remain) is one *failure*, and the processor's policy
    decides, through the table ``ON_FAILURE``, what follows:

    ========== ============== ===== ========================================
    policy     next state     ack   effect
    ========== ============== ===== ========================================
    HALT       HALTED         no    the worker drains, releases and exits non-zero
    QUARANTINE QUARANTINED    no    only this partition stops; recorded durably
    IGNORE     RUNNING        yes   the failed events are acknowledged; go on
    ========== ============== ===== ========================================

    A stopped partition (``HALTED`` or ``QUARANTINED``) processes nothing more; a
    quarantine is lifted only by an explicit call, which returns it to ``RUNNING``.

    When the failed events were meant for a dead-letter stream and writing them there
    failed (``ON_DEAD_LETTER_FAILURE``), acknowledging them would lose them: IGNORE then
    acknowledges nothing and redelivers instead (after a back-off, the failed events come
    back from the pending entries list and go through the chain again); HALT and
    QUARANTINE are unchanged, since they acknowledge nothing anyway.

Example:
    >>> on_failure(ExceptionPolicy.IGNORE, PartitionState.RUNNING).ack
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final


class ExceptionPolicy(str, Enum):
    """What a processor does when handling an event fails.

    Example:
        >>> ExceptionPolicy("quarantine") is ExceptionPolicy.QUARANTINE
        True
    """

    HALT = "halt"
    QUARANTINE = "quarantine"
    IGNORE = "ignore"

    @classmethod
    def _missing_(cls, value: object) -> ExceptionPolicy | None:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.lower() or member.name == value.upper():
                    return member
        return None


class PartitionState(str, Enum):
    """The processing state of one partition under one processor."""

    RUNNING = "running"
    HALTED = "halted"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failure: the next state, whether to ack, whether to stop the
    worker, and whether to redeliver the failed events (re-read the pending entries)."""

    state: PartitionState
    ack: bool
    stop_worker: bool
    redeliver: bool = False


class InvalidTransition(Exception):
    """A failure or release was reported for a partition in a state that cannot take it."""


ON_FAILURE: Final = MappingProxyType(
    {
        ExceptionPolicy.HALT: Decision(PartitionState.HALTED, ack=False, stop_worker=True),
        ExceptionPolicy.QUARANTINE: Decision(
            PartitionState.QUARANTINED, ack=False, stop_worker=False
        ),
        ExceptionPolicy.IGNORE: Decision(PartitionState.RUNNING, ack=True, stop_worker=False),
    }
)


ON_DEAD_LETTER_FAILURE: Final = MappingProxyType(
    {
        **ON_FAILURE,
        ExceptionPolicy.IGNORE: Decision(
            PartitionState.RUNNING, ack=False, stop_worker=False, redeliver=True
        ),
    }
)


def on_failure(
    policy: ExceptionPolicy, state: PartitionState, dead_letter_failed: bool = False
) -> Decision:
    """Decide what a failure does to a partition in ``state`` under ``policy``.

    ``dead_letter_failed``: the failed events could not be written to their dead-letter
    stream, so they must not be acknowledged.

    Example:
        >>> on_failure(ExceptionPolicy.HALT, PartitionState.RUNNING).stop_worker
        True
        >>> on_failure(ExceptionPolicy.IGNORE, PartitionState.RUNNING, True).ack
        False
    """
    if state is not PartitionState.RUNNING:
        raise InvalidTransition(f"a {state.value} partition processes nothing")
    table = ON_DEAD_LETTER_FAILURE if dead_letter_failed else ON_FAILURE
    return table[policy]


def on_clear(state: PartitionState) -> PartitionState:
    """Lift a quarantine: the only way out of ``QUARANTINED``.

    Example:
        >>> on_clear(PartitionState.QUARANTINED)
        <PartitionState.RUNNING: 'running'>
    """
    if state is not PartitionState.QUARANTINED:
        raise InvalidTransition(f"only a quarantined partition can be cleared, not {state.value}")
    return PartitionState.RUNNING
