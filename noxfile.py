"""Run the test suite on every Python from 3.10 to 3.13 found on this machine.

Interpreters are looked up on PATH and in pyenv's versions folder, so every installed
pyenv version is used even when it is not the global one.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import nox

nox.options.error_on_missing_interpreters = False


def _works(path: str) -> bool:
    try:
        return subprocess.run([path, "-c", "pass"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _find(version: str) -> str | None:
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    for candidate in sorted(
        glob.glob(f"{root}/versions/{version}.*/bin/python{version}"), reverse=True
    ):
        if _works(candidate):
            return candidate
    found = shutil.which(f"python{version}")
    return found if found and _works(found) else None


PYTHONS = [p for p in (_find(v) for v in ("3.10", "3.11", "3.12", "3.13")) if p]


@nox.session(python=PYTHONS or ["3"])
def tests(session: nox.Session) -> None:
    """Install runnel with its extras and run the default suite."""
    session.install("-e", ".[dev,fast]")
    session.run("pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider", *session.posargs)
