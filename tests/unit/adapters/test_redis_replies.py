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
    GroupMissing,
)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (rex.ConnectionError("Connection refused"), BackendUnavailable),
        (rex.TimeoutError("Timeout reading"), BackendUnavailable),
        (rex.BusyLoadingError("loading the dataset"), BackendUnavailable),
        (rex.ReadOnlyError("You can't write against a read only replica."), BackendUnavailable),
        (ConnectionResetError("reset by peer"), BackendUnavailable),
        (rex.ResponseError("NOGROUP No such key 's'"), GroupMissing),
        (rex.ResponseError("WRONGTYPE Operation against a key"), BackendProtocolError),
        (rex.DataError("Invalid input of type: 'dict'"), BackendProtocolError),
        (rex.ResponseError("FENCED __lock:a.s.p.0"), Fenced),
        (rex.ResponseError("BACKPRESSURE __strm:a.s.0 5-0 g"), BackpressureError),
        (rex.ClusterError("TTL exhausted."), BackendUnavailable),  # redirected every time
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
        [],
        [
            [
                1,
                [[b"1-0", [b"a", b"1"]], [b"2-0", None]],
                [[b"1-0", b"p0", 5, 4], [b"2-0", b"p0", 5, 2]],
            ],
            [1, []],
        ],
    ]
    acked, (history, empty) = _replies.exchange_slots(raw, [], ["l0", "l1"])
    assert acked == []
    assert history == [Entry(b"1-0", {b"a": b"1"}, 4), Entry(b"2-0", {}, 2)]
    assert empty == []


def test_exchange_slots_carry_counts_refusals_and_errors_each_in_its_place() -> None:
    raw = [[[1, 3], [0], [-1, b"NOGROUP g"]], [[0], [1, [[b"9-0", [b"k", b"v"]]]]]]
    acked, read = _replies.exchange_slots(raw, ["a0", "a1", "a2"], ["r0", "r1"])
    assert acked[0] == 3
    assert isinstance(acked[1], Fenced)
    assert "a1" in str(acked[1])
    assert isinstance(acked[2], GroupMissing)
    assert "NOGROUP g" in str(acked[2])
    assert isinstance(read[0], Fenced)
    assert read[1] == [Entry(b"9-0", {b"k": b"v"})]


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        [[], []],
        [[], [[1]]],
        [[], [[1, [[b"1-0"]]]]],
        [[], [[1, [[b"1-0", [b"odd"]]]]]],
        [[], [[1, [[b"1-0", b"not a list"]]]]],
        [[], [[1, [[b"1-0", [b"a", b"1"]]], [[b"1-0", b"c", 1]]]]],
        [[], [[1, [[1, [b"a", b"1"]]]]]],
        [[], [[7]]],
    ],
)
def test_unexpected_exchange_replies_are_protocol_errors(raw: object) -> None:
    with pytest.raises(BackendProtocolError, match="expected"):
        _replies.exchange_slots(raw, [], ["r0"])


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
