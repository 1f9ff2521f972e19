"""runnel.sending, the Python API behind ``runnel send`` and ``runnel sendmany``."""

from __future__ import annotations

from uuid import uuid4

import pytest

from runnel import App, Events, Record, Stream
from runnel.errors import BackpressureError
from runnel.sending import InvalidInput, SendFailed, prepare, prepare_lines, send_prepared


class Click(Record):
    user: str
    n: int


def capped_stream() -> Stream[Click]:
    name = f"t{uuid4().hex[:8]}"
    app = App(name=name, redis_url=f"memory://{name}")
    clicks = app.stream(
        "clicks", record=Click, partition_by="user", partition_count=1, partition_size=3
    )

    @app.processor(clicks)
    async def count(events: Events) -> None: ...

    return clicks


def test_an_input_is_routed_and_encoded_exactly_as_stream_send_would() -> None:
    clicks = capped_stream()
    prepared = prepare(clicks, '{"user": "ada", "n": 1}')

    (expected,) = clicks.encode_batch([Click(user="ada", n=1)])
    assert prepared.append == expected
    assert (prepared.line, prepared.partition) == (1, 0)


def test_every_bad_line_is_reported_with_its_number_and_blank_lines_are_skipped() -> None:
    clicks = capped_stream()
    lines = [b'{"user": "a", "n": 1}', b"   ", b'{"user": "b"}', b"\xff", b"[]"]

    events, errors = prepare_lines(clicks, lines)

    assert [e.line for e in events] == [1]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5"]
    assert "n: Field required" in errors[0]
    assert "not valid UTF-8 (byte 0xff at column 1)" in errors[1]
    with pytest.raises(InvalidInput, match="user: Field required"):
        prepare(clicks, "{}")


async def test_a_refused_chunk_says_how_many_events_were_sent_before_it() -> None:
    clicks = capped_stream()
    events, _ = prepare_lines(clicks, [f'{{"user": "a", "n": {n}}}'.encode() for n in range(5)])
    chunks: list[int] = []

    with pytest.raises(SendFailed) as caught:
        await send_prepared(clicks, events, chunk_size=2, on_chunk=chunks.append)

    assert chunks == [2]
    assert caught.value.sent == 2
    assert isinstance(caught.value.cause, BackpressureError)
    assert "resume from line 3 instead" in str(caught.value)


async def test_a_single_refused_event_raises_the_backends_own_error() -> None:
    clicks = capped_stream()
    events, _ = prepare_lines(clicks, [f'{{"user": "a", "n": {n}}}'.encode() for n in range(4)])
    await send_prepared(clicks, events[:3])

    with pytest.raises(BackpressureError):
        await send_prepared(clicks, events[3:])
