"""Run the test suite on every Python from 3.10 to 3.13 found on this machine.

Sessions are named after the version (``nox -s tests-3.10``). Interpreters are looked up
in pyenv's versions folder first, then on PATH, so every installed pyenv version is used
even when it is not the global one (pyenv's shims only run the selected versions).
"""

from __future__ import annotations

import glob
import os
import subprocess

import nox

VERSIONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.error_on_missing_interpreters = False


def _works(path: str) -> bool:
    try:
        return subprocess.run([path, "-c", "pass"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _pyenv_bin_dirs() -> list[str]:
    """The ``bin`` folder of the newest working pyenv install of each version."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = []
    for version in VERSIONS:
        candidates = glob.glob(f"{root}/versions/{version}.*/bin/python{version}")
        for candidate in sorted(candidates, key=_version_key, reverse=True):
            if _works(candidate):
                found.append(os.path.dirname(candidate))
                break
    return found


def _version_key(path: str) -> tuple[int, ...]:
    release = path.split("/versions/", 1)[1].split("/", 1)[0]
    return tuple(int(part) if part.isdigit() else -1 for part in release.split("."))


# nox finds ``python3.X`` on PATH: put the real pyenv interpreters ahead of the shims.
os.environ["PATH"] = os.pathsep.join([*_pyenv_bin_dirs(), os.environ.get("PATH", "")])


@nox.session(python=VERSIONS)
def tests(session: nox.Session) -> None:
    """Install runnel with its extras and run the default suite."""
    session.install("-e", ".[dev,fast]")
    session.run("pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider", *session.posargs)
