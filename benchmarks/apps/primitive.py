"""Worker app: primitive records, processor mode ``single`` (see :mod:`benchmarks.apps`)."""

from benchmarks.apps import build

app, stream = build("primitive", "single")
