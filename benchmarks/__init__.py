"""Benchmarks: runnel against a raw redis-py baseline measured in the same run."""
