"""examples/demo.py runs to a clean report on the in-memory backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).parents[2] / "examples" / "demo.py"


def run_demo(orders: int, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the demo in a fresh interpreter, without the caller's RUNNEL_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RUNNEL_")}
    env["DEMO_ORDERS"] = str(orders)
    if redis_url is not None:
        env["RUNNEL_REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, str(DEMO)], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_demo_verifies_order_and_reports_the_dead_letters() -> None:
    done = run_demo(1000)

    assert done.returncode == 0, done.stdout + done.stderr
    report = done.stdout.splitlines()
    assert report[0].startswith("runnel demo: 1000 orders from 200 customers on memory://demo")
    assert report[1].startswith("processed 1000 events in ")
    assert "per-customer order: verified, every customer's orders arrived in sequence" in report
    # Seeded: 2 of the first 1000 orders have a negative amount.
    assert "dead letters: 2 (expected 2)" in report
    assert not any(line.startswith("deleted the ") for line in report)


def test_the_demo_logs_each_rejection_in_one_line_without_a_traceback() -> None:
    done = run_demo(1000)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    rejected = [line for line in done.stderr.splitlines() if line.startswith("[rejected] ")]
    assert len(rejected) == 2
    for line in rejected:
        assert "processor running_totals failed on orders." in line
        assert "NegativeAmount('negative amount -1.0 in order c" in line
