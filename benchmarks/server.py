"""A throwaway redis-server for one benchmark run.

It listens on a free port of 127.0.0.1 (never the default 6379), keeps its files in its
own temporary directory, persists nothing, and is stopped when the context exits.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STARTUP_SECONDS = 10.0


class ServerError(RuntimeError):
    """redis-server could not be found or started."""


@dataclass(frozen=True)
class RedisServer:
    """A running server: its URL, port, process id and version."""

    url: str
    port: int
    pid: int
    version: str


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (never 6379)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port != 6379:
            return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def binary_version(binary: str) -> str:
    """The version printed by ``redis-server --version`` (``7.0.15``)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return out.stdout.strip() or "unknown"


def find_binary(explicit: str | None = None) -> str:
    """The redis-server binary to run: ``explicit``, else the one on PATH."""
    binary = explicit or shutil.which("redis-server")
    if binary is None:
        raise ServerError("redis-server not found: apt-get install -y redis-server")
    return binary


@contextlib.contextmanager
def redis_server(binary: str | None = None) -> Iterator[RedisServer]:
    """Run redis-server on a free local port until the context exits."""
    path = find_binary(binary)
    version = binary_version(path)
    with tempfile.TemporaryDirectory(prefix="runnel-bench-redis-") as workdir:
        port = free_port()
        command = [
            path,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            str(Path(workdir) / "redis.log"),
            "--protected-mode",
            "yes",
        ]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while not _answers_ping(port):
                if process.poll() is not None:
                    _, err = process.communicate()
                    raise ServerError(f"redis-server exited with {process.returncode}: {err!r}")
                if time.monotonic() > deadline:
                    raise ServerError(f"redis-server did not answer PING on port {port} in time")
                time.sleep(0.02)
            yield RedisServer(f"redis://127.0.0.1:{port}/0", port, process.pid, version)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
