"""Reply parsing and error translation of the Redis adapters (no server needed)."""

from __future__ import annotations

import pytest
from redis import exceptions as rex

from runnel.adapters.redis import _replies
from runnel.adapters.redis._errors import translate, translated
from runnel.domain.model import Entry
from runnel.errors import (
    BackendProtocolError,
    BackendUnavailable,
    BackpressureError,
    Fenced,
)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (rex.ConnectionError("Connection refused"), BackendUnavailable),
        (rex.TimeoutError("Timeout reading"), BackendUnavailable),
        (rex.BusyLoadingError("loading the dataset"), BackendUnavailable),
        (rex.ReadOnlyError("You can't write against a read only replica."), BackendUnavailable),
        (ConnectionResetError("reset by peer"), BackendUnavailable),
        (rex.ResponseError("NOGROUP No such key 's'"), BackendProtocolError),
        (rex.ResponseError("WRONGTYPE Operation against a key"), BackendProtocolError),
        (rex.DataError("Invalid input of type: 'dict'"), BackendProtocolError),
        (rex.ResponseError("FENCED __lock:a.s.p.0"), Fenced),
        (rex.ResponseError("BACKPRESSURE __strm:a.s.0 5-0 g"), BackpressureError),
    ],
)
def test_redis_errors_become_runnel_errors_with_the_redis_message(
    raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught, translated():
        raise raised
    assert caught.value.__cause__ is raised
    assert str(raised) in str(caught.value)


def test_backpressure_message_names_stream_entry_and_group() -> None:
    error = translate(rex.ResponseError("BACKPRESSURE {t}:s 17-3 audit log"))
    assert isinstance(error, BackpressureError)
    assert "stream {t}:s" in str(error)
    assert "entry 17-3" in str(error)
    assert "group 'audit log'" in str(error)
    assert "nothing was written" in str(error)


def test_fenced_message_names_the_lock() -> None:
    error = translate(rex.ResponseError("FENCED __lock:app.orders.printer.7"))
    assert isinstance(error, Fenced)
    assert "lease __lock:app.orders.printer.7 is no longer held" in str(error)


def test_history_entries_take_delivery_counts_by_id_and_trimmed_ones_are_empty() -> None:
    raw = [
        [[b"1-0", [b"a", b"1"]], [b"2-0", None]],
        [[b"1-0", b"p0", 5, 4], [b"2-0", b"p0", 5, 2]],
    ]
    assert _replies.read_result(raw) == [Entry(b"1-0", {b"a": b"1"}, 4), Entry(b"2-0", {}, 2)]
    assert _replies.read_result([[]]) == []


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        [[[b"1-0"]]],
        [[[b"1-0", [b"odd"]]]],
        [[[b"1-0", [b"a", b"1"]]], [[b"1-0", b"c", 1]]],
        [[[1, [b"a", b"1"]]]],
    ],
)
def test_unexpected_read_replies_are_protocol_errors(raw: object) -> None:
    with pytest.raises(BackendProtocolError, match="expected"):
        _replies.read_result(raw)


def test_counts_of_the_wrong_length_are_protocol_errors() -> None:
    with pytest.raises(BackendProtocolError, match="2 entry ids"):
        _replies.ids([b"1-0"], 2)
    with pytest.raises(BackendProtocolError, match="3 integers"):
        _replies.flags([1, 0], 3)
    with pytest.raises(BackendProtocolError, match="an integer"):
        _replies.as_int(True)


def test_xread_replies_in_either_shape_name_the_keys_with_data() -> None:
    assert _replies.woken_keys(None) == set()
    assert _replies.woken_keys([[b"a", [(b"1-0", {})]], [b"b", []]]) == {"a"}
    assert _replies.woken_keys({b"a": [[(b"1-0", {})]]}) == {"a"}
