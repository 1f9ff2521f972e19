"""What a failure leaves behind: error descriptions, quarantine records, dead-letter fields.

Every writer and every reader of these shapes goes through this module, so the worker
that quarantines a partition, ``App.quarantined`` and the test harness agree on the
record, and the worker that dead-letters an event and whoever reads the sink stream agree
on the fields.

**Quarantine record**: one JSON object per quarantined partition, stored in the hash
``__quar:{app}.{stream}.{processor}`` under the partition's number::

    {"partition": 3, "entry_id": "1700-0", "error_type": "ValueError",
     "error": "bad amount", "time": "2026-01-01T00:00:00+00:00", "worker": "w1"}

**Dead letter**: the failed entry's raw fields, unchanged, plus these fields, each named
with the prefix ``__error_``: ``type``, ``message``, ``stream``, ``partition`` (the source
partition), ``id`` (the source entry id), ``processor`` and ``time`` (ISO 8601, UTC).

Example:
    >>> info = describe(ValueError("bad amount"))
    >>> info.type, info.message
    ('ValueError', 'bad amount')
    >>> fields = dead_letter_fields(
    ...     {b"data": b"{}"}, info, stream="orders", partition=3, entry_id=b"1700-0",
    ...     processor="charge", time="2026-01-01T00:00:00+00:00")
    >>> data, letter = read_dead_letter(fields)
    >>> data, letter.source_partition, letter.error_type
    ({b'data': b'{}'}, 3, 'ValueError')
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from runnel.domain.excerpt import truncated

ERROR_PREFIX: Final = b"__error_"
"""The prefix of the fields a dead letter adds to the failed entry's own."""

MESSAGE_LIMIT: Final = 2000
"""Characters of an error's message that are kept."""

TRACEBACK_LIMIT: Final = 8000
"""Characters of a traceback that are kept (its end, where the error is)."""

REPR_LIMIT: Final = 300
"""Characters of a :func:`safe_repr` (before the mark of how long the whole was)."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as text that is safe to store and to log.

    Attributes:
        type: the exception class's qualified name.
        message: ``str(error)``, cut to :data:`MESSAGE_LIMIT` characters (marked with how
            long it was, when cut).
        traceback: the formatted traceback's last :data:`TRACEBACK_LIMIT` characters.
    """

    type: str
    message: str
    traceback: str


def describe(error: BaseException) -> ErrorInfo:
    """Describe ``error`` as text; never raises, whatever the error's ``__str__`` does.

    Example:
        >>> class Rude(Exception):
        ...     def __str__(self) -> str: raise RuntimeError("no")
        >>> describe(Rude()).message
        '<unprintable Rude>'
    """
    try:
        message = str(error)
    except Exception:
        message = f"<unprintable {type(error).__name__}>"
    try:
        trace = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    except Exception:
        trace = ""
    message = truncated(message, MESSAGE_LIMIT)
    return ErrorInfo(type(error).__qualname__, message, trace[-TRACEBACK_LIMIT:])


def safe_repr(obj: object) -> str:
    """``repr`` that never raises and never floods a log line.

    Example:
        >>> safe_repr("x" * 1000)[-20:]
        'xxxxx...(1002 chars)'
    """
    try:
        text = repr(obj)
    except Exception:
        text = f"<unrepresentable {type(obj).__name__}>"
    return truncated(text, REPR_LIMIT)


# --------------------------------------------------------------------------- quarantine


def quarantine_record(
    partition: int, entry_id: str | None, error: ErrorInfo, time: str, worker: str
) -> bytes:
    """The stored record of a partition quarantined at ``entry_id`` because of ``error``.

    Example:
        >>> quarantine_record(3, "1700-0", ErrorInfo("E", "m", ""), "t", "w1")
        b'{"partition": 3, "entry_id": "1700-0", "error_type": "E", "error": "m", "time": "t", "worker": "w1"}'
    """  # noqa: E501
    return json.dumps(
        {
            "partition": partition,
            "entry_id": entry_id,
            "error_type": error.type,
            "error": error.message,
            "time": time,
            "worker": worker,
        }
    ).encode()


def quarantine_field(partition: int) -> bytes:
    """The hash field a partition's quarantine record is stored under.

    Example:
        >>> quarantine_field(3)
        b'3'
    """
    return str(partition).encode()


def read_quarantines(stored: Mapping[bytes, bytes]) -> dict[int, dict[str, Any]]:
    """The quarantine hash as ``partition -> record``, in partition order.

    Example:
        >>> read_quarantines({b"3": b'{"partition": 3}', b"1": b'{"partition": 1}'})
        {1: {'partition': 1}, 3: {'partition': 3}}
    """
    records = {int(field): json.loads(value) for field, value in stored.items()}
    return dict(sorted(records.items()))


# --------------------------------------------------------------------------- dead letters


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """What a dead letter says about its failure (the fields with :data:`ERROR_PREFIX`).

    A field that is missing (a sink written by hand, say) reads as an empty string, and
    ``source_partition`` as None.
    """

    error_type: str
    error_message: str
    stream: str
    source_partition: int | None
    source_id: str
    processor: str
    time: str


def dead_letter_fields(
    data: Mapping[bytes, bytes],
    error: ErrorInfo,
    *,
    stream: str,
    partition: int,
    entry_id: bytes,
    processor: str,
    time: str,
) -> dict[bytes, bytes]:
    """The fields of the dead letter of an entry of ``stream`` that failed with ``error``."""
    fields = dict(data)
    fields.update(
        {
            ERROR_PREFIX + b"type": error.type.encode(),
            ERROR_PREFIX + b"message": error.message.encode("utf-8", "replace"),
            ERROR_PREFIX + b"stream": stream.encode(),
            ERROR_PREFIX + b"partition": str(partition).encode(),
            ERROR_PREFIX + b"id": entry_id,
            ERROR_PREFIX + b"processor": processor.encode(),
            ERROR_PREFIX + b"time": time.encode(),
        }
    )
    return fields


def read_dead_letter(fields: Mapping[bytes, bytes]) -> tuple[dict[bytes, bytes], DeadLetterInfo]:
    """Split a dead letter into the original entry's fields and what failed."""
    data = {k: v for k, v in fields.items() if not k.startswith(ERROR_PREFIX)}

    def text(name: bytes) -> str:
        return fields.get(ERROR_PREFIX + name, b"").decode("utf-8", "replace")

    partition = text(b"partition")
    return data, DeadLetterInfo(
        error_type=text(b"type"),
        error_message=text(b"message"),
        stream=text(b"stream"),
        source_partition=int(partition) if partition.isdigit() else None,
        source_id=text(b"id"),
        processor=text(b"processor"),
        time=text(b"time"),
    )
