"""Who owns which partition: a balanced, sticky, deterministic assignment.

How it works:
    Every worker runs :func:`assign` on the same inputs (the live members, the partitions and
    who holds what now) and so derives the same answer without talking to the others.

    The rules, in order:

    1. **Balance.** With ``P`` partitions and ``M`` members, every member gets
       ``P // M`` partitions and ``P % M`` of them get one more, so sizes differ by at most
       one. The extra places go to the members that already hold the most (ties by member
       id), because a member holding ``P // M + 1`` keeps its last partition only if it gets
       an extra place.
    2. **Stickiness.** A member keeps its current partitions up to its target size (its
       lowest-numbered ones when it has too many). Only the surplus is released.
    3. **Filling.** The pool (surplus, partitions of members that left, partitions nobody
       held) goes out in ascending order, each to the member that is furthest below its target
       (fewest partitions, ties by member id).
    4. **Determinism.** Members and partitions are sorted and de-duplicated first, so neither
       the order of ``members`` nor the iteration order of ``current`` changes the answer.
       If ``current`` claims a partition for two members, the first member by id keeps the
       claim.

    The result moves the fewest partitions any balanced assignment could. Let ``k[m]`` be
    how many of the partitions member ``m`` holds now that it may keep (still listed, not
    claimed by an earlier member), ``t[m]`` its target and ``orphaned = P - sum(k)``. A
    partition stays put only if its holder keeps it, and a member keeps at most
    ``min(k[m], t[m])``, so every balanced assignment moves at least::

        orphaned + sum(max(0, k[m] - t[m]) for m in members)

    :func:`assign` moves exactly that many, and rule 1 picks the targets that make the sum
    smallest: an extra place lowers it by one exactly when it goes to a member with
    ``k[m] > P // M``. So the minimum over every balanced assignment is::

        P - sum(min(k[m], P // M)) - min(P % M, count(k[m] > P // M))

    Consequences: a member joining a balanced group takes exactly ``P // M`` partitions and a
    member leaving one moves exactly the partitions it held. Running :func:`assign` on its own
    output returns it unchanged.

    **Release before acquire.** :func:`plan_rebalance` turns the answer into what one worker
    must do. A partition has one lease at a time, so its new owner cannot acquire it until the
    old owner has let it go. Each worker therefore first finishes and releases what it loses,
    and only then acquires what it gains, retrying until the old owner's release (or its
    lease's expiry) frees the partition. Acquiring first would have workers wait on each other
    while still holding what the others need, and any overlap would let two consumers process
    one partition out of order.

Example:
    >>> after = assign(["w1", "w2"], range(4), {"w1": frozenset({0, 1, 2, 3})})
    >>> sorted(after["w1"]), sorted(after["w2"])
    ([0, 1], [2, 3])
    >>> plan_rebalance(owned=frozenset({0, 1, 2, 3}), assigned=after["w1"])
    RebalancePlan(release=frozenset({2, 3}), acquire=frozenset())
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    """What one worker must change: release first, then acquire.

    Attributes:
        release: partitions it owns but is no longer assigned; finish and release them first.
        acquire: partitions it is assigned but does not own yet; acquire them afterwards.

    Example:
        >>> plan = plan_rebalance(frozenset({1, 2}), frozenset({2, 3}))
        >>> sorted(plan.release), sorted(plan.acquire), plan.is_noop
        ([1], [3], False)
    """

    release: frozenset[int]
    acquire: frozenset[int]

    @property
    def is_noop(self) -> bool:
        """Whether the plan changes nothing.

        Example:
            >>> plan_rebalance(frozenset({1}), frozenset({1})).is_noop
            True
        """
        return not self.release and not self.acquire


def assign(
    members: Sequence[str],
    partitions: Iterable[int],
    current: Mapping[str, frozenset[int]],
) -> dict[str, frozenset[int]]:
    """Split ``partitions`` among ``members``: balanced, sticky and deterministic.

    Args:
        members: the live members; order and duplicates do not matter.
        partitions: the partition numbers to assign; order and duplicates do not matter.
        current: who holds what now. Members not in ``members`` have left and lose their
            partitions; partitions not in ``partitions`` are ignored.

    Returns:
        Every member mapped to its partitions (possibly none); each partition appears exactly
        once. Empty when ``members`` is empty.

    Example:
        >>> before = {"a": frozenset({0, 1, 2}), "b": frozenset({3, 4, 5})}
        >>> after = assign(["a", "b", "c"], range(6), before)
        >>> {m: sorted(ps) for m, ps in sorted(after.items())}
        {'a': [0, 1], 'b': [3, 4], 'c': [2, 5]}
    """
    names = sorted(set(members))
    if not names:
        return {}
    wanted = sorted(set(partitions))
    kept = _claims(names, frozenset(wanted), current)
    targets = _targets(names, len(wanted), kept)

    result: dict[str, list[int]] = {}
    pool: set[int] = set(wanted)
    for name in names:
        keep = sorted(kept[name])[: targets[name]]
        result[name] = keep
        pool.difference_update(keep)

    # Fill the emptiest member first; a member leaves the heap once it reaches its target.
    below = [(len(result[n]), n) for n in names if len(result[n]) < targets[n]]
    heapq.heapify(below)
    for partition in sorted(pool):
        count, name = heapq.heappop(below)
        result[name].append(partition)
        if count + 1 < targets[name]:
            heapq.heappush(below, (count + 1, name))
    return {name: frozenset(ps) for name, ps in result.items()}


def plan_rebalance(owned: frozenset[int], assigned: frozenset[int]) -> RebalancePlan:
    """What a worker owning ``owned`` must release and acquire to hold ``assigned``.

    Example:
        >>> plan_rebalance(frozenset({0, 1}), frozenset({1, 2}))
        RebalancePlan(release=frozenset({0}), acquire=frozenset({2}))
    """
    return RebalancePlan(release=owned - assigned, acquire=assigned - owned)


def moves(before: Mapping[str, frozenset[int]], after: Mapping[str, frozenset[int]]) -> int:
    """Count the partitions whose owner differs between ``before`` and ``after``.

    A partition owned on one side only counts too: it was picked up or let go.

    Raises:
        ValueError: either side gives one partition to two members.

    Example:
        >>> moves({"a": frozenset({0, 1})}, {"a": frozenset({0}), "b": frozenset({1})})
        1
    """
    owner_before = _owners(before)
    owner_after = _owners(after)
    every = owner_before.keys() | owner_after.keys()
    return sum(1 for p in every if owner_before.get(p) != owner_after.get(p))


def minimum_moves(
    members: Sequence[str],
    partitions: Iterable[int],
    current: Mapping[str, frozenset[int]],
) -> int:
    """The fewest partitions any balanced assignment must move (see "How it works").

    :func:`assign` always moves exactly this many; operators can compare the two to spot a
    rebalance that did more than it had to.

    Example:
        >>> minimum_moves(["a", "b"], range(4), {"a": frozenset(range(4))})
        2
    """
    names = sorted(set(members))
    if not names:
        return 0
    wanted = frozenset(partitions)
    held = [len(ps) for ps in _claims(names, wanted, current).values()]
    base, extra = divmod(len(wanted), len(names))
    over_base = sum(1 for k in held if k > base)
    return len(wanted) - sum(min(k, base) for k in held) - min(extra, over_base)


def _claims(
    names: list[str], wanted: frozenset[int], current: Mapping[str, frozenset[int]]
) -> dict[str, frozenset[int]]:
    """What each live member may keep: its listed partitions not claimed by an earlier id."""
    taken: set[int] = set()
    claims: dict[str, frozenset[int]] = {}
    for name in names:
        mine = (current.get(name, frozenset()) & wanted) - taken
        taken.update(mine)
        claims[name] = mine
    return claims


def _targets(names: list[str], total: int, kept: Mapping[str, frozenset[int]]) -> dict[str, int]:
    """Balanced sizes; the extra places go to the members holding most, ties by id."""
    base, extra = divmod(total, len(names))
    by_holding = sorted(names, key=lambda n: (-len(kept[n]), n))
    lucky = set(by_holding[:extra])
    return {name: base + (1 if name in lucky else 0) for name in names}


def _owners(assignment: Mapping[str, frozenset[int]]) -> dict[int, str]:
    owners: dict[int, str] = {}
    for name in sorted(assignment):
        for partition in assignment[name]:
            if partition in owners:
                raise ValueError(
                    f"partition {partition} is given to both {owners[partition]!r} and {name!r}"
                )
            owners[partition] = name
    return owners
