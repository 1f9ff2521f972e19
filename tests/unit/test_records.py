"""Records through RecordCodec: every serializer/compressor pair, primitive layouts, errors.

This module uses ``from __future__ import annotations`` on purpose: every annotation below
is a string, which is how the primitive-record check has to see user classes too.
"""

from __future__ import annotations

import json
import math
import types
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runnel import Record, Serializer
from runnel.adapters.compressors import GzipCompressor, LZ4Compressor
from runnel.adapters.serializers import JSONSerializer, OrjsonSerializer
from runnel.codec import RecordCodec
from runnel.errors import CodecMismatch, DecodeError
from runnel.interfaces import Compressor
from tests.kit import ReversedJSON

# --------------------------------------------------------------------------- records


class Item(Record):
    sku: str
    quantity: int
    blob: bytes


class Shipment(Record):
    carrier: str
    shipped_at: datetime


class Order(Record):
    order_id: int
    created_at: datetime
    customer: str
    items: list[Item]
    shipments: list[Shipment]
    notes: list[str]
    amount: float
    signature: bytes
    totals: dict[str, list[int]]


class Flag(Record, primitive=True):
    user_id: int
    active: bool
    score: float
    name: str
    raw: bytes


PARIS = ZoneInfo("Europe/Paris")
INDIA = timezone(timedelta(hours=5, minutes=30))
NON_UTF8 = b"\x00\xff\xfe\x80\xc3(binary)"
UNICODE = "Zoë 👩‍💻 日本語 \u200b ☃ 𝄞"


def an_order() -> Order:
    return Order(
        order_id=12345678901234,
        created_at=datetime(2024, 3, 31, 1, 59, 59, 123456, tzinfo=PARIS),
        customer=UNICODE,
        items=[
            Item(sku="A-1", quantity=2, blob=NON_UTF8),
            Item(sku="ß-2", quantity=0, blob=b""),
        ],
        shipments=[
            Shipment(carrier="DHL", shipped_at=datetime(2024, 4, 1, 9, 0, tzinfo=timezone.utc)),
            Shipment(carrier="ポスト", shipped_at=datetime(2024, 4, 2, 18, 30, tzinfo=INDIA)),
        ],
        notes=["", "line\nbreak", '"quoted" \\ back'],
        amount=-0.0,
        signature=bytes(range(256)),
        totals={"ünits": [1, -2, 2**62]},
    )


SERIALIZERS: dict[str, type[Serializer]] = {
    "json": JSONSerializer,
    "orjson": OrjsonSerializer,
    "custom": ReversedJSON,
}
COMPRESSORS: dict[str, type[Compressor] | None] = {
    "plain": None,
    "gzip": GzipCompressor,
    "lz4": LZ4Compressor,
}


def codec_for(serializer: str, compressor: str) -> RecordCodec[Order]:
    compressor_type = COMPRESSORS[compressor]
    return RecordCodec(
        Order,
        SERIALIZERS[serializer](),
        compressor_type() if compressor_type is not None else None,
    )


# --------------------------------------------------------------------------- JSON records


@pytest.mark.parametrize("compressor", list(COMPRESSORS))
@pytest.mark.parametrize("serializer", list(SERIALIZERS))
def test_a_nested_record_round_trips_through_every_serializer_and_compressor(
    serializer: str, compressor: str
) -> None:
    codec = codec_for(serializer, compressor)
    order = an_order()

    stored = codec.encode(order)
    decoded = codec.decode(stored)

    assert list(stored) == [b"data"]
    assert decoded == order
    assert decoded.items[0].blob == NON_UTF8
    assert decoded.signature == bytes(range(256))
    assert decoded.customer == UNICODE
    assert decoded.created_at.utcoffset() == timedelta(hours=1)  # a second before DST
    assert decoded.shipments[1].shipped_at.utcoffset() == timedelta(hours=5, minutes=30)
    assert math.copysign(1.0, decoded.amount) == -1.0
    assert decoded.totals == {"ünits": [1, -2, 2**62]}


@pytest.mark.parametrize(
    ("serializer", "compressor", "name"),
    [
        ("json", "plain", "json"),
        ("orjson", "plain", "json"),
        ("json", "gzip", "json+gzip"),
        ("orjson", "lz4", "json+lz4"),
        ("custom", "plain", "reversed-json"),
        ("custom", "gzip", "reversed-json+gzip"),
    ],
)
def test_the_codec_name_combines_serializer_and_compressor(
    serializer: str, compressor: str, name: str
) -> None:
    assert codec_for(serializer, compressor).name == name


def test_plain_json_is_stored_as_bare_utf8_json_any_tool_can_read() -> None:
    stored = codec_for("json", "plain").encode(an_order())

    document = json.loads(stored[b"data"].decode("utf-8"))

    assert document["customer"] == UNICODE
    assert document["items"][0]["sku"] == "A-1"


def test_json_and_orjson_read_each_others_entries() -> None:
    order = an_order()

    by_orjson = codec_for("orjson", "gzip").encode(order)
    by_stdlib = codec_for("json", "gzip").encode(order)

    assert codec_for("json", "gzip").decode(by_orjson) == order
    assert codec_for("orjson", "gzip").decode(by_stdlib) == order


def test_a_custom_serializer_really_writes_its_own_format() -> None:
    stored = codec_for("custom", "plain").encode(an_order())[b"data"]

    header, _, payload = stored.partition(b"\n")

    assert header == b"#!reversed-json"
    assert payload.endswith(b"{")  # the JSON object, reversed


# --------------------------------------------------------------------------- primitive records


def test_a_primitive_record_is_stored_as_one_native_field_per_record_field() -> None:
    codec = RecordCodec(Flag, JSONSerializer(), None)
    flag = Flag(user_id=-42, active=True, score=0.1, name=UNICODE, raw=NON_UTF8)

    stored = codec.encode(flag)

    assert stored == {
        b"user_id": b"-42",
        b"active": b"1",
        b"score": b"0.1",
        b"name": UNICODE.encode("utf-8"),
        b"raw": NON_UTF8,
    }
    assert codec.decode(stored) == flag
    assert codec.name == "primitive"


@pytest.mark.parametrize(("value", "stored"), [(True, b"1"), (False, b"0")])
def test_a_primitive_bool_is_stored_as_1_or_0(value: bool, stored: bytes) -> None:
    codec = RecordCodec(Flag, JSONSerializer(), None)
    flag = Flag(user_id=1, active=value, score=0.0, name="", raw=b"")

    assert codec.encode(flag)[b"active"] == stored
    assert codec.decode(codec.encode(flag)).active is value


@pytest.mark.parametrize(
    "value", [0.1, 1e300, -0.0, 0.0, 5e-324, 1 / 3, -2.5e-308, 2.0**53 + 2, math.inf]
)
def test_a_primitive_float_round_trips_exactly(value: float) -> None:
    codec = RecordCodec(Flag, JSONSerializer(), None)

    decoded = codec.decode(
        codec.encode(Flag(user_id=1, active=False, score=value, name="", raw=b""))
    )

    assert decoded.score == value
    assert math.copysign(1.0, decoded.score) == math.copysign(1.0, value)
    assert decoded.score.hex() == value.hex()


@given(
    score=st.floats(allow_nan=False),
    user_id=st.integers(min_value=-(2**100), max_value=2**100),
    name=st.text(),
    raw=st.binary(),
)
def test_any_primitive_values_round_trip(score: float, user_id: int, name: str, raw: bytes) -> None:
    codec = RecordCodec(Flag, JSONSerializer(), None)
    flag = Flag(user_id=user_id, active=True, score=score, name=name, raw=raw)

    decoded = codec.decode(codec.encode(flag))

    assert decoded == flag
    assert decoded.score.hex() == score.hex()


def test_a_primitive_record_rejects_a_list_field_naming_it() -> None:
    with pytest.raises(TypeError, match=r"^Tagged\.tags: .*only allows int, float, bool, str"):

        class Tagged(Record, primitive=True):
            user_id: int
            tags: list[str]


def test_a_primitive_record_rejects_a_bad_inherited_field_naming_it() -> None:
    class Base(Record):
        history: dict[str, int]

    with pytest.raises(TypeError, match=r"^Child\.history: .*not dict"):

        class Child(Base, primitive=True):
            user_id: int


def test_a_primitive_record_checks_string_annotations() -> None:
    # Every annotation in this module is a string (``from __future__ import annotations``);
    # this one is quoted as well.
    with pytest.raises(TypeError, match=r"^Stamped\.when: .*not datetime"):

        class Stamped(Record, primitive=True):
            user_id: "int"  # noqa: UP037 - the quoted form is what is under test
            when: "datetime"  # noqa: UP037


@pytest.mark.parametrize("annotation", ["int | None", "Item", "datetime", "tuple[int, int]"])
def test_a_primitive_record_rejects_non_primitive_types(annotation: str) -> None:
    def body(namespace: dict[str, Any]) -> None:
        namespace["__module__"] = __name__
        namespace["__annotations__"] = {"value": annotation}

    with pytest.raises(TypeError, match=r"^Bad\.value: a primitive record only allows"):
        types.new_class("Bad", (Record,), {"primitive": True}, body)


def test_a_subclass_of_a_primitive_record_is_checked_too() -> None:
    with pytest.raises(TypeError, match=r"^MoreFlag\.extra: "):

        class MoreFlag(Flag):
            extra: list[int]


def test_a_non_primitive_subclass_may_add_nested_fields() -> None:
    class Rich(Flag, primitive=False):
        items: list[Item]

    rich = Rich(user_id=1, active=True, score=1.5, name="n", raw=b"r", items=[])
    codec = RecordCodec(Rich, JSONSerializer(), None)

    assert list(codec.encode(rich)) == [b"data"]
    assert codec.decode(codec.encode(rich)) == rich


def test_a_bad_primitive_value_is_a_decode_error_naming_the_field() -> None:
    codec = RecordCodec(Flag, JSONSerializer(), None)
    stored = codec.encode(Flag(user_id=1, active=True, score=1.0, name="", raw=b""))

    with pytest.raises(DecodeError, match=r"field 'active' of Flag: .*b'yes'"):
        codec.decode({**stored, b"active": b"yes"})
    with pytest.raises(DecodeError, match=r"field 'score' of Flag: .*as float"):
        codec.decode({**stored, b"score": b"zero"})
    with pytest.raises(DecodeError, match=r"field 'name' of Flag: .*as str"):
        codec.decode({**stored, b"name": NON_UTF8})


def test_a_missing_primitive_field_is_a_decode_error_naming_it() -> None:
    codec = RecordCodec(Flag, JSONSerializer(), None)
    stored = codec.encode(Flag(user_id=1, active=True, score=1.0, name="", raw=b""))
    del stored[b"score"]

    with pytest.raises(DecodeError, match=r"does not match Flag: score: Field required"):
        codec.decode(stored)


# --------------------------------------------------------------------------- codec mismatch


def test_reading_gzip_entries_without_the_compressor_names_both_codecs() -> None:
    stored = codec_for("json", "gzip").encode(an_order())

    with pytest.raises(CodecMismatch) as caught:
        codec_for("json", "plain").decode(stored)

    assert "'json+gzip'" in str(caught.value)
    assert "reads 'json'" in str(caught.value)


def test_reading_plain_entries_with_a_compressor_names_both_codecs() -> None:
    stored = codec_for("json", "plain").encode(an_order())

    with pytest.raises(CodecMismatch, match=r"written as 'json' but this stream reads 'json\+lz4'"):
        codec_for("json", "lz4").decode(stored)


def test_reading_a_custom_serializers_entries_as_json_names_both_codecs() -> None:
    stored = codec_for("custom", "plain").encode(an_order())

    with pytest.raises(CodecMismatch) as caught:
        codec_for("json", "plain").decode(stored)

    assert "'reversed-json'" in str(caught.value)
    assert "reads 'json'" in str(caught.value)
    assert isinstance(caught.value, DecodeError)


# --------------------------------------------------------------------------- bad payloads


def test_a_garbage_payload_is_a_decode_error_saying_what_was_expected() -> None:
    with pytest.raises(DecodeError, match=r"expected a JSON object or a codec header") as caught:
        codec_for("json", "plain").decode({b"data": b"\x00\x01garbage"})

    assert not isinstance(caught.value, CodecMismatch)
    assert "garbage" in str(caught.value)


def test_a_corrupt_compressed_payload_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"cannot decode entry as Order: BadGzipFile"):
        codec_for("json", "gzip").decode({b"data": b"#!json+gzip\nnot gzip at all"})


def test_invalid_json_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"does not match Order: .*Invalid JSON"):
        codec_for("json", "plain").decode({b"data": b"{not json"})


def test_an_entry_without_the_data_field_is_a_decode_error_listing_its_fields() -> None:
    with pytest.raises(DecodeError, match=r"no 'data' field \(fields: \['payload'\]\)"):
        codec_for("json", "plain").decode({b"payload": b"{}"})


def test_a_json_record_failing_validation_is_a_decode_error_naming_the_field() -> None:
    document = json.loads(codec_for("json", "plain").encode(an_order())[b"data"])
    document["order_id"] = "not a number"
    document["items"][1]["quantity"] = [1]

    with pytest.raises(DecodeError) as caught:
        codec_for("json", "plain").decode({b"data": json.dumps(document).encode()})

    message = str(caught.value)
    assert message.startswith("entry does not match Order: ")
    assert "order_id: Input should be a valid integer" in message
    assert "items.1.quantity: Input should be a valid integer" in message


def test_a_custom_serializer_payload_failing_validation_names_the_field() -> None:
    payload = ReversedJSON().dumps({"sku": "A", "quantity": "many", "blob": ""})
    codec = RecordCodec(Item, ReversedJSON(), None)

    with pytest.raises(DecodeError, match=r"does not match Item: quantity: "):
        codec.decode({b"data": b"#!reversed-json\n" + payload})


def test_nan_and_infinities_round_trip_instead_of_turning_into_null() -> None:
    class Reading(Record):
        value: float
        history: list[float]

    codec = RecordCodec(Reading, JSONSerializer(), None)
    stored = codec.encode(Reading(value=math.nan, history=[math.inf, -math.inf, 1.5]))
    assert stored[b"data"] == b'{"value":NaN,"history":[Infinity,-Infinity,1.5]}'
    back = codec.decode(stored)
    assert math.isnan(back.value)
    assert back.history == [math.inf, -math.inf, 1.5]
