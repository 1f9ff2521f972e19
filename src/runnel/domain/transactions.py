"""Effectively-once processing: what an iteration stages, and what a commit's outcome means.

How it works:
    A processor declared with ``guarantee="effectively_once"`` does not acknowledge an
    item (an event, or a batch from ``take``) on its own. Everything the item's iteration
    produces is *staged*: the records it sends to runnel streams, and the changes it makes
    to its partition's keyed state. When the processor asks for the next item, the staged
    outputs, the state changes and the acknowledgement of the item are *committed* in one
    atomic step that the backend refuses unless the partition's lease still holds the
    token it was read under. So either all of an iteration's effects are visible, once, or
    none is, and the input comes back to be processed again.

    A commit's outcome is read from the table ``ON_COMMIT``:

    ============= ========= ===== ==============================================
    outcome       done      lost  then
    ============= ========= ===== ==============================================
    COMMITTED     yes       no    go on with the next item
    APPLIED       yes       no    a retry found the commit applied (its reply was lost)
    FENCED        no        yes   the lease is gone: nothing was written; stop, the
                                  new owner processes the item again
    FULL          no        no    an output's lossless cap has no room: nothing was
                                  written; wait and try again
    UNAVAILABLE   no        no    the reply never came: it may or may not have been
                                  applied; try again (a commit applied already is
                                  recognised, since its input is no longer pending)
    ============= ========= ===== ==============================================

    What happens to staged effects when an iteration fails is ``ON_FAILURE_STAGED``: they
    are always discarded, whatever the exception policy. An IGNOREd item is acknowledged
    with nothing else; a dead-lettered one is written to the sink and acknowledged, atomically,
    with nothing else; under HALT and QUARANTINE nothing is acknowledged and the item comes
    back later, to stage its effects afresh.

Example:
    >>> on_commit(CommitOutcome.UNAVAILABLE).retry
    True
    >>> staged: Staged[str] = Staged()
    >>> staged.stage(["out-entry"])
    >>> staged.set_state("alice", b"3")
    >>> staged.outputs, dict(staged.state)
    (['out-entry'], {'alice': b'3'})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final, Generic, Literal, TypeVar

Guarantee = Literal["at_least_once", "effectively_once"]
"""What a processor guarantees: every event's effects at least once (the default), or the
effects it commits through runnel (sends to streams, keyed state) exactly once."""

GUARANTEES: Final[tuple[Guarantee, ...]] = ("at_least_once", "effectively_once")


class CommitOutcome(str, Enum):
    """What the backend answered to a commit."""

    COMMITTED = "committed"
    APPLIED = "applied"
    FENCED = "fenced"
    FULL = "full"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class CommitDecision:
    """What follows a commit's outcome: whether the item is done, whether the lease is
    lost (stop processing the partition), whether to try the same commit again."""

    done: bool
    lost: bool
    retry: bool


ON_COMMIT: Final = MappingProxyType(
    {
        CommitOutcome.COMMITTED: CommitDecision(done=True, lost=False, retry=False),
        CommitOutcome.APPLIED: CommitDecision(done=True, lost=False, retry=False),
        CommitOutcome.FENCED: CommitDecision(done=False, lost=True, retry=False),
        CommitOutcome.FULL: CommitDecision(done=False, lost=False, retry=True),
        CommitOutcome.UNAVAILABLE: CommitDecision(done=False, lost=False, retry=True),
    }
)


def on_commit(outcome: CommitOutcome) -> CommitDecision:
    """The decision the table ``ON_COMMIT`` holds for ``outcome``."""
    return ON_COMMIT[outcome]


StagedFate = Literal["discarded", "committed"]

ON_FAILURE_STAGED: Final = MappingProxyType(
    {
        "halt": "discarded",
        "quarantine": "discarded",
        "ignore": "discarded",
        "dead_letter": "discarded",
    }
)
"""What becomes of a failed iteration's staged outputs and state changes, by what the
policy does with the failed item (``dead_letter``: the dead-letter middleware wrote it)."""


T = TypeVar("T")


@dataclass(slots=True)
class Staged(Generic[T]):
    """The effects one iteration staged: outputs in send order, and state changes by key
    (a value to set, or None to delete), the last change of a key winning.

    ``T`` is an output as the runtime keeps it (opaque here).
    """

    outputs: list[T] = field(default_factory=list)
    state: dict[str, bytes | None] = field(default_factory=dict)

    def stage(self, outputs: Iterable[T]) -> None:
        """Keep ``outputs`` after those staged already."""
        self.outputs.extend(outputs)

    def set_state(self, key: str, value: bytes) -> None:
        """Set ``key`` to ``value`` when the iteration commits."""
        self.state[key] = value

    def delete_state(self, key: str) -> None:
        """Delete ``key`` when the iteration commits."""
        self.state[key] = None

    def clear(self) -> None:
        """Forget everything staged (committed, or discarded after a failure)."""
        self.outputs.clear()
        self.state.clear()

    def __bool__(self) -> bool:
        return bool(self.outputs or self.state)
