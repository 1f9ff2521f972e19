"""The benchmark's data as plain pydantic models, without runnel.

The raw baseline imports only these (so its process loads no runnel code); the runnel
Records of :mod:`benchmarks.records` inherit their fields, so both validate exactly the
same schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

RecordKind = Literal["primitive", "nested", "large"]
KINDS: tuple[RecordKind, ...] = ("primitive", "nested", "large")


class TickData(BaseModel):
    """Five flat fields: stored by runnel as native stream fields."""

    id: int
    account: str
    amount: float
    ok: bool
    sent_ns: int


class Customer(BaseModel):
    """Who placed an order."""

    id: int
    name: str
    email: str
    tags: list[str]


class LineItem(BaseModel):
    """One line of an order."""

    sku: str
    quantity: int
    unit_price: float


class OrderData(BaseModel):
    """A nested record of about 400 bytes of JSON."""

    id: int
    customer: Customer
    items: list[LineItem]
    created_at: datetime
    currency: str
    note: str | None = None
    sent_ns: int = 0


class BlobData(BaseModel):
    """A large record: an id and a text payload of a megabyte or more (stored as JSON)."""

    id: int
    payload: str
    sent_ns: int = 0
