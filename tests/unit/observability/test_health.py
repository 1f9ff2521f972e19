"""The probe rules and the stuck-partition detector, enumerated."""

from __future__ import annotations

import itertools

import pytest

from runnel.domain.health import (
    ExecutorFacts,
    StuckReason,
    StuckThresholds,
    WorkerFacts,
    liveness,
    readiness,
    stuck_change,
    stuck_reasons,
)

OWNING = ExecutorFacts("printer", joined=True, assigned=2, owned=1)


@pytest.mark.parametrize(
    ("started", "stopping", "halted", "backend"),
    list(itertools.product([True, False], repeat=4)),
)
def test_a_worker_is_ready_only_when_started_running_and_connected(
    started: bool, stopping: bool, halted: bool, backend: bool
) -> None:
    facts = WorkerFacts(started, stopping, halted, backend, (OWNING,))
    verdict = readiness(facts)
    assert verdict.ok == (started and not stopping and not halted and backend)
    failing = {check.name for check in verdict.failing()}
    assert ("started" in failing) == (not started)
    assert ("running" in failing) == (stopping or halted)
    assert ("backend" in failing) == (not backend)


@pytest.mark.parametrize(
    ("executor", "ready", "detail"),
    [
        (ExecutorFacts("p", joined=False, assigned=0, owned=0), False, "not joined yet"),
        (
            ExecutorFacts("p", joined=True, assigned=0, owned=0),
            True,
            "no partition assigned (more executors than partitions)",
        ),
        (
            ExecutorFacts("p", joined=True, assigned=3, owned=0),
            False,
            "waiting for its 3 assigned partition(s)",
        ),
        (
            ExecutorFacts("p", joined=True, assigned=3, owned=1),
            True,
            "owns 1 of 3 assigned partition(s)",
        ),
    ],
)
def test_each_processor_must_own_a_partition_or_legitimately_wait(
    executor: ExecutorFacts, ready: bool, detail: str
) -> None:
    verdict = readiness(WorkerFacts(True, False, False, True, (OWNING, executor)))
    (check,) = [c for c in verdict.checks if c.name == "processor:p"]
    assert (verdict.ok, check.ok, check.detail) == (ready, ready, detail)


def test_a_worker_without_processors_is_ready_once_started() -> None:
    assert readiness(WorkerFacts(True, False, False, True)).ok


@pytest.mark.parametrize(("stopping", "halted"), list(itertools.product([True, False], repeat=2)))
def test_only_a_halt_fails_liveness(stopping: bool, halted: bool) -> None:
    facts = WorkerFacts(started=False, stopping=stopping, halted=halted, backend=False)
    assert liveness(facts).ok == (not halted)


@pytest.mark.parametrize(
    ("iteration", "pending", "expected"),
    [
        (None, None, set()),
        (10.0, 60.0, set()),  # exactly at a threshold is not over it
        (10.1, None, {StuckReason.ITERATION}),
        (None, 60.1, {StuckReason.PENDING}),
        (11.0, 61.0, {StuckReason.ITERATION, StuckReason.PENDING}),
    ],
)
def test_a_partition_is_stuck_past_either_threshold(
    iteration: float | None, pending: float | None, expected: set[StuckReason]
) -> None:
    assert stuck_reasons(StuckThresholds(10.0, 60.0), iteration, pending) == expected


def test_a_threshold_that_is_off_never_fires() -> None:
    assert stuck_reasons(StuckThresholds(None, None), 1e9, 1e9) == frozenset()


@pytest.mark.parametrize(
    ("before", "after", "new", "cleared"),
    [
        (set(), set(), (), False),
        (set(), {StuckReason.PENDING}, (StuckReason.PENDING,), False),
        ({StuckReason.PENDING}, {StuckReason.PENDING}, (), False),  # reported once
        (
            {StuckReason.PENDING},
            {StuckReason.PENDING, StuckReason.ITERATION},
            (StuckReason.ITERATION,),
            False,
        ),
        ({StuckReason.PENDING, StuckReason.ITERATION}, {StuckReason.PENDING}, (), False),
        ({StuckReason.ITERATION}, set(), (), True),
    ],
)
def test_each_new_reason_is_reported_once_and_recovery_once(
    before: set[StuckReason],
    after: set[StuckReason],
    new: tuple[StuckReason, ...],
    cleared: bool,
) -> None:
    change = stuck_change(frozenset(before), frozenset(after))
    assert (change.new, change.cleared) == (new, cleared)
