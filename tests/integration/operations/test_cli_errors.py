"""Every operator's mistake is one line on stderr with a non-zero exit; ``-v`` adds the
traceback. Commands run as an operator runs them: ``python -m runnel`` in a subprocess."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from uuid import uuid4

import pytest

from tests.integration.engine.harness import runnel
from tests.servers import ServerUnavailable, free_port, running_server, server_binary

from .conftest import APP, Cli

PROC = f"{APP}:charge"


@pytest.fixture(scope="module")
def password_server() -> Iterator[tuple[int, str]]:
    """A throwaway redis-server with a password: its port and the password."""
    try:
        binary = server_binary()
    except ServerUnavailable as exc:
        pytest.skip(f"no server binary to start a password-protected server: {exc}")
    password = f"pw-{uuid4().hex}"
    with running_server(["--requirepass", password], binary=binary) as server:
        yield server.port, password


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The single stderr line of a failed command (checked to be one, without traceback)."""
    assert done.returncode == code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    return str(lines[0])


def test_unreachable_redis(cli: Cli) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    for args in (["status", APP], ["quarantine", "list", PROC], ["tail", f"{APP}:orders"]):
        line = one_line_error(cli(*args, "--redis-url", url))
        assert "Redis unreachable" in line


def test_a_wrong_password_is_named_as_an_authentication_failure(
    cli: Cli, password_server: tuple[int, str]
) -> None:
    port, password = password_server
    wrong = f"redis://:nottheone-{uuid4().hex[:6]}@127.0.0.1:{port}/0"
    line = one_line_error(cli("status", APP, "--redis-url", wrong))
    assert line.startswith("Error: authentication failed")
    missing = one_line_error(
        cli("quarantine", "list", PROC, "--redis-url", f"redis://127.0.0.1:{port}/0")
    )
    assert "authentication failed" in missing
    right = cli("status", APP, "--redis-url", f"redis://:{password}@127.0.0.1:{port}/0")
    assert right.returncode == 0, right.stderr
    assert password not in right.stdout + right.stderr + line


def test_bad_url_options(cli: Cli, redis_url: str) -> None:
    base = redis_url.split("?")[0]
    unknown = one_line_error(cli("status", APP, "--redis-url", base + "?bogus=1"))
    assert "unknown Redis URL option 'bogus'" in unknown
    invalid = one_line_error(cli("status", APP, "--redis-url", base + "?socket_timeout=abc"))
    assert "socket_timeout" in invalid


def test_unknown_names(cli: Cli) -> None:
    assert "no such module" in one_line_error(cli("status", "nosuchmodule"), code=2)
    assert "has no attribute 'nope'" in one_line_error(cli("status", f"{APP}:nope"), code=2)
    unknown = one_line_error(cli("status", APP, "--processor", "nope"))
    assert "unknown processor(s) nope; available: act, charge, collect, first, second" in unknown
    not_processor = one_line_error(cli("processor", "skip", f"{APP}:nope", "0", "1-0"), code=2)
    assert "is not a processor registered on an App in its module; known:" in not_processor
    assert "has no attribute 'nope'" in one_line_error(cli("tail", f"{APP}:nope"), code=2)
    for args in (
        ["processor", "skip", PROC, "9", "1-0"],
        ["processor", "reset", PROC, "--partition", "9"],
        ["tail", f"{APP}:orders", "--partition", "9"],
    ):
        assert "has no partition 9 (it has 0 to 3)" in one_line_error(cli(*args))
    assert "is not an entry id" in one_line_error(cli("processor", "skip", PROC, "0", "soon"))
    no_dead = one_line_error(cli("deadletter", "list", PROC))
    assert "has no DeadLetterMiddleware" in no_dead


def test_a_processor_by_registered_name_and_an_ambiguous_function(cli: Cli) -> None:
    by_name = cli("quarantine", "list", f"{APP}:first")
    assert by_name.returncode == 0, by_name.stderr
    ambiguous = one_line_error(cli("quarantine", "list", f"{APP}:twice"), code=2)
    assert f"registered as 2 processors; name one: {APP}:first, {APP}:second" in ambiguous


def test_verbose_shows_the_traceback(env: dict[str, str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = runnel("-v", "status", APP, "--redis-url", url, env=env)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("Error: Redis unreachable")
