"""The exception-policy state machine, enumerated from its tables."""

from __future__ import annotations

import pytest

from runnel.domain.policy import (
    ON_DEAD_LETTER_FAILURE,
    ON_FAILURE,
    ExceptionPolicy,
    InvalidTransition,
    PartitionState,
    on_clear,
    on_failure,
)


@pytest.mark.parametrize(
    ("policy", "state", "ack", "stop_worker"),
    [
        (ExceptionPolicy.HALT, PartitionState.HALTED, False, True),
        (ExceptionPolicy.QUARANTINE, PartitionState.QUARANTINED, False, False),
        (ExceptionPolicy.IGNORE, PartitionState.RUNNING, True, False),
    ],
)
def test_each_policy_decides_the_next_state_and_whether_to_ack(
    policy: ExceptionPolicy, state: PartitionState, ack: bool, stop_worker: bool
) -> None:
    decision = on_failure(policy, PartitionState.RUNNING)
    assert (decision.state, decision.ack, decision.stop_worker) == (state, ack, stop_worker)
    assert decision.redeliver is False


def test_when_dead_lettering_failed_nothing_is_ever_acknowledged() -> None:
    for policy in ExceptionPolicy:
        decision = on_failure(policy, PartitionState.RUNNING, dead_letter_failed=True)
        assert decision.ack is False
    ignore = ON_DEAD_LETTER_FAILURE[ExceptionPolicy.IGNORE]
    assert (ignore.state, ignore.redeliver) == (PartitionState.RUNNING, True)
    for policy in (ExceptionPolicy.HALT, ExceptionPolicy.QUARANTINE):
        assert ON_DEAD_LETTER_FAILURE[policy] == ON_FAILURE[policy]


@pytest.mark.parametrize("state", [PartitionState.HALTED, PartitionState.QUARANTINED])
def test_a_stopped_partition_takes_no_more_failures(state: PartitionState) -> None:
    for policy in ExceptionPolicy:
        with pytest.raises(InvalidTransition, match=f"a {state.value} partition"):
            on_failure(policy, state)


def test_only_a_quarantine_can_be_cleared() -> None:
    assert on_clear(PartitionState.QUARANTINED) is PartitionState.RUNNING
    for state in (PartitionState.RUNNING, PartitionState.HALTED):
        with pytest.raises(InvalidTransition):
            on_clear(state)


@pytest.mark.parametrize(
    ("text", "policy"),
    [
        ("halt", ExceptionPolicy.HALT),
        ("QUARANTINE", ExceptionPolicy.QUARANTINE),
        ("Ignore", ExceptionPolicy.IGNORE),
    ],
)
def test_policies_parse_from_settings_text_in_any_case(text: str, policy: ExceptionPolicy) -> None:
    assert ExceptionPolicy(text) is policy


def test_an_unknown_policy_name_is_refused() -> None:
    with pytest.raises(ValueError, match="retry"):
        ExceptionPolicy("retry")
