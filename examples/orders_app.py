"""A small shop: running totals per customer, a warehouse loader, a report every minute.

``examples/test_orders_app.py`` tests it with :mod:`runnel.testing`, in simulated time and
with no Redis; ``docs/testing.md`` walks through both files.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from runnel import App, Events, ExceptionPolicy, Record
from runnel.middleware import DeadLetterMiddleware

app = App(name="shop", redis_url="redis://127.0.0.1:6379/0", default_partition_count=4)


class Order(Record):
    """One order; ``seq`` numbers each customer's orders 1, 2, 3, ..."""

    customer: str
    seq: int
    amount: float


orders = app.stream("orders", record=Order, partition_by="customer")
dead_letters = DeadLetterMiddleware(source=orders)

totals: dict[str, float] = defaultdict(float)
"""The running total of each customer (a database table, in a real app)."""
warehouse: list[list[str]] = []
"""The batches loaded into the warehouse, as lists of ``customer#seq``."""
reports: list[dict[str, float]] = []
"""The reports published every minute: a copy of the totals at the time."""


@app.processor(orders, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead_letters])
async def running_totals(events: Events) -> None:
    """Add each order to its customer's total; reject negative amounts."""
    async for order in events.records():
        if order.amount < 0:
            raise ValueError(f"negative amount in order {order.customer}#{order.seq}")
        await asyncio.sleep(0.5)  # ask the fraud service (half a second)
        totals[order.customer] += order.amount


@app.processor(orders)
async def load_warehouse(events: Events) -> None:
    """Load orders into the warehouse in batches of up to 100, at least every 5 seconds."""
    async for batch in events.take(100, within=5).records():
        warehouse.append([f"{order.customer}#{order.seq}" for order in batch])


@app.timer(interval=60)
async def minute_report() -> None:
    """Publish a copy of the totals every minute."""
    reports.append(dict(totals))
