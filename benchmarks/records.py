"""The runnel Records the benchmarks send, and how to make them.

``Tick`` is a primitive record (one native stream field per record field); ``Order`` is a
nested JSON record of about 400 bytes (a customer, three line items, a timestamp); ``Blob``
is a large JSON record (1 to 4 units of payload, a unit being 1 MiB in a full run). Their
fields come from :mod:`benchmarks.models`, which the raw baseline validates against.
"""

from __future__ import annotations

from datetime import datetime, timezone

from benchmarks.models import BlobData, Customer, LineItem, OrderData, RecordKind, TickData
from runnel import Record

__all__ = [
    "MIB",
    "Blob",
    "Order",
    "RecordKind",
    "Tick",
    "blob",
    "blob_size",
    "make",
    "order",
    "record_type",
    "tick",
]

MIB = 1024 * 1024


class Tick(Record, TickData, primitive=True):
    """A primitive record: stored as the native stream fields id, account, amount, ok, sent_ns."""


class Order(Record, OrderData):
    """A nested JSON record, stored as one ``data`` field."""


class Blob(Record, BlobData):
    """A large JSON record, stored as one ``data`` field."""


_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)

_TEXT = "runnel-large-event-payload-0123456789abcdefghijklmnopqrstuvwxyz-"


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


def blob_size(i: int, unit: int = MIB) -> int:
    """The payload length of the ``i``-th large record: 1, 2, 3 or 4 units in turn."""
    return unit * (1 + i % 4)


def blob(i: int, sent_ns: int = 0, unit: int = MIB) -> Blob:
    """The ``i``-th large record (its payload :func:`blob_size` characters of text)."""
    size = blob_size(i, unit)
    payload = (_TEXT * (size // len(_TEXT) + 1))[:size]
    return Blob(id=i, payload=payload, sent_ns=sent_ns)


def make(kind: RecordKind, i: int, sent_ns: int = 0, unit: int = MIB) -> Tick | Order | Blob:
    """The ``i``-th record of ``kind`` (``unit``: a large record's payload unit)."""
    if kind == "large":
        return blob(i, sent_ns, unit)
    return tick(i, sent_ns) if kind == "primitive" else order(i, sent_ns)


def record_type(kind: RecordKind) -> type[Tick] | type[Order] | type[Blob]:
    """The Record class of ``kind``."""
    if kind == "large":
        return Blob
    return Tick if kind == "primitive" else Order
