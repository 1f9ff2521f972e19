"""Server processes the fault suite starts, stops, kills and restarts.

The binary is the test suite's choice (``RUNNEL_TEST_REDIS_SERVER``, see
:mod:`tests.servers`; ``redis-server`` by default), started the same way as the other
tests' servers. A :class:`RedisServer` keeps its port and directory for its whole life, so
a restart brings the same server back: with ``persistent=True`` (``appendonly yes``,
``appendfsync always``) it comes back with every write it acknowledged. Every wait polls
the server (a ``PING`` on a fresh connection) with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.servers import ServerBinary, free_port, start_process, stop_process

POLL = 0.05
START_WITHIN = 15.0


async def answers(port: int, timeout: float = 0.5) -> bool:
    """Whether a server on ``port`` answers ``PING`` with ``PONG`` within ``timeout`` (a
    server still loading its data answers ``-LOADING``: not yet)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    try:
        writer.write(b"PING\r\n")
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.startswith(b"+PONG")
    except (OSError, asyncio.TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def command(client: Redis, *args: str | float) -> object:
    """Send an operator command redis-py has no typed method for (``DEBUG SLEEP``,
    ``SHUTDOWN`` without its client-side check, ``CLIENT PAUSE ... ALL``)."""
    # redis-py declares execute_command without types.
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


class RedisServer:
    """One server on a fixed local port and directory.

    Args:
        binary: the server program (:func:`tests.servers.server_binary`).
        workdir: its directory (AOF files, log).
        persistent: ``appendonly yes`` with ``appendfsync always``; otherwise no persistence.
        options: more ``--name value`` arguments.
    """

    def __init__(
        self,
        binary: ServerBinary,
        workdir: Path,
        *,
        persistent: bool = False,
        options: Sequence[str] = (),
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.persistent = persistent
        self.options = list(options)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """The server's ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        """The options of every start, after the test servers' defaults (the same each time)."""
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else []
        # DEBUG SLEEP stalls the whole server, like a long fork or a blocked host.
        return [*durability, "--enable-debug-command", "local", *self.options]

    def running(self) -> bool:
        """Whether the current start's process has not exited."""
        return self.process is not None and self.process.poll() is None

    async def start(self, within: float = START_WITHIN) -> None:
        """Start the server (again) and wait until it answers ``PING``."""
        process = self._launch()
        deadline = time.monotonic() + within
        while not await answers(self.port):
            if process.poll() is not None:
                raise AssertionError(
                    f"{self.binary.name} exited with {process.returncode}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.binary.name} did not answer within {within}s")
            await asyncio.sleep(POLL)

    def _launch(self) -> subprocess.Popen[bytes]:
        assert not self.running(), "the server is already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = start_process(self.binary, self.port, self.workdir, self.args())
        self.starts += 1
        return self.process

    async def exited(self, within: float = 30.0) -> int:
        """Wait until the server process exits; its exit code."""
        assert self.process is not None
        deadline = time.monotonic() + within
        while (code := self.process.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.binary.name} did not exit within {within}s")
            await asyncio.sleep(POLL)
        return code

    async def shutdown(self) -> int:
        """``SHUTDOWN`` (with AOF: everything written is on disk first); the exit code."""
        admin = self.admin()
        try:
            with contextlib.suppress(RedisConnectionError):
                await command(admin, "SHUTDOWN")
        finally:
            await admin.aclose()
        return await self.exited()

    async def kill(self) -> int:
        """SIGKILL the server, as a crash or an OOM kill does; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        return await self.exited()

    def admin(self, timeout: float | None = None) -> Redis:
        """A fresh client for operator commands (``timeout``: seconds a reply may take,
        ``None`` for no limit, as ``DEBUG SLEEP`` needs)."""
        return Redis.from_url(self.url, socket_timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log."""
        path = self.workdir / "server.log"  # where start_process logs
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server if it runs (teardown)."""
        if self.process is not None:
            stop_process(self.process)
