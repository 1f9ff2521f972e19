"""Sampling profiles of the consumer processes with py-spy, and their top frames.

``python -m benchmarks --only single --repeat 1 --profile DIR`` records every measured
consumer (runnel worker and raw baseline) from the gate to the last acknowledgement with
``py-spy record --format raw`` (collapsed stacks, active samples only), and writes
``DIR/<run>.txt`` plus ``DIR/<run>.top.md``: the frames with the most samples on top of
the stack (self) and anywhere in it (inclusive). Summarise any collapsed-stack file with
``python -m benchmarks.profile FILE [--top N]``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

RATE = 250
"""Samples per second; py-spy runs non-blocking, so the worker is not paused."""

_BOILERPLATE = (
    "(click/",
    "(<frozen runpy>)",
    "(uvloop/__init__.py)",
    "(runnel/__main__.py)",
    "(runnel/entrypoints/cli.py)",
    "(asyncio/runners.py)",
)
"""Start-up frames under which the event loop runs: left out of the inclusive table."""

_LINE = re.compile(r"\s*\(([^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    """The py-spy binary (next to this Python, else on PATH)."""
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return found


def start(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """Start recording ``pid`` into ``out`` (collapsed stacks)."""
    command = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(RATE),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(recorder: subprocess.Popen[bytes]) -> None:
    """Stop recording (SIGINT makes py-spy write its file)."""
    if recorder.poll() is None:
        recorder.send_signal(signal.SIGINT)
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def frame_name(frame: str) -> str:
    """``func (path/to/module.py:12)`` -> ``func (module path)``, without the line."""
    match = _LINE.search(frame)
    if match is None:
        return frame.strip()
    path = match.group(1)
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{frame[: match.start()].strip()} ({path})"


def summarize(path: Path, top: int = 25) -> str:
    """Markdown tables of the top self and inclusive frames of a collapsed-stack file."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text("utf-8", "replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";")[1:]]  # [0] names the process
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
    if total == 0:
        return f"{path.name}: no samples\n"
    lines = [f"{path.name}: {total} active samples at {RATE} Hz", ""]
    for b in [name for name in inclusive if any(b in name for b in _BOILERPLATE)]:
        del inclusive[b]
    for title, counts in (("self", own), ("inclusive", inclusive)):
        lines += [f"| {title} % | frame |", "|---:|---|"]
        lines += [f"| {100 * n / total:.1f} | `{name}` |" for name, n in counts.most_common(top)]
        lines.append("")
    lines.append(
        "`Runner.run (asyncio/runners.py)` as a self frame is time inside uvloop's C event "
        "loop (I/O, scheduling); start-up frames (click, runpy, the CLI) are left out of "
        "the inclusive table."
    )
    lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary of collapsed-stack files."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    for file in args.files:
        print(summarize(file, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
