"""A hasher supplied through the container is recorded like one given to the stream."""

from __future__ import annotations

import pytest
from dependency_injector import providers

from runnel import App, Record
from runnel.container import Container
from runnel.errors import MetadataMismatch
from runnel.settings import Settings


class Order(Record):
    customer: str


def by_length(key: object) -> int:
    return len(str(key))


async def test_an_app_whose_container_hashes_differently_cannot_share_the_stream() -> None:
    url = "memory://container-hasher"
    plain = App(name="ch", redis_url=url)
    await plain.stream("orders", record=Order, partition_by="customer").send(Order(customer="a"))

    container = Container(settings=Settings(redis_url=url))
    container.hasher.override(providers.Object(by_length))
    custom = App(name="ch", container=container)
    orders = custom.stream("orders", record=Order, partition_by="customer")
    assert orders.hasher_name.startswith("custom:")
    with pytest.raises(MetadataMismatch, match=r"hash is 'xxh64-v1' in the backend but 'custom:"):
        await orders.send(Order(customer="b"))
