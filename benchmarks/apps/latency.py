"""Worker app: primitive records, processor mode ``latency`` (see :mod:`benchmarks.apps`)."""

from benchmarks.apps import build

app, stream = build("primitive", "latency")
