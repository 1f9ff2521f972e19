"""What the benchmark ran on: CPU, cores, memory, OS, Python, Redis and package versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata

from benchmarks.harness import ROOT, RUNNEL_SRC

PACKAGES = (
    "runnel",
    "redis",
    "hiredis",
    "pydantic",
    "pydantic-core",
    "orjson",
    "xxhash",
    "lz4",
    "uvloop",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}{' (src/ modified)' if dirty else ''}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def details(redis_version: str) -> dict[str, str]:
    """Machine and software details, as name -> text."""
    info = {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "memory": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "redis-server": redis_version,
        "git commit": _git_commit(),
        "runnel imported from": str(RUNNEL_SRC),
    }
    for name in PACKAGES:
        info[name] = _version(name)
    return info
