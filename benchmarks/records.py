"""The runnel Records the benchmarks send, and how to make them.

``Tick`` is a primitive record (one native stream field per record field); ``Order`` is a
nested JSON record of about 400 bytes (a customer, three line items, a timestamp). Their
fields come from :mod:`benchmarks.models`, which the raw baseline validates against.
"""

from __future__ import annotations

from datetime import datetime, timezone

from benchmarks.models import Customer, LineItem, OrderData, RecordKind, TickData
from runnel import Record

__all__ = ["Order", "RecordKind", "Tick", "make", "order", "record_type", "tick"]


class Tick(Record, TickData, primitive=True):
    """A primitive record: stored as the native stream fields id, account, amount, ok, sent_ns."""


class Order(Record, OrderData):
    """A nested JSON record, stored as one ``data`` field."""


_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def tick(i: int, sent_ns: int = 0) -> Tick:
    """The ``i``-th primitive record."""
    return Tick(id=i, account=f"acct-{i % 997}", amount=i * 0.25, ok=i % 3 != 0, sent_ns=sent_ns)


def order(i: int, sent_ns: int = 0) -> Order:
    """The ``i``-th nested record."""
    return Order(
        id=i,
        customer=Customer(
            id=i % 5000,
            name=f"Customer {i % 5000}",
            email=f"customer{i % 5000}@example.com",
            tags=["retail", "priority"] if i % 2 else ["retail"],
        ),
        items=[
            LineItem(sku=f"SKU-{(i + k) % 1000:04d}", quantity=1 + k, unit_price=9.99 + k)
            for k in range(3)
        ],
        created_at=_EPOCH,
        currency="EUR",
        note=None if i % 4 else "leave at the door",
        sent_ns=sent_ns,
    )


def make(kind: RecordKind, i: int, sent_ns: int = 0) -> Tick | Order:
    """The ``i``-th record of ``kind``."""
    return tick(i, sent_ns) if kind == "primitive" else order(i, sent_ns)


def record_type(kind: RecordKind) -> type[Tick] | type[Order]:
    """The Record class of ``kind``."""
    return Tick if kind == "primitive" else Order
