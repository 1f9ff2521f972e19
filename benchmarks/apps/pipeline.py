"""Worker app: primitive records, processor mode ``pipeline`` (see :mod:`benchmarks.apps`)."""

from benchmarks.apps import build

app, stream = build("primitive", "pipeline")
