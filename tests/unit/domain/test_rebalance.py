"""assign / plan_rebalance / moves: balanced, sticky, deterministic, minimal."""

from __future__ import annotations

import itertools
import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runnel.domain.rebalance import (
    RebalancePlan,
    assign,
    minimum_moves,
    moves,
    plan_rebalance,
)

Assignment = dict[str, frozenset[int]]


def sizes(assignment: Mapping[str, frozenset[int]]) -> list[int]:
    return sorted(len(ps) for ps in assignment.values())


def fs(*ps: int) -> frozenset[int]:
    return frozenset(ps)


# --- examples ---------------------------------------------------------------------------


def test_no_members_get_nothing() -> None:
    assert assign([], range(8), {"gone": fs(1, 2)}) == {}


def test_no_partitions_give_every_member_an_empty_set() -> None:
    assert assign(["b", "a"], [], {}) == {"a": fs(), "b": fs()}


def test_a_fresh_assignment_is_even_and_ordered_by_member_id() -> None:
    after = assign(["w2", "w1", "w3"], range(7), {})

    assert after == {"w1": fs(0, 3, 6), "w2": fs(1, 4), "w3": fs(2, 5)}


def test_a_join_takes_only_floor_p_over_m_partitions() -> None:
    before = assign(["a", "b"], range(10), {})

    after = assign(["a", "b", "c"], range(10), before)

    assert len(after["c"]) == 10 // 3
    assert moves(before, after) == 3
    assert after["a"] <= before["a"]
    assert after["b"] <= before["b"]


def test_a_leave_moves_only_the_partitions_of_the_member_that_left() -> None:
    before = assign(["a", "b", "c"], range(10), {})

    after = assign(["a", "c"], range(10), before)

    assert moves(before, after) == len(before["b"])
    assert after["a"] >= before["a"]
    assert after["c"] >= before["c"]
    assert sizes(after) == [5, 5]


def test_the_extra_place_goes_to_the_member_already_holding_more() -> None:
    # 5 partitions over 2 members: one gets 3. "b" holds 3 already, so it keeps them all.
    after = assign(["a", "b"], range(5), {"a": fs(0, 1), "b": fs(2, 3, 4)})

    assert after == {"a": fs(0, 1), "b": fs(2, 3, 4)}


def test_the_extra_place_goes_by_member_id_when_holdings_tie() -> None:
    after = assign(["b", "a"], range(3), {})

    assert after == {"a": fs(0, 2), "b": fs(1)}


def test_a_member_with_too_many_keeps_its_lowest_numbered_partitions() -> None:
    after = assign(["a", "b"], range(4), {"a": fs(3, 2, 1, 0)})

    assert after == {"a": fs(0, 1), "b": fs(2, 3)}


def test_partitions_that_no_longer_exist_are_dropped() -> None:
    after = assign(["a"], range(2), {"a": fs(0, 1, 7)})

    assert after == {"a": fs(0, 1)}


def test_a_partition_claimed_twice_stays_with_the_first_member_by_id() -> None:
    after = assign(["a", "b"], range(2), {"b": fs(0), "a": fs(0)})

    assert after == {"a": fs(0), "b": fs(1)}


def test_duplicate_members_and_partitions_count_once() -> None:
    assert assign(["a", "a", "b"], [0, 1, 1, 2, 3], {}) == assign(["a", "b"], range(4), {})


def test_plan_releases_what_is_lost_and_acquires_what_is_gained() -> None:
    plan = plan_rebalance(owned=fs(0, 1, 2), assigned=fs(2, 3))

    assert plan == RebalancePlan(release=fs(0, 1), acquire=fs(3))
    assert not plan.is_noop
    assert plan_rebalance(fs(1), fs(1)).is_noop


def test_plans_of_all_members_release_exactly_what_others_acquire() -> None:
    before = assign(["a", "b", "c"], range(12), {})
    after = assign(["a", "b", "d"], range(12), before)

    plans = {m: plan_rebalance(before.get(m, fs()), after.get(m, fs())) for m in before | after}
    released = set[int]().union(*(p.release for p in plans.values()))
    acquired = set[int]().union(*(p.acquire for p in plans.values()))

    assert acquired == released
    assert len(acquired) == moves(before, after)


def test_moves_counts_partitions_that_changed_owner_including_unowned_ones() -> None:
    before = {"a": fs(0, 1), "b": fs(2)}
    after = {"a": fs(0), "b": fs(1, 2, 3)}

    assert moves(before, after) == 2  # 1 moved a -> b, 3 was unowned
    assert moves(after, after) == 0
    assert moves({"a": fs(0)}, {}) == 1


def test_moves_rejects_a_partition_given_to_two_members() -> None:
    with pytest.raises(ValueError, match="partition 0 is given to both 'a' and 'b'"):
        moves({"a": fs(0), "b": fs(0)}, {})


# --- properties -------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[str], list[int], Assignment]:
    """Members, partitions and a disjoint ``current`` that may name members who left."""
    pool = [f"w{i}" for i in range(8)]
    members = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=6, unique=True))
    partitions = list(range(draw(st.integers(min_value=0, max_value=24))))
    owners = draw(
        st.lists(
            st.one_of(st.none(), st.sampled_from(pool)),
            min_size=len(partitions),
            max_size=len(partitions),
        )
    )
    current: dict[str, set[int]] = {}
    for partition, owner in zip(partitions, owners, strict=True):
        if owner is not None:
            current.setdefault(owner, set()).add(partition)
    return members, partitions, {m: frozenset(ps) for m, ps in current.items()}


@given(scenarios())
def test_balanced_covering_and_exclusive(scenario: tuple[list[str], list[int], Assignment]) -> None:
    members, partitions, current = scenario

    after = assign(members, partitions, current)

    assert set(after) == set(members)
    counts = sizes(after)
    assert counts[-1] - counts[0] <= 1
    every = [p for ps in after.values() for p in ps]
    assert sorted(every) == sorted(partitions)  # each partition exactly once


@given(scenarios(), st.randoms(use_true_random=False))
def test_deterministic_under_any_order_of_members_and_current(
    scenario: tuple[list[str], list[int], Assignment], rnd: random.Random
) -> None:
    members, partitions, current = scenario
    shuffled_members = rnd.sample(members, len(members))
    items = list(current.items())
    rnd.shuffle(items)
    shuffled_partitions = rnd.sample(partitions, len(partitions))

    assert assign(shuffled_members, shuffled_partitions, dict(items)) == assign(
        members, partitions, current
    )


@given(scenarios())
def test_moves_exactly_the_minimum_a_balanced_assignment_needs(
    scenario: tuple[list[str], list[int], Assignment],
) -> None:
    """The minimal-move property.

    With ``k[m] = |current[m] & partitions|`` for each live member, ``t[m]`` its target size
    in the result and ``orphaned = P - sum(k)`` (partitions of members that left, or of none):

        moves(current, after) == orphaned + sum(max(0, k[m] - t[m]))
                              == P - sum(min(k[m], P // M)) - min(P % M, #{m: k[m] > P // M})

    The first form holds because each member keeps min(k, t) and nothing else stays; the
    second says the targets were chosen to make it smallest over every balanced split.
    """
    members, partitions, current = scenario
    after = assign(members, partitions, current)

    p, m = len(partitions), len(set(members))
    k = {name: len(current.get(name, frozenset()) & set(partitions)) for name in set(members)}
    t = {name: len(after[name]) for name in set(members)}
    orphaned = p - sum(k.values())
    base, extra = divmod(p, m)
    over_base = sum(1 for held in k.values() if held > base)

    observed = moves(current, after)
    assert observed == orphaned + sum(max(0, k[n] - t[n]) for n in k)
    assert observed == p - sum(min(held, base) for held in k.values()) - min(extra, over_base)
    assert observed == minimum_moves(members, partitions, current)
    for name in set(members):  # sticky: a member only ever loses its surplus
        assert len(after[name] & current.get(name, frozenset())) == min(k[name], t[name])


@settings(max_examples=60)
@given(
    st.integers(min_value=1, max_value=3).flatmap(
        lambda m: st.tuples(
            st.just([f"w{i}" for i in range(m)]),
            st.integers(min_value=0, max_value=6).flatmap(
                lambda p: st.lists(
                    st.sampled_from([None, "gone", *[f"w{i}" for i in range(m)]]),
                    min_size=p,
                    max_size=p,
                )
            ),
        )
    )
)
def test_no_balanced_assignment_moves_fewer_by_exhaustive_search(
    case: tuple[list[str], list[str | None]],
) -> None:
    members, owners = case
    partitions = list(range(len(owners)))
    current: dict[str, frozenset[int]] = {}
    for partition, owner in enumerate(owners):
        if owner is not None:
            current[owner] = current.get(owner, frozenset()) | {partition}

    best = min(
        moves(current, candidate)
        for candidate in _every_assignment(members, partitions)
        if max(sizes(candidate)) - min(sizes(candidate)) <= 1
    )

    assert moves(current, assign(members, partitions, current)) == best


def _every_assignment(members: list[str], partitions: list[int]) -> list[Assignment]:
    out: list[Assignment] = []
    for owners in itertools.product(members, repeat=len(partitions)):
        candidate: Assignment = {m: frozenset() for m in members}
        for partition, owner in zip(partitions, owners, strict=True):
            candidate[owner] = candidate[owner] | {partition}
        out.append(candidate)
    return out


@given(scenarios())
def test_assign_is_idempotent(scenario: tuple[list[str], list[int], Assignment]) -> None:
    members, partitions, current = scenario
    after = assign(members, partitions, current)

    assert assign(members, partitions, after) == after
    assert moves(after, assign(members, partitions, after)) == 0


@given(
    members=st.lists(st.sampled_from([f"w{i}" for i in range(8)]), min_size=1, unique=True),
    newcomer=st.sampled_from(["n0", "w9", "a"]),
    p=st.integers(min_value=0, max_value=40),
)
def test_a_join_to_a_balanced_group_moves_exactly_floor_p_over_m(
    members: list[str], newcomer: str, p: int
) -> None:
    before = assign(members, range(p), {})

    after = assign([*members, newcomer], range(p), before)

    assert moves(before, after) == p // (len(members) + 1)
    assert len(after[newcomer]) == p // (len(members) + 1)


@given(
    members=st.lists(st.sampled_from([f"w{i}" for i in range(8)]), min_size=2, unique=True),
    p=st.integers(min_value=0, max_value=40),
    data=st.data(),
)
def test_a_leave_from_a_balanced_group_moves_only_the_leavers_partitions(
    members: list[str], p: int, data: st.DataObject
) -> None:
    before = assign(members, range(p), {})
    leaver = data.draw(st.sampled_from(members))

    after = assign([m for m in members if m != leaver], range(p), before)

    assert moves(before, after) == len(before[leaver])
