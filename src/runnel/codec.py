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

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError

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
from runnel.domain.excerpt import excerpt, truncated
from runnel.domain.limits import (
    DecodeLimits,
    check_fields,
    decompressed_too_large,
    field_too_large,
    record_too_large,
    too_many_fields,
)
from runnel.errors import DecodeError, Misconfigured
from runnel.interfaces import Compressor, Serializer
from runnel.record import Record
from runnel.runtime.specs import StateSpec

R = TypeVar("R", bound=Record)

_json = JSONSerializer()

_FAST_CONVERTERS: dict[type, Callable[[bytes], object]] = {
    # The converters of runnel.domain.encoding without a Python call of their own; any
    # input they refuse goes through decode_primitive, which decodes or explains it.
    str: bytes.decode,  # UTF-8, strict
    bool: {b"1": True, b"0": False}.__getitem__,
    bytes: bytes,  # the same object back for bytes
}

MESSAGE_LIMIT = 500
"""Characters of a library's error message that a DecodeError quotes."""


class RecordCodec(Generic[R]):
    """Encodes and decodes one record type with one serializer and compressor.

    Entries over ``limits`` (:mod:`runnel.domain.limits`) are refused before they are
    decoded, and records over them before they are sent.
    """

    __slots__ = (
        "_compressor",
        "_expected",
        "_fast_json",
        "_fields",
        "_header",
        "_limits",
        "_max_count",
        "_max_size",
        "_primitive",
        "_serializer",
        "_sized",
        "_validate",
        "_validate_json",
        "record",
    )

    def __init__(
        self,
        record: type[R],
        serializer: Serializer,
        compressor: Compressor | None,
        limits: DecodeLimits | None = None,
    ) -> None:
        self.record = record
        self._primitive = record.__primitive__
        self.limits = limits or DecodeLimits()
        # Primitive fields whose encoded size can grow with their value (str and bytes).
        self._sized = tuple(
            raw for _, raw, kind in record.__primitive_fields__ if kind in (str, bytes)
        )
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
            (name, raw, _FAST_CONVERTERS.get(kind) or primitive_converter(kind), kind)
            for name, raw, kind in record.__primitive_fields__
        )

    @property
    def limits(self) -> DecodeLimits:
        """The decoding limits in force (:mod:`runnel.domain.limits`)."""
        return self._limits

    @limits.setter
    def limits(self, limits: DecodeLimits) -> None:
        self._limits = limits
        # Plain ints for the per-event checks: one attribute lookup each.
        self._max_count = limits.max_field_count
        self._max_size = limits.max_field_size

    @property
    def name(self) -> str:
        """``primitive`` or the codec name recorded in stream metadata (``json+lz4``)."""
        return "primitive" if self.record.__primitive__ else codec_name(*self._expected)

    def encode(self, record: R) -> dict[bytes, bytes]:
        """The stream fields of ``record``.

        Raises:
            LimitExceeded: the record is over a limit the workers would refuse it for.
        """
        if self.record.__primitive__:
            fields = {
                raw: encode_primitive(getattr(record, name))
                for name, raw, _ in self.record.__primitive_fields__
            }
            most = self._max_size
            for raw in self._sized:
                if len(fields[raw]) > most:
                    check_fields(fields, self._limits)  # raises, naming the field
            if len(fields) > self._max_count:
                check_fields(fields, self._limits)
            return fields
        if self._fast_json:
            payload = self.record.__pydantic_serializer__.to_json(record)
        else:
            payload = self._serializer.dumps(record.model_dump(mode="json"))
        if self._compressor is not None:
            most = self._limits.max_decompressed_size
            if len(payload) > most:
                raise record_too_large(len(payload), "max_decompressed_size", most)
            payload = self._compressor.compress(payload)
        value = with_header(*self._expected, payload)
        if len(value) > self._max_size:
            raise record_too_large(len(value), "max_field_size", self._max_size)
        return {DATA_FIELD: value}

    def encode_many(self, records: Sequence[R]) -> list[dict[bytes, bytes]]:
        """The stream fields of each of ``records``: :meth:`encode` in one loop.

        Raises:
            LimitExceeded: a record is over a limit the workers would refuse it for.
        """
        if not self._fast_json or self._compressor is not None or self._primitive:
            encode = self.encode
            return [encode(r) for r in records]
        # JSON without compression: pydantic's JSON, behind the codec's header if any.
        to_json = self.record.__pydantic_serializer__.to_json
        header, most = self._header, self._max_size
        out = []
        for record in records:
            value = to_json(record)
            if header is not None:
                value = header + value
            if len(value) > most:
                raise record_too_large(len(value), "max_field_size", most)
            out.append({DATA_FIELD: value})
        return out

    def decode(self, fields: Mapping[bytes, bytes]) -> R:
        """The record stored in ``fields``.

        Raises:
            LimitExceeded: the entry is over a decoding limit (checked before decoding).
            DecodeError: missing fields, a codec mismatch, or invalid data (the message
                says which, quoting values only by short excerpts).
        """
        try:
            # The limits are checked on what is decoded: the field count, and each field
            # the record reads (another field is not decoded, and costs nothing more).
            if len(fields) > self._max_count:
                raise too_many_fields(len(fields), self._limits)
            if self._primitive:
                return self._validate(self._primitive_values(fields))  # type: ignore[no-any-return]  # the record's own validator
            raw = fields.get(DATA_FIELD)
            if raw is None:
                raise DecodeError(
                    f"entry has no {DATA_FIELD.decode()!r} field (fields: {_names(fields)})"
                )
            if len(raw) > self._max_size:
                raise field_too_large(DATA_FIELD, len(raw), self._limits)
            if self._header is None and raw[:1] == b"{":
                payload = raw  # bare JSON, what this codec writes: no header to parse
            elif self._header is not None and raw.startswith(self._header):
                payload = raw[len(self._header) :]
            else:  # another codec's entry (or garbage): say which
                serializer, compressor, payload = split_payload(raw)
                check_codec((serializer, compressor), self._expected)
            if self._compressor is not None:
                limits = self._limits
                inflated = self._compressor.decompress_limited(
                    payload, limits.max_decompressed_size
                )
                if inflated is None:
                    raise decompressed_too_large(limits)
                payload = inflated
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
            ) from exc  # pydantic's own message quotes inputs by excerpts
        except Exception as exc:
            message = _message(exc)
            raise DecodeError(
                f"cannot decode entry as {self.record.__name__}: {type(exc).__name__}: "
                f"{truncated(message, MESSAGE_LIMIT)}"
            ) from (exc if len(message) <= MESSAGE_LIMIT else None)

    def _primitive_values(self, fields: Mapping[bytes, bytes]) -> dict[str, object]:
        values: dict[str, object] = {}
        most = self._max_size
        for name, raw, convert, kind in self._fields:
            value = fields.get(raw)
            if value is None:
                continue  # let validation name the missing field (or apply its default)
            if len(value) > most:
                raise field_too_large(raw, len(value), self._limits)
            try:
                values[name] = convert(value)
            except Exception:
                # The fast converter refused it (or could not take its type): the domain's
                # converter says why, or decodes it after all.
                try:
                    values[name] = decode_primitive(kind, value)
                except DecodeError as exc:
                    # Not chained: the converter's own error may quote the whole value.
                    raise DecodeError(f"field {name!r} of {self.record.__name__}: {exc}") from None
        return values


def _names(fields: Mapping[bytes, bytes], shown: int = 10) -> str:
    """The first few field names of an entry, and how many there are in all."""
    names = [excerpt(k.decode("utf-8", "replace"), 32) for k in list(fields)[:shown]]
    more = f", ... {len(fields)} fields in all" if len(fields) > shown else ""
    return f"[{', '.join(names)}{more}]"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable>"


def _short(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<record>"
        parts.append(f"{loc}: {err['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def state_spec(value_type: Any, serializer: Serializer, compressor: Compressor | None) -> StateSpec:
    """How a processor's keyed state validates, encodes and decodes ``value_type`` values.

    Values are validated by pydantic (a ``Record``, a model, or any type pydantic takes:
    ``int``, ``float``, ``list[str]``...), then written with the stream's serializer and
    compressor, as records are.

    Raises:
        Misconfigured: pydantic cannot validate ``value_type``.

    Example:
        >>> from runnel.adapters.serializers import JSONSerializer
        >>> spec = state_spec(int, JSONSerializer(), None)
        >>> spec.encode(spec.validate("3")), spec.decode(b"3"), spec.numeric
        (b'3', 3, True)
    """
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(value_type)
    except Exception as exc:
        raise Misconfigured(f"state={value_type!r} is not a type pydantic can validate") from exc
    name = getattr(value_type, "__name__", repr(value_type))
    validate_python = adapter.validate_python
    dump = adapter.dump_python
    dumps, loads = serializer.dumps, serializer.loads

    def validate(value: Any) -> Any:
        try:
            return validate_python(value)
        except ValidationError as exc:
            raise ValueError(f"a state value must be {name}: {_short(exc)}") from None

    def encode(value: Any) -> bytes:
        data = dumps(dump(value, mode="json"))
        return compressor.compress(data) if compressor is not None else data

    def decode(data: bytes) -> Any:
        raw = compressor.decompress(data) if compressor is not None else data
        return validate_python(loads(raw))

    numeric = value_type in (int, float)
    return StateSpec(name, validate, encode, decode, numeric)
