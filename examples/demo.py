"""A runnel demo: orders partitioned by customer, running totals, a dead-letter stream.

Runs on the in-memory backend by default (no server needed), or on Redis when
``RUNNEL_REDIS_URL`` is set::

    make demo
    RUNNEL_REDIS_URL=redis://127.0.0.1:6379/0 make demo

It sends a few thousand orders with a progress bar, processes them with a worker in this
process, and reports throughput, events per partition, whether every customer's orders
arrived in order, and the dead letters (orders with a negative amount are rejected, each
logged in one line). ``DEMO_ORDERS`` sets how many orders it sends.

On Redis it deletes every key of its app (named ``demo-<random>``) before it exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
import uuid
from collections import Counter, defaultdict

import click

from runnel import App, Event, Events, ExceptionPolicy, Record
from runnel.domain.keys import leader_epoch_key, leader_key
from runnel.middleware import DeadLetterMiddleware
from runnel.runtime.worker import Worker

URL = os.environ.get("RUNNEL_REDIS_URL", "memory://demo")
ORDERS = int(os.environ.get("DEMO_ORDERS", "5000"))
CUSTOMERS = 200

app = App(
    name=f"demo-{uuid.uuid4().hex[:6]}",
    redis_url=URL,
    default_partition_count=8,
    default_lock_expiry=4,
    default_join_delay=0,
)


class Order(Record):
    """One order; ``seq`` numbers each customer's orders 1, 2, 3, ..."""

    customer_id: str
    seq: int
    amount: float


orders = app.stream("orders", record=Order, partition_by="customer_id")
dead_letter = DeadLetterMiddleware(source=orders)

totals: dict[str, float] = defaultdict(float)
last_seq: dict[str, int] = {}
out_of_order: list[str] = []
per_partition: Counter[int] = Counter()
dead: list[tuple[str, str]] = []
seen = 0
target = {"events": -1, "dead": -1}
done = asyncio.Event()


class NegativeAmount(ValueError):
    """An order the demo rejects on purpose; the dead-letter middleware keeps it."""


class ShortRejections(logging.Formatter):
    """One line per log record; the demo's deliberate rejections without a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and isinstance(record.exc_info[1], NegativeAmount):
            return f"[rejected] {record.getMessage()}"
        return super().format(record)


def check_done() -> None:
    if seen >= target["events"] >= 0 and len(dead) >= target["dead"] >= 0:
        done.set()


@app.processor(orders, exception_policy=ExceptionPolicy.IGNORE, middleware=[dead_letter])
async def running_totals(events: Events) -> None:
    """Keep a running total per customer; reject negative amounts."""
    global seen
    event: Event
    async for event in events:
        order: Order = event.record()
        seen += 1
        per_partition[event.partition.number] += 1
        if order.seq != last_seq.get(order.customer_id, 0) + 1:
            out_of_order.append(f"{order.customer_id}#{order.seq}")
        last_seq[order.customer_id] = order.seq
        if order.amount < 0:
            raise NegativeAmount(
                f"negative amount {order.amount} in order {order.customer_id}#{order.seq}"
            )
        totals[order.customer_id] += order.amount
        check_done()


@app.processor(dead_letter.sink)
async def rejected(events: Events) -> None:
    """Collect dead letters with their error."""
    event: Event
    async for event in events:
        dead.append((event.data[b"__error_id"].decode(), event.data[b"__error_message"].decode()))
        check_done()


def make_orders(n: int) -> list[Order]:
    rng = random.Random(7)
    counters: Counter[str] = Counter()
    batch = []
    for _ in range(n):
        customer = f"c{rng.randrange(CUSTOMERS):03d}"
        counters[customer] += 1
        amount = round(rng.uniform(1, 100), 2) if rng.random() > 0.002 else -1.0
        batch.append(Order(customer_id=customer, seq=counters[customer], amount=amount))
    return batch


def show_logs() -> logging.Handler:
    """Print runnel's warnings and errors as short lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(ShortRejections("[%(levelname)s] %(message)s"))
    logging.getLogger("runnel").addHandler(handler)
    return handler


async def delete_app_keys() -> int:
    """Delete every Redis key of this app (found with SCAN; nothing else is touched)."""
    client = app.container.redis_client()
    patterns = [f"__*:{app.name}.*", leader_key(app.name), leader_epoch_key(app.name)]
    mine: set[bytes] = set()
    for pattern in patterns:
        async for key in client.scan_iter(match=pattern, count=1000):
            # SCAN patterns are globs: keep only keys whose name is exactly this app's.
            _, _, rest = key.decode().partition(":")
            if rest == app.name or rest.startswith(f"{app.name}."):
                mine.add(key)
    keys = sorted(mine)
    for i in range(0, len(keys), 500):
        await client.unlink(*keys[i : i + 500])
    return len(keys)


async def main() -> int:
    handler = show_logs()
    try:
        return await demo()
    finally:
        # Even when the demo fails: a run leaves nothing behind on a shared Redis.
        try:
            if app.container.kind() == "redis":
                click.echo(f"deleted the {await delete_app_keys()} Redis keys of app {app.name}")
        finally:
            await app.close()
            logging.getLogger("runnel").removeHandler(handler)


async def demo() -> int:
    data = make_orders(ORDERS)
    expected_dead = sum(1 for o in data if o.amount < 0)
    where = app.settings.redacted_url()
    click.echo(
        f"runnel demo: {len(data)} orders from {CUSTOMERS} customers on {where} (app {app.name})"
    )
    worker = Worker(app.plan(), install_signals=False)
    run = asyncio.create_task(worker.run())
    try:
        await worker.started.wait()
        started = time.perf_counter()
        with click.progressbar(length=len(data), label="sending", file=sys.stderr) as bar:
            for i in range(0, len(data), 500):
                chunk = data[i : i + 500]
                await orders.send(*chunk)
                bar.update(len(chunk))
        target.update(events=len(data), dead=expected_dead)
        check_done()
        try:
            await asyncio.wait_for(done.wait(), timeout=120)
        except asyncio.TimeoutError:
            click.echo("timed out waiting for the worker", err=True)
        elapsed = time.perf_counter() - started
    finally:
        worker.request_stop()
        code = await run
    click.echo(
        f"processed {seen} events in {elapsed:.2f}s ({seen / elapsed:,.0f} events/s, send included)"
    )
    click.echo(
        "events per partition: " + ", ".join(f"p{p}={n}" for p, n in sorted(per_partition.items()))
    )
    click.echo(
        "per-customer order: "
        + (
            "verified, every customer's orders arrived in sequence"
            if not out_of_order
            else f"VIOLATED: {out_of_order[:5]}"
        )
    )
    click.echo(f"dead letters: {len(dead)} (expected {expected_dead})")
    for entry_id, message in dead[:5]:
        click.echo(f"  {entry_id}: {message}")
    top = sorted(totals.items(), key=lambda kv: -kv[1])[:3]
    click.echo("top customers: " + ", ".join(f"{c}={t:,.2f}" for c, t in top))
    ok = seen == len(data) and not out_of_order and len(dead) == expected_dead and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
