"""The quickstart of the seeds, recording what the processor saw."""

from __future__ import annotations

from datetime import datetime

from runnel import App, Events, Record, Stream

from .common import Results, app_name


class Order(Record):
    order_id: int
    created_at: datetime
    amount: int


def build(name: str, redis_url: str | None = None) -> tuple[App, Stream[Order]]:
    """The seeds' app: an ``orders`` stream and a ``printer`` processor."""
    app = App(name=name, redis_url=redis_url)
    orders = app.stream("orders", record=Order, partition_by="order_id")
    results = Results(app)

    @app.processor(orders)
    async def printer(events: Events) -> None:
        async for order in events.records():
            print(order.amount)  # as in the seeds: no flush, runnel worker line-buffers
            await results.add(
                "seen",
                order_id=order.order_id,
                created_at=order.created_at.isoformat(),
                amount=order.amount,
            )

    return app, orders


app, orders = build(app_name())
