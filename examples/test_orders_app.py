"""Tests of py in simulated time, with no Redis (docs/testing.md explains them)."""

from __future__ import annotations

import pytest
from orders_app import (
    Order,
    app,
    dead_letters,
    minute_report,
    orders,
    reports,
    totals,
    warehouse,
)

from runnel.testing import KILLED, HarnessFactory

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def empty_tables() -> None:
    totals.clear()
    warehouse.clear()
    reports.clear()


async def test_totals_add_up_per_customer(runnel_harness: HarnessFactory) -> None:
    async with runnel_harness(app) as h:
        await h.start("w1")
        await orders.send(
            Order(customer="ada", seq=1, amount=10.0),
            Order(customer="bob", seq=1, amount=4.5),
            Order(customer="ada", seq=2, amount=2.5),
        )
        await h.run_until_idle()
        assert h.pending("running_totals") == {}
        ada = orders.partition_for(Order(customer="ada", seq=0, amount=0))
        assert [o.seq for o in h.processed("running_totals")[ada] if o.customer == "ada"] == [1, 2]
    assert totals == {"ada": 12.5, "bob": 4.5}


async def test_the_warehouse_loads_a_batch_when_its_window_closes(
    runnel_harness: HarnessFactory,
) -> None:
    async with runnel_harness(app) as h:
        await h.start("w1")
        await orders.send(*[Order(customer="ada", seq=n, amount=1.0) for n in (1, 2, 3)])
        await h.advance(4.9)
        assert warehouse == []  # the 5-second window is still open
        await h.advance(0.1)
        assert warehouse == [["ada#1", "ada#2", "ada#3"]]


async def test_a_full_batch_does_not_wait_for_its_window(runnel_harness: HarnessFactory) -> None:
    async with runnel_harness(app) as h:
        await h.start("w1")
        await orders.send(*[Order(customer="ada", seq=n, amount=1.0) for n in range(250)])
        await h.advance(0)
        assert [len(batch) for batch in warehouse] == [100, 100]
        await h.run_until_idle()
        assert [len(batch) for batch in warehouse] == [100, 100, 50]


async def test_the_report_publishes_the_totals_every_minute(
    runnel_harness: HarnessFactory,
) -> None:
    async with runnel_harness(app) as h:
        await h.start("w1")
        await orders.send(Order(customer="ada", seq=1, amount=10.0))
        await h.run_until_idle()
        run = await h.advance_to_next_fire(minute_report)
        assert run.started_at == 60.0  # one interval after the worker started, at 0.0
        assert reports == [{"ada": 10.0}]


async def test_a_negative_amount_goes_to_the_dead_letter_stream(
    runnel_harness: HarnessFactory,
) -> None:
    async with runnel_harness(app) as h:
        await h.start("w1")
        await orders.send(
            Order(customer="ada", seq=1, amount=10.0),
            Order(customer="ada", seq=2, amount=-3.0),
            Order(customer="ada", seq=3, amount=5.0),
        )
        await h.run_until_idle()
        (letter,) = h.dead_letters(dead_letters)
        assert letter.record == Order(customer="ada", seq=2, amount=-3.0)
        assert letter.error_type == "ValueError"
        assert letter.error_message == "negative amount in order ada#2"
        assert h.pending("running_totals") == {}  # IGNORE: acknowledged, and processing went on
    assert totals == {"ada": 15.0}


async def test_a_dying_workers_partitions_move_and_its_orders_are_redelivered(
    runnel_harness: HarnessFactory,
) -> None:
    sent = [Order(customer=f"c{n % 10}", seq=n // 10 + 1, amount=1.0) for n in range(100)]
    async with runnel_harness(app) as h:
        await h.start("w1")
        w2 = await h.start("w2")
        assert h.owners("running_totals") == {0: "w1", 1: "w1", 2: "w2", 3: "w2"}
        await orders.send(*sent)
        await h.run_until(lambda: len(h.deliveries("running_totals", worker="w2")) >= 10)
        moving = w2.partitions("running_totals")
        unacknowledged = {
            entry for n, ids in h.pending("running_totals").items() if n in moving for entry in ids
        }
        await w2.kill()
        await h.run_until_idle()
        assert h.owners("running_totals") == {0: "w1", 1: "w1", 2: "w1", 3: "w1"}
        again = h.deliveries("running_totals", worker="w1")
        assert unacknowledged <= {d.entry_id for d in again if d.redelivered}
        firsts = h.deliveries("running_totals", first_only=True)
        assert len(firsts) == len(sent)  # nothing was lost
        for customer in {order.customer for order in sent}:
            seqs = [d.record.seq for d in firsts if d.record.customer == customer]
            assert seqs == sorted(seqs)  # and each customer's orders came in order
        assert h.exit_codes() == {"w1": None, "w2": KILLED}
