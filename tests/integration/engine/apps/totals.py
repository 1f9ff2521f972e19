"""Orders -> per-customer totals in keyed state -> a stream of updated totals, effectively once.

Knobs: ``ENGINE_TEST_DELAY`` (seconds of awaited work per order, between staging the output
and committing it).
"""

from __future__ import annotations

import asyncio

from runnel import App, Events, Record, Stream

from .common import app_name, env_float

PARTITIONS = 8


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


def build(
    name: str, redis_url: str | None = None, delay: float = 0.0
) -> tuple[App, Stream[Order], Stream[Total]]:
    """The pipeline: processor ``totals`` keeps each customer's total in its state and
    sends the updated total on every order."""
    app = App(name=name, redis_url=redis_url)
    orders = app.stream("orders", record=Order, partition_by="customer", partition_count=PARTITIONS)
    totals = app.stream("totals", record=Total, partition_by="customer", partition_count=4)

    @app.processor(orders, guarantee="effectively_once", state=int)
    async def running_totals(events: Events) -> None:
        async for order in events.records():
            total = events.state.increment(order.customer, order.amount)
            await totals.send(Total(customer=order.customer, seq=order.seq, total=total))
            if delay:
                await asyncio.sleep(delay)

    return app, orders, totals


app, orders, totals = build(app_name(), delay=env_float("ENGINE_TEST_DELAY", 0.0))
running_totals = app.processors["running_totals"].func
"""The processor function, for commands that name it (``runnel state ...:running_totals``)."""
