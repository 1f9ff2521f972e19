"""Log configuration for the CLI: ``RUNNEL_LOG_FORMAT=console|json``, ``RUNNEL_LOG_LEVEL``.

Every record carries the worker, executor, processor, stream and partition (number) of
the task that logged it (from :mod:`runnel.context`), and the ``entry_id`` of the entry
being processed (the first of a batch) when it was logged while one was; a record logged
with ``extra={"partition": n}`` keeps its own partition.

Fields a caller passes with ``extra={...}`` are kept: as keys of the JSON object (one
whose name the JSON format uses itself, such as ``time`` or ``message``, is written as
``extra_<name>``), and as ``name=value`` pairs after the context on the console.

Every line is masked (the secrets of the settings never appear, however a message came to
quote them) and bounded: a message or traceback longer than :data:`MESSAGE_LIMIT` or
:data:`TRACEBACK_LIMIT` characters keeps its beginning and end, with a mark saying how
much was left out. Text values of extra fields are masked and bounded like messages.

Example:
    >>> record = logging.LogRecord("shop", logging.INFO, "x.py", 1, "charged", (), None)
    >>> record.order_id = 42
    >>> json.loads(JsonFormatter().format(record))["order_id"]
    42
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import datetime, timezone

from runnel import context
from runnel._redact import scrub

_FIELDS = ("worker", "executor", "processor", "stream", "partition", "entry_id")

# What every LogRecord has (and what formatting adds), as opposed to a caller's extras.
_STANDARD = frozenset(
    {
        *vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)),
        "message",
        "asctime",
        "taskName",
        *_FIELDS,
    }
)

# Keys the JSON format writes itself: an extra field of the same name is renamed.
_JSON_KEYS = frozenset({"time", "level", "logger", "message", "exception", *_FIELDS})


def extra_fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields a caller added to ``record`` with ``extra={...}``.

    Example:
        >>> r = logging.LogRecord("shop", logging.INFO, "x.py", 1, "hi", (), None)
        >>> r.customer = "c-7"
        >>> extra_fields(r)
        {'customer': 'c-7'}
    """
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }


MESSAGE_LIMIT = 16_384
"""Characters of a log message kept (half from its start, half from its end)."""

TRACEBACK_LIMIT = 32_768
"""Characters of a logged traceback kept (half from its start, half from its end)."""


def bounded(text: str, limit: int) -> str:
    r"""``text``, or its start and end around a mark if it is longer than ``limit``.

    Example:
        >>> print(bounded("a" * 10 + "b" * 10, 8))
        aaaa
        ...(12 of 20 chars left out)...
        bbbb
    """
    if len(text) <= limit:
        return text
    half = limit // 2
    left_out = f"...({len(text) - 2 * half} of {len(text)} chars left out)..."
    return f"{text[:half]}\n{left_out}\n{text[-half:]}"


class _Masked(logging.Formatter):
    """Formats a record's message and traceback masked and bounded."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def message(self, record: logging.LogRecord) -> str:
        return scrub(bounded(record.getMessage(), MESSAGE_LIMIT), self.secrets)

    def extras(self, record: logging.LogRecord) -> dict[str, object]:
        """The caller's extra fields, text values masked and bounded."""
        return {
            key: scrub(bounded(value, MESSAGE_LIMIT), self.secrets)
            if isinstance(value, str)
            else value
            for key, value in extra_fields(record).items()
        }

    def traceback(self, record: logging.LogRecord) -> str | None:
        if not record.exc_info:
            return None
        text = self.formatException(record.exc_info)
        return scrub(bounded(text, TRACEBACK_LIMIT), self.secrets)


class ContextFilter(logging.Filter):
    """Adds the context variables of the current task to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = context.worker_id.get(None)
        record.executor = context.executor_id.get(None)
        record.processor = context.processor_name.get(None)
        part = context.partition.get(None)
        record.stream = context.stream_name.get(None) or (part.stream if part else None)
        if getattr(record, "partition", None) is None:
            record.partition = part.number if part is not None else None
        if getattr(record, "entry_id", None) is None:
            processing = context.processing.get(None)
            record.entry_id = processing.entry_id if processing is not None else None
        return True


class ConsoleFormatter(_Masked):
    """``time LEVEL logger: message [worker=... partition=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        pairs = [(k, getattr(record, k, None)) for k in _FIELDS]
        pairs += self.extras(record).items()
        ctx = " ".join(f"{k}={v}" for k, v in pairs if v is not None)
        line = f"{stamp} {record.levelname:<8} {record.name}: {self.message(record)}"
        if ctx:
            line += f" [{ctx}]"
        trace = self.traceback(record)
        if trace is not None:
            line += "\n" + trace
        return line


class JsonFormatter(_Masked):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.message(record),
        }
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        for key, value in self.extras(record).items():
            data[f"extra_{key}" if key in _JSON_KEYS else key] = value
        trace = self.traceback(record)
        if trace is not None:
            data["exception"] = trace
        return json.dumps(data, default=str)


def configure(fmt: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Install one stderr handler on the ``runnel`` logger tree, masking ``secrets``.

    ``secrets`` is read at every line (a set the caller may still add to).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    formatter = JsonFormatter(secrets) if fmt == "json" else ConsoleFormatter(secrets)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
