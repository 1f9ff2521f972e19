"""Idempotent sends: ``Stream.send(idempotency_key=...)``, ``runnel.sending`` and the CLI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runnel import App, Record, Stream
from runnel.sending import prepare_lines, send_prepared
from tests.kit import unique


class Payment(Record):
    """A payment of one account."""

    account: str
    cents: int


def payments_app(**settings: Any) -> tuple[App, Stream[Payment]]:
    app = App(name=unique(), redis_url=f"memory://{unique()}", **settings)
    return app, app.stream("payments", record=Payment, partition_by="account", partition_count=2)


def stored(stream: Stream[Payment]) -> list[Payment]:
    async def read() -> list[Payment]:
        log = stream.app.backend.log
        return [
            stream.codec.decode(e.fields)
            for n in range(stream.partition_count)
            for e in await log.range(stream.keys.stream(n))
        ]

    return asyncio.run(read())


def test_a_send_repeated_with_its_keys_adds_nothing_and_returns_the_first_ids() -> None:
    _, payments = payments_app()
    batch = [Payment(account="a", cents=1), Payment(account="b", cents=2)]
    first = asyncio.run(payments.send(*batch, idempotency_key="job-7"))
    again = asyncio.run(payments.send(*batch, idempotency_key="job-7"))
    assert again == first
    assert len(stored(payments)) == 2
    other = asyncio.run(payments.send(*batch, idempotency_key="job-8"))
    assert set(other).isdisjoint(first)
    assert len(stored(payments)) == 4


def test_per_record_keys_skip_only_the_records_already_sent() -> None:
    _, payments = payments_app()
    (first,) = asyncio.run(payments.send(Payment(account="a", cents=1), idempotency_key=["p1"]))
    ids = asyncio.run(
        payments.send(
            Payment(account="a", cents=1),
            Payment(account="a", cents=5),
            idempotency_key=["p1", "p2"],
        )
    )
    assert ids[0] == first
    assert [p.cents for p in stored(payments)] == [1, 5]


def test_a_key_is_forgotten_after_the_idempotency_window() -> None:
    _, payments = payments_app(idempotency_window=0.05)
    payment = Payment(account="a", cents=1)
    asyncio.run(payments.send(payment, idempotency_key="k"))

    async def later() -> None:
        await asyncio.sleep(0.1)  # the memory broker runs on the system clock here
        await payments.send(payment, idempotency_key="k")

    asyncio.run(later())
    assert len(stored(payments)) == 2


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ("", "must not be empty"),
        (["only-one"], "1 key(s) for 2 record(s)"),
        (["x", ""], "non-empty strings"),
    ],
)
def test_bad_idempotency_keys_are_refused_and_nothing_is_sent(
    keys: str | list[str], message: str
) -> None:
    _, payments = payments_app()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(
            payments.send(
                Payment(account="a", cents=1), Payment(account="b", cents=2), idempotency_key=keys
            )
        )
    assert stored(payments) == []


def test_a_file_sent_again_with_the_same_key_sends_only_what_was_missing() -> None:
    _, payments = payments_app()
    lines = [f'{{"account": "a{n % 3}", "cents": {n}}}'.encode() for n in range(10)]
    events, errors = prepare_lines(payments, lines)
    assert errors == []
    # The first attempt died after its first chunk of 4; the whole file is sent again.
    asyncio.run(send_prepared(payments, events[:4], chunk_size=4, idempotency_key="f"))
    asyncio.run(send_prepared(payments, events, chunk_size=4, idempotency_key="f"))
    assert sorted(p.cents for p in stored(payments)) == list(range(10))
