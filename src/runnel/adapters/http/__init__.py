"""The worker's HTTP endpoint: ``/metrics``, ``/healthz`` and ``/readyz``."""
