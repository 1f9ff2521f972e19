"""Worker app: primitive records, processor mode ``pipeline_take`` (see :mod:`benchmarks.apps`)."""

from benchmarks.apps import build

app, stream = build("primitive", "pipeline_take")
