"""Worker app: large records (1-4 MiB each) on 4 partitions, processor mode ``single``
(see :mod:`benchmarks.apps`)."""

from benchmarks.apps import LARGE_PARTITIONS, build

app, stream = build("large", "single", partition_count=LARGE_PARTITIONS)
