"""Effectively-once processors on the memory backend, in the test kit's simulation.

The pipeline: orders -> per-customer totals in keyed state -> an output stream of updated
totals. Whatever fails (a worker killed, cut off past its lease, a processor raising),
every order has exactly one committed output, every total is the exact sum, and each
customer's outputs come in order.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest

from runnel import App, Events, Record, Stream
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.adapters.serializers import JSONSerializer
from runnel.codec import state_spec
from runnel.domain.transactions import ON_FAILURE_STAGED, CommitOutcome, Staged, on_commit
from runnel.errors import BackendUnavailable
from runnel.middleware import DeadLetterMiddleware
from runnel.ports import Commit
from runnel.runtime.state import KeyedState
from runnel.testing import Harness

FAST: dict[str, Any] = {
    "default_lock_expiry": 4.0,
    "default_prefetch_count": 4,
    "default_partition_count": 4,
}


class Order(Record):
    """An order: ``seq`` numbers each customer's orders 0, 1, 2, ..."""

    customer: str
    seq: int
    amount: int


class Total(Record):
    """A customer's running total after one of their orders."""

    customer: str
    seq: int
    total: int


def orders_for(count: int, customers: int = 6) -> list[Order]:
    """``count`` orders over ``customers`` customers, amounts 1..7."""
    return [
        Order(customer=f"c{i % customers}", seq=i // customers, amount=1 + i % 7)
        for i in range(count)
    ]


def totals_app(
    work: float = 0.0,
    policy: str = "halt",
    fail_on: set[tuple[str, int]] | None = None,
    batch: int = 0,
    dead_letter: bool = False,
    hook: Callable[[Order], None] | None = None,
    **settings: Any,
) -> tuple[App, Stream[Order], Stream[Total]]:
    """The pipeline, with ``work`` simulated seconds per order, failing on ``fail_on``."""
    app = App(name=f"t{uuid4().hex[:8]}", redis_url="redis://127.0.0.1:1/0", **{**FAST, **settings})
    orders = app.stream("orders", record=Order, partition_by="customer")
    totals = app.stream("totals", record=Total, partition_by="customer")
    middleware = [DeadLetterMiddleware(orders)] if dead_letter else []
    failing = fail_on or set()

    async def handle(events: Events, order: Order) -> None:
        total = events.state.increment(order.customer, order.amount)
        await totals.send(Total(customer=order.customer, seq=order.seq, total=total))
        if hook is not None:
            hook(order)
        if (order.customer, order.seq) in failing:
            raise ValueError(f"order {order.customer}/{order.seq} refused")
        if work:
            await asyncio.sleep(work)

    @app.processor(
        orders,
        guarantee="effectively_once",
        state=int,
        exception_policy=policy,
        middleware=middleware,
    )
    async def running_totals(events: Events) -> None:
        if batch:
            async for orders_batch in events.take(batch, within=0.5).records():
                for order in orders_batch:
                    await handle(events, order)
        else:
            async for order in events.records():
                await handle(events, order)

    return app, orders, totals


def committed_totals(h: Harness, totals: Stream[Total]) -> list[Total]:
    """Every committed output, in stream order per partition."""
    return [e.record() for events in h.entries(totals).values() for e in events]


def check_exactly_once(
    h: Harness,
    totals: Stream[Total],
    sent: list[Order],
    skipped: frozenset[tuple[str, int]] = frozenset(),
) -> None:
    """One output per order (none for ``skipped``), exact totals, per-customer order."""
    outputs = committed_totals(h, totals)
    keys = [(t.customer, t.seq) for t in outputs]
    assert len(keys) == len(set(keys)), "an order has two committed outputs"
    expected = {(o.customer, o.seq) for o in sent} - skipped
    assert set(keys) == expected
    running: dict[str, int] = defaultdict(int)
    by_customer: dict[str, list[Total]] = defaultdict(list)
    for t in outputs:
        by_customer[t.customer].append(t)
    for order in sorted(sent, key=lambda o: o.seq):
        if (order.customer, order.seq) in skipped:
            continue
        running[order.customer] += order.amount
        out = next(t for t in by_customer[order.customer] if t.seq == order.seq)
        assert out.total == running[order.customer], f"{order.customer}/{order.seq}"
    for customer, seqs in by_customer.items():
        assert [t.seq for t in seqs] == sorted(t.seq for t in seqs), f"{customer} reordered"
    state = {k: v for part in h.state("running_totals").values() for k, v in part.items()}
    assert state == dict(running)


async def test_every_order_has_one_output_and_the_state_the_exact_total() -> None:
    app, orders, totals = totals_app()
    sent = orders_for(60)
    async with Harness(app) as h:
        await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        assert h.pending("running_totals") == {}


async def test_a_killed_worker_and_one_cut_off_past_its_lease_commit_nothing_twice() -> None:
    app, orders, totals = totals_app(work=0.5)
    sent = orders_for(120)
    async with Harness(app) as h:
        w1, w2, w3 = await h.start("w1"), await h.start("w2"), await h.start("w3")
        await orders.send(*sent)
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 20)
        await w2.kill()
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 50)
        w3.pause()  # like SIGSTOP: its leases run out while it holds events in flight
        await h.advance(12)
        w3.resume()  # its late commits are refused by the fence
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 80)
        await w1.kill()
        await h.start("w4")
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)
        assert any(d.redelivered for d in h.deliveries("running_totals"))


async def test_a_commit_after_the_lease_was_taken_over_is_refused_and_writes_nothing() -> None:
    stolen: list[Order] = []
    harness: list[Harness] = []

    def steal(order: Order) -> None:
        # A new owner takes the partition while this iteration is in flight (the old
        # owner was paused past its lease, say): the commit that follows must be refused.
        if (order.customer, order.seq) == ("c0", 3) and not stolen:
            stolen.append(order)
            (h,) = harness
            spec = h.app.processors["running_totals"]
            number = orders.partition_for(order)
            h.broker.set_string(spec.stream.keys.lock(spec.name, number), b"thief:1", ttl=5.0)

    app, orders, totals = totals_app(hook=steal)
    sent = orders_for(36)
    async with Harness(app) as h:
        harness.append(h)
        await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        assert stolen
        spec = app.processors["running_totals"]
        assert h.broker.get_string(spec.stream.keys.fenced(spec.name)) == b"1"
        check_exactly_once(h, totals, sent)
        assert [d.redelivered for d in h.deliveries("running_totals") if d.record == stolen[0]] == [
            False,
            True,
        ]


async def test_a_failed_iterations_outputs_and_state_changes_are_discarded_under_ignore() -> None:
    app, orders, totals = totals_app(policy="ignore", fail_on={("c1", 2)})
    sent = orders_for(30)
    async with Harness(app) as h:
        await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        check_exactly_once(h, totals, sent, skipped=frozenset({("c1", 2)}))


async def test_a_dead_lettered_orders_staged_effects_are_discarded() -> None:
    app, orders, totals = totals_app(policy="ignore", fail_on={("c0", 1)}, dead_letter=True)
    sent = orders_for(24)
    async with Harness(app) as h:
        await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        check_exactly_once(h, totals, sent, skipped=frozenset({("c0", 1)}))
        (letter,) = h.dead_letters("orders.dead")
        assert letter.record == Order(customer="c0", seq=1, amount=sent[6].amount)


async def test_a_batch_commits_as_one_unit_and_survives_a_crash() -> None:
    app, orders, totals = totals_app(work=0.2, batch=5)
    sent = orders_for(90)
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await h.start("w2")
        await orders.send(*sent)
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 30)
        await w1.kill()
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)


async def test_a_new_owner_sees_exactly_the_committed_state() -> None:
    app, orders, totals = totals_app(work=1.0)
    sent = orders_for(24, customers=1)  # one customer: one partition
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await orders.send(*sent)
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 5)
        committed = h.state("running_totals")
        (number,) = committed
        outputs = committed_totals(h, totals)
        assert committed[number]["c0"] == outputs[-1].total
        await w1.kill()  # an iteration was in flight with its change staged
        await h.start("w2")
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)


async def test_a_graceful_stop_commits_the_iteration_in_flight() -> None:
    app, orders, totals = totals_app(work=1.0)
    sent = orders_for(12)
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await orders.send(*sent)
        await h.run_until(lambda: len(committed_totals(h, totals)) >= 3)
        assert await w1.stop() == 0
        done = committed_totals(h, totals)
        assert h.acknowledged("running_totals")
        acked = sum(len(ids) for ids in h.acknowledged("running_totals").values())
        assert acked == len(done)
        await h.start("w2")
        await h.run_until_idle()
        check_exactly_once(h, totals, sent)


def test_state_needs_the_effectively_once_guarantee() -> None:
    from runnel.errors import Misconfigured

    app = App(name=f"t{uuid4().hex[:8]}", redis_url="memory://x")
    orders = app.stream("orders", record=Order, partition_by="customer")
    with pytest.raises(Misconfigured, match="guarantee='effectively_once'"):

        @app.processor(orders, state=int)
        async def totals(events: Events) -> None:
            pass

    with pytest.raises(Misconfigured, match="guarantee must be one of"):

        @app.processor(orders, guarantee="exactly")  # type: ignore[arg-type]
        async def other(events: Events) -> None:
            pass


async def test_a_commit_whose_reply_was_lost_is_recognised_as_applied_when_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The backend applies a commit and the reply never comes (a connection lost): the
    # retry must find it applied, and write nothing twice.
    real = MemoryStreamLog.commit
    lost: list[Commit] = []

    async def reply_lost_once(self: MemoryStreamLog, commit: Commit) -> list[bytes] | None:
        result = await real(self, commit)
        if not lost and commit.outputs:
            lost.append(commit)
            raise BackendUnavailable("connection lost before the reply")
        return result

    # The memory backend is built inside the harness: there is no port to inject into.
    monkeypatch.setattr(MemoryStreamLog, "commit", reply_lost_once)
    app, orders, totals = totals_app()
    sent = orders_for(18)
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await orders.send(*sent)
        await h.run_until_idle()
        assert lost
        check_exactly_once(h, totals, sent)
        (executor,) = w1.worker.executors
        assert executor.commits.retried == 1
        assert executor.commits.committed == len(sent)


def test_keyed_state_reads_its_staged_changes_and_commits_them_only_when_told() -> None:
    staged: Staged[object] = Staged()
    spec = state_spec(int, JSONSerializer(), None)
    state: KeyedState[int] = KeyedState(spec, "__state:a.s.p.0", staged)
    state.load({b"ada": b"3", b"bob": b"1"})
    assert state.increment("ada", 2) == 5
    assert state.delete("bob") is True
    state["cy"] = 7
    assert state.keys() == ["ada", "cy"]
    assert dict(state.items()) == {"ada": 5, "cy": 7}
    assert state.snapshot() == {"ada": 3, "bob": 1}  # nothing committed yet
    with pytest.raises(ValueError, match="must be int"):
        state.set("dan", "many")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="non-empty strings"):
        state.get("")
    state.committed(dict(staged.state))
    staged.clear()
    assert state.snapshot() == {"ada": 5, "cy": 7}
    assert "bob" not in state


def test_increment_needs_a_numeric_state() -> None:
    spec = state_spec(Total, JSONSerializer(), None)
    state: KeyedState[Total] = KeyedState(spec, "__state:a.s.p.0", Staged())
    state.load({})
    state.set("ada", Total(customer="ada", seq=0, total=1))
    assert state["ada"] == Total(customer="ada", seq=0, total=1)
    with pytest.raises(TypeError, match="int or float"):
        state.increment("ada")


@pytest.mark.parametrize(
    ("outcome", "done", "lost", "retry"),
    [
        (CommitOutcome.COMMITTED, True, False, False),
        (CommitOutcome.APPLIED, True, False, False),
        (CommitOutcome.FENCED, False, True, False),
        (CommitOutcome.FULL, False, False, True),
        (CommitOutcome.UNAVAILABLE, False, False, True),
    ],
)
def test_the_commit_outcome_table(
    outcome: CommitOutcome, done: bool, lost: bool, retry: bool
) -> None:
    decision = on_commit(outcome)
    assert (decision.done, decision.lost, decision.retry) == (done, lost, retry)
    assert set(ON_FAILURE_STAGED.values()) == {"discarded"}


async def test_a_send_to_another_apps_backend_is_refused_not_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App(name=f"t{uuid4().hex[:8]}", redis_url="redis://127.0.0.1:1/0", **FAST)
    orders = app.stream("orders", record=Order, partition_by="customer")
    elsewhere = App(name=f"t{uuid4().hex[:8]}", redis_url=f"memory://{uuid4().hex}")
    audit = elsewhere.stream("audit", record=Order, partition_by="customer")

    @app.processor(orders, guarantee="effectively_once")
    async def forward(events: Events) -> None:
        async for order in events.records():
            await audit.send(order)

    async with Harness(app) as h:
        w1 = await h.start("w1")
        await orders.send(*orders_for(3))
        assert await w1.wait() == 1  # HALT: the worker stops, the orders stay pending
        assert any("on another backend" in r.getMessage() for r in caplog.records)
        assert sum(len(ids) for ids in h.pending("forward").values()) == 3
