"""Small runnel apps that the engine tests run in real ``runnel worker`` processes.

Each module builds its App with :func:`build`-style factories so the test process can
declare the very same App (same streams, processors and metadata) under the same name;
at import time, the module-level ``app`` takes its name from ``ENGINE_TEST_APP``.
"""
