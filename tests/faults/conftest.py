"""Fixtures of the fault suite, its selection, and its summary at the end of the run.

The scenarios (marker ``faults``) run only when asked for: ``make test-faults`` (``pytest
-m faults``), a ``-m`` expression naming ``faults``, or a path inside ``tests/faults`` on
the command line. Otherwise they are deselected, so ``make test`` stays short. Each
scenario starts its own redis-server; the workers' records go to one audit server for the
session, which no fault touches.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

from tests.servers import ServerBinary, ServerUnavailable, server_binary

from . import report
from .redis_server import RedisServer
from .scenario import Scenario, Settings

_HERE = Path(__file__).parent
_durations: dict[str, float] = {}


def _asked_for(config: pytest.Config) -> bool:
    if "faults" in (config.getoption("markexpr", "") or ""):
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == _HERE or _HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the fault scenarios unless the run asked for them."""
    if _asked_for(config):
        return
    keep = [item for item in items if item.get_closest_marker("faults") is None]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Add up the time the fault scenarios take (set-up, call and teardown)."""
    if "faults" in report.keywords:
        _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """Print the session's fault table and write it as JSON."""
    if not report.ROWS:
        return
    seconds = sum(_durations.values())
    terminalreporter.section("fault suite")
    for line in report.lines(report.ROWS, seconds):
        terminalreporter.write_line(line)
    report.write(report.ROWS, seconds)


@pytest.fixture(scope="session")
def redis_binary() -> ServerBinary:
    """The server program the suite starts (the suite is skipped without one)."""
    try:
        return server_binary()
    except ServerUnavailable as exc:
        pytest.skip(f"the fault suite needs a server binary: {exc}")


@pytest.fixture(scope="session")
def audit_url(
    redis_binary: ServerBinary, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A redis-server for the workers' records, never faulted (no persistence)."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("audit-redis"))
    asyncio.run(server.start())
    try:
        yield server.url
    finally:
        server.stop()


class Faults:
    """What a scenario test gets: servers to fault, and scenarios to run on them."""

    def __init__(
        self, binary: ServerBinary, audit_url: str, tmp_path: Path, node: pytest.Item
    ) -> None:
        self.binary = binary
        self.audit_url = audit_url
        self.tmp_path = tmp_path
        self.node = node
        self.servers: list[RedisServer] = []

    async def server(self, *, persistent: bool = False, options: Sequence[str] = ()) -> RedisServer:
        """Start a redis-server of the test's own (stopped at teardown)."""
        server = RedisServer(
            self.binary,
            self.tmp_path / f"redis-{len(self.servers)}",
            persistent=persistent,
            options=options,
        )
        self.servers.append(server)
        await server.start()
        return server

    def scenario(
        self,
        name: str,
        redis: RedisServer,
        *,
        settings: Settings = "fast",
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Scenario:
        """A scenario on ``redis`` (use it with ``async with``); its row joins the report."""
        workdir = self.tmp_path / f"scenario-{name.replace(' ', '-')}"
        workdir.mkdir(parents=True, exist_ok=True)
        scenario = Scenario(
            name, redis, self.audit_url, workdir, report.ROWS, settings=settings, env=env, **options
        )
        xfail = self.node.get_closest_marker("xfail")
        if xfail is not None:
            scenario.notes["xfail"] = xfail.kwargs.get("reason", "")
        return scenario

    def close(self) -> None:
        """Stop every server the test started."""
        for server in self.servers:
            server.stop()


@pytest.fixture
async def faults(
    redis_binary: ServerBinary, audit_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Faults]:
    """Servers and scenarios for one fault test; every server is stopped at teardown."""
    kit = Faults(redis_binary, audit_url, tmp_path, request.node)
    try:
        yield kit
    finally:
        kit.close()
