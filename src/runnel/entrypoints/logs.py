"""Log configuration for the CLI: ``RUNNEL_LOG_FORMAT=console|json``, ``RUNNEL_LOG_LEVEL``.

Every record carries the worker, executor, processor, stream and partition (number) of
the task that logged it (from :mod:`runnel.context`); a record logged with
``extra={"partition": n}`` keeps its own partition.

Fields a caller passes with ``extra={...}`` are kept: as keys of the JSON object (one
whose name the JSON format uses itself, such as ``time`` or ``message``, is written as
``extra_<name>``), and as ``name=value`` pairs after the context on the console.

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
from datetime import datetime, timezone

from runnel import context

_FIELDS = ("worker", "executor", "processor", "stream", "partition")

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
        return True


class ConsoleFormatter(logging.Formatter):
    """``time LEVEL logger: message [worker=... partition=...]``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        pairs = [(k, getattr(record, k, None)) for k in _FIELDS]
        pairs += extra_fields(record).items()
        ctx = " ".join(f"{k}={v}" for k, v in pairs if v is not None)
        line = f"{stamp} {record.levelname:<8} {record.name}: {record.getMessage()}"
        if ctx:
            line += f" [{ctx}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        for key, value in extra_fields(record).items():
            data[f"extra_{key}" if key in _JSON_KEYS else key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure(fmt: str, level: str) -> None:
    """Install one stderr handler on the ``runnel`` logger tree."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
