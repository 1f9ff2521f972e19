"""The benchmark suite still runs: a smoke run of the send scenario prints its table.

No timing is asserted (the benchmark itself is the performance check); this only keeps
``python -m benchmarks`` working. It starts its own redis-server, like ``make bench``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
def test_smoke_send_prints_table_rows() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "send", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("scenario") and "ratio" in line for line in lines), result.stdout
    row = next((line for line in lines if line.startswith("send 1000/call (lossless)")), None)
    assert row is not None, result.stdout
    assert "records/s" in row
    assert any(line.startswith("machine: ") for line in lines)


@pytest.mark.timeout(60)
def test_smoke_large_events_prints_throughput_and_memory_rows() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--only", "large", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for start, unit in (
        ("large events (16 KiB-64 KiB), 8 backlog ", "events/s"),
        ("large events (16 KiB-64 KiB), 8 backlog, MB/s", "MB/s"),
        ("large events, worker peak RSS", "MB"),
        ("large events, peak RSS over idle", "MB"),
    ):
        row = next((line for line in lines if line.startswith(start)), None)
        assert row is not None, (start, result.stdout)
        assert unit in row
