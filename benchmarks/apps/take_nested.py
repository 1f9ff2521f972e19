"""Worker app: nested records, processor mode ``take`` (see :mod:`benchmarks.apps`)."""

from benchmarks.apps import build

app, stream = build("nested", "take")
