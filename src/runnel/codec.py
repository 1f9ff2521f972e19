"""Turning Records into stored fields and back (the wire format of ``domain/encoding``).

Example:
    >>> from runnel.adapters.serializers import JSONSerializer
    >>> class Order(Record):
    ...     order_id: int
    >>> codec = RecordCodec(Order, JSONSerializer(), None)
    >>> codec.encode(Order(order_id=7))
    {b'data': b'{"order_id":7}'}
    >>> codec.decode({b"data": b'{"order_id":7}'})
    Order(order_id=7)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from runnel.adapters.serializers import JSONSerializer, OrjsonSerializer
from runnel.domain.encoding import (
    DATA_FIELD,
    check_codec,
    codec_name,
    decode_primitive,
    encode_primitive,
    primitive_converter,
    split_payload,
    with_header,
)
from runnel.errors import DecodeError
from runnel.interfaces import Compressor, Serializer
from runnel.record import Record

R = TypeVar("R", bound=Record)

_json = JSONSerializer()


class RecordCodec(Generic[R]):
    """Encodes and decodes one record type with one serializer and compressor."""

    __slots__ = (
        "_compressor",
        "_expected",
        "_fast_json",
        "_fields",
        "_header",
        "_serializer",
        "_validate",
        "_validate_json",
        "record",
    )

    def __init__(
        self, record: type[R], serializer: Serializer, compressor: Compressor | None
    ) -> None:
        self.record = record
        self._serializer = serializer
        self._compressor = compressor
        self._expected = (serializer.name, compressor.name if compressor else None)
        # pydantic's own JSON is the fastest route, and wire-identical to our JSON codecs.
        self._fast_json = isinstance(serializer, JSONSerializer | OrjsonSerializer)
        self._validate = record.__pydantic_validator__.validate_python
        self._validate_json = record.__pydantic_validator__.validate_json
        # The header this codec writes (None: bare JSON), to recognise its own entries fast.
        headed = with_header(*self._expected, b"")
        self._header = headed or None
        self._fields = tuple(
            (name, raw, primitive_converter(kind), kind)
            for name, raw, kind in record.__primitive_fields__
        )

    @property
    def name(self) -> str:
        """``primitive`` or the codec name recorded in stream metadata (``json+lz4``)."""
        return "primitive" if self.record.__primitive__ else codec_name(*self._expected)

    def encode(self, record: R) -> dict[bytes, bytes]:
        """The stream fields of ``record``."""
        if self.record.__primitive__:
            return {
                raw: encode_primitive(getattr(record, name))
                for name, raw, _ in self.record.__primitive_fields__
            }
        if self._fast_json:
            payload = self.record.__pydantic_serializer__.to_json(record)
        else:
            payload = self._serializer.dumps(record.model_dump(mode="json"))
        if self._compressor is not None:
            payload = self._compressor.compress(payload)
        return {DATA_FIELD: with_header(*self._expected, payload)}

    def decode(self, fields: Mapping[bytes, bytes]) -> R:
        """The record stored in ``fields``.

        Raises:
            DecodeError: missing fields, a codec mismatch, or invalid data (the message
                says which).
        """
        try:
            if self.record.__primitive__:
                return self._validate(self._primitive_values(fields))  # type: ignore[no-any-return]  # the record's own validator
            raw = fields.get(DATA_FIELD)
            if raw is None:
                raise DecodeError(
                    f"entry has no {DATA_FIELD.decode()!r} field (fields: "
                    f"{sorted(k.decode('utf-8', 'replace') for k in fields)})"
                )
            if self._header is None and raw[:1] == b"{":
                payload = raw  # bare JSON, what this codec writes: no header to parse
            elif self._header is not None and raw.startswith(self._header):
                payload = raw[len(self._header) :]
            else:  # another codec's entry (or garbage): say which
                serializer, compressor, payload = split_payload(raw)
                check_codec((serializer, compressor), self._expected)
            if self._compressor is not None:
                payload = self._compressor.decompress(payload)
            if self._fast_json:
                return self._validate_json(payload)  # type: ignore[no-any-return]  # the record's own validator
            value: Any = self._serializer.loads(payload)
            # Validate through JSON mode so bytes and dates parse as they were dumped.
            return self.record.model_validate_json(_json.dumps(value))
        except DecodeError:
            raise
        except ValidationError as exc:
            raise DecodeError(
                f"entry does not match {self.record.__name__}: {_short(exc)}"
            ) from exc
        except Exception as exc:
            raise DecodeError(
                f"cannot decode entry as {self.record.__name__}: {type(exc).__name__}: {exc}"
            ) from exc

    def _primitive_values(self, fields: Mapping[bytes, bytes]) -> dict[str, object]:
        values: dict[str, object] = {}
        for name, raw, convert, kind in self._fields:
            value = fields.get(raw)
            if value is None:
                continue  # let validation name the missing field (or apply its default)
            try:
                values[name] = convert(value)
            except (ValueError, UnicodeDecodeError):
                try:
                    decode_primitive(kind, value)  # raises the DecodeError that says why
                except DecodeError as exc:
                    raise DecodeError(f"field {name!r} of {self.record.__name__}: {exc}") from exc
                raise  # pragma: no cover - decode_primitive agrees with the converter
        return values


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<record>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
