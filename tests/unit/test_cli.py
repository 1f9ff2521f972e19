"""The ``runnel`` command line, in process (click's CliRunner) on the memory backend."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from click.testing import CliRunner, Result

from runnel import App, Stream
from runnel.entrypoints.cli import cli
from tests.kit import unique, write_user_module


@dataclass(frozen=True)
class UserModule:
    """A user's module on ``sys.path`` defining ``app`` and its stream ``actions``."""

    module: str
    app_name: str
    path: Path

    def ref(self, attribute: str) -> str:
        return f"{self.module}:{attribute}"

    @property
    def actions(self) -> Stream[Any]:
        return self.stream("actions")

    def stream(self, attribute: str) -> Stream[Any]:
        stream: Stream[Any] = getattr(importlib.import_module(self.module), attribute)
        return stream

    def stored(self, attribute: str = "actions") -> list[list[dict[str, Any]]]:
        """Each partition's records (as dicts) in stream order, read from the broker."""
        stream = self.stream(attribute)

        async def read() -> list[list[dict[str, Any]]]:
            log = stream.app.backend.log
            return [
                [stream.codec.decode(e.fields).model_dump() for e in await log.range(key)]
                for key in (stream.keys.stream(n) for n in range(stream.partition_count))
            ]

        return asyncio.run(read())

    def metadata(self, attribute: str = "actions") -> dict[bytes, bytes]:
        stream = self.stream(attribute)
        return asyncio.run(stream.app.backend.kv.hash_get_all(stream.keys.meta()))


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UserModule]:
    name = unique()
    module = write_user_module(tmp_path, name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield UserModule(module=module, app_name=name, path=tmp_path)
    sys.modules.pop(module, None)


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """``runnel worker`` configures the root logger; give the next test its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def run(*args: str, stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin)


def cleanly(result: Result) -> bool:
    """Whether the command ended through click (an error message), not a traceback."""
    return result.exception is None or isinstance(result.exception, SystemExit)


# --------------------------------------------------------------------------- send


def test_send_sends_one_event_and_says_where_it_went(user_module: UserModule) -> None:
    result = run("send", user_module.ref("actions"), '{"user_id": 1, "type": "signup"}')

    assert result.exit_code == 0, result.output
    stored = user_module.stored()
    (partition,) = [n for n, records in enumerate(stored) if records]
    assert stored[partition] == [{"user_id": 1, "type": "signup"}]
    assert result.output.startswith(
        f"sent 1 event to {user_module.app_name}.actions partition {partition} as "
    )


def test_send_refuses_invalid_json_saying_why(user_module: UserModule) -> None:
    result = run("send", user_module.ref("actions"), '{"user_id": 1, "type": ')

    assert result.exit_code == 1
    assert "Error: invalid Action: Invalid JSON" in result.output
    assert user_module.metadata() == {}


def test_send_refuses_wrong_fields_naming_them(user_module: UserModule) -> None:
    result = run("send", user_module.ref("actions"), '{"user_id": "one"}')

    assert result.exit_code == 1
    assert "user_id: Input should be a valid integer" in result.output
    assert "type: Field required" in result.output
    assert user_module.stored() == [[], [], [], []]


def test_send_reports_a_backend_refusal(user_module: UserModule) -> None:
    # Another definition of the stream was recorded first: the CLI's app disagrees with it.
    stream = user_module.actions
    asyncio.run(stream.app.backend.kv.hash_set(stream.keys.meta(), {b"partition_count": b"9"}))

    result = run("send", user_module.ref("actions"), '{"user_id": 2, "type": "b"}')

    assert result.exit_code == 1
    assert "MetadataMismatch: " in result.output
    assert "partition_count is '9' in the backend but '4' in this App" in result.output
    assert user_module.stored() == [[], [], [], []]


def test_a_worker_that_cannot_start_says_why_in_one_line_and_exits_1(
    user_module: UserModule,
) -> None:
    # Found with real workers: a wrong Redis password (or any start-up RunnelError) ended
    # the worker with a 100-line traceback, not JSON, in a RUNNEL_LOG_FORMAT=json log.
    # The same stream was recorded first, by another App with another layout.
    other = App(name=user_module.app_name, redis_url=f"memory://{user_module.app_name}")
    meta = {b"partition_count": b"8"}
    asyncio.run(other.backend.kv.hash_set(user_module.actions.keys.meta(), meta))

    result = run("worker", user_module.ref("app"), "--log-format", "json")

    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "Error: MetadataMismatch: " in result.output
    assert "partition_count is '8' in the backend but '4' in this App" in result.output
    logged = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [r["level"] for r in logged if "worker failed" in r["message"]] == ["critical"]


def test_send_with_an_unsupported_redis_url_says_so_in_one_line(
    user_module: UserModule,
) -> None:
    result = run("send", user_module.ref("actions"), "{}", "--redis-url", "localhost:6379")

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert "Error: invalid settings for app " in result.output
    assert "--redis-url: unsupported backend URL 'localhost:6379'" in result.output


def test_send_refuses_an_unsupported_partition_key_type(user_module: UserModule) -> None:
    result = run("send", user_module.ref("by_tags"), '{"user_id": 1, "tags": ["a"]}')

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.output.startswith(
        "Error: invalid Tagged: cannot compute its partition: TypeError: cannot use a list "
        "as a partition key"
    )
    assert user_module.metadata("by_tags") == {}


def test_send_reports_a_partition_by_callable_that_raises(user_module: UserModule) -> None:
    result = run("send", user_module.ref("by_ratio"), '{"user_id": 0, "type": "a"}')

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.output == (
        "Error: invalid Action: cannot compute its partition: ZeroDivisionError: "
        "integer division or modulo by zero\n"
    )
    assert user_module.metadata("by_ratio") == {}


def test_send_honours_redis_url(user_module: UserModule) -> None:
    other = f"memory://{uuid4().hex[:8]}"

    result = run(
        "send", user_module.ref("actions"), '{"user_id": 1, "type": "a"}', "--redis-url", other
    )

    assert result.exit_code == 0, result.output
    assert user_module.actions.app.settings.redis_url == other
    assert sum(len(records) for records in user_module.stored()) == 1


# --------------------------------------------------------------------------- sendmany

LINES = [{"user_id": n % 6, "type": f"t{n}"} for n in range(20)]
JSONL = "".join(f'{{"user_id": {r["user_id"]}, "type": "{r["type"]}"}}\n' for r in LINES)


def expected_partitions(user_module: UserModule) -> list[list[dict[str, Any]]]:
    stream = user_module.actions
    partitions: list[list[dict[str, Any]]] = [[] for _ in range(stream.partition_count)]
    for record in LINES:
        partitions[stream.partition_for(stream.record(**record))].append(record)
    return partitions


def test_sendmany_sends_every_line_of_a_file_in_order(user_module: UserModule) -> None:
    source = user_module.path / "data.jsonl"
    source.write_text(JSONL)

    result = run("sendmany", user_module.ref("actions"), str(source))

    assert result.exit_code == 0, result.output
    expected = expected_partitions(user_module)
    used = sum(1 for records in expected if records)
    assert user_module.stored() == expected
    assert result.output == (
        f"sent 20 event(s) to {used} partition(s) of {user_module.app_name}.actions\n"
    )


def test_sendmany_reads_stdin_for_dash(user_module: UserModule) -> None:
    result = run("sendmany", user_module.ref("actions"), "-", stdin=JSONL)

    assert result.exit_code == 0, result.output
    assert "sent 20 event(s) to " in result.output
    assert user_module.stored() == expected_partitions(user_module)


def test_sendmany_in_small_chunks_sends_everything_in_order(user_module: UserModule) -> None:
    result = run("sendmany", user_module.ref("actions"), "-", "--chunk-size", "3", stdin=JSONL)

    assert result.exit_code == 0, result.output
    assert user_module.stored() == expected_partitions(user_module)


def test_sendmany_reports_every_bad_line_and_sends_nothing(user_module: UserModule) -> None:
    lines = [
        '{"user_id": 1, "type": "ok"}',
        '{"user_id": 2, "type": ',  # line 2: not JSON
        '{"user_id": 3, "type": "ok"}',
        '{"user_id": 4, "type": "ok"}',
        '{"user_id": "five", "type": "bad"}',  # line 5: wrong field type
        '{"user_id": 6, "type": "ok"}',
    ]

    result = run("sendmany", user_module.ref("actions"), "-", stdin="\n".join(lines) + "\n")

    assert result.exit_code == 1
    assert "line 2: Invalid JSON" in result.stderr
    assert "line 5: user_id: Input should be a valid integer" in result.stderr
    for good in ("line 1:", "line 3:", "line 4:", "line 6:"):
        assert good not in result.output
    assert "Error: 2 invalid line(s); nothing was sent" in result.stderr
    assert user_module.stored() == [[], [], [], []]
    assert user_module.metadata() == {}


def test_sendmany_skips_blank_lines_but_counts_them(user_module: UserModule) -> None:
    text = '{"user_id": 1, "type": "a"}\n\n   \n{"user_id": 2}\n'

    result = run("sendmany", user_module.ref("actions"), "-", stdin=text)

    assert result.exit_code == 1
    assert "line 4: type: Field required" in result.stderr
    assert user_module.stored() == [[], [], [], []]


def test_sendmany_reports_invalid_utf8_by_line_and_sends_nothing(
    user_module: UserModule,
) -> None:
    data = (
        b'{"user_id": 1, "type": "ok"}\n'
        b'{"user_id": 2, "type": "caf\xe9"}\n'  # Latin-1, not UTF-8
        b'{"user_id": 3, "type": "ok"}\n'
        b'{"user_id": 4, "type": "\xff\xfe"}\n'
    )

    result = run("sendmany", user_module.ref("actions"), "-", stdin=data)

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.stderr == (
        "line 2: not valid UTF-8 (byte 0xe9 at column 28)\n"
        "line 4: not valid UTF-8 (byte 0xff at column 25)\n"
        "Error: 2 invalid line(s); nothing was sent\n"
    )
    assert user_module.metadata() == {}


def test_sendmany_reports_partition_key_errors_by_line_and_sends_nothing(
    user_module: UserModule,
) -> None:
    tags = '{"user_id": 1}\n{"user_id": 2, "tags": ["x"]}\n{"user_id": 3, "tags": 4}\n'
    ratios = '{"user_id": 5, "type": "a"}\n\n{"user_id": 0, "type": "b"}\n'

    by_tags = run("sendmany", user_module.ref("by_tags"), "-", stdin=tags)
    by_ratio = run("sendmany", user_module.ref("by_ratio"), "-", stdin=ratios)

    assert (by_tags.exit_code, by_ratio.exit_code) == (1, 1)
    assert cleanly(by_tags), by_tags.exception
    assert cleanly(by_ratio), by_ratio.exception
    lines = by_tags.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == ["line 1", "line 2", "line 3", "Error"]
    assert lines[0].startswith(
        "line 1: cannot compute its partition: TypeError: cannot use a list as a partition key"
    )
    assert lines[2].startswith("line 3: tags: Input should be a valid array")
    assert by_ratio.stderr == (
        "line 3: cannot compute its partition: ZeroDivisionError: integer division or modulo "
        "by zero\nError: 1 invalid line(s); nothing was sent\n"
    )
    assert user_module.metadata("by_tags") == {}
    assert user_module.metadata("by_ratio") == {}


def capped_lines(count: int) -> str:
    return "".join(f'{{"user_id": 1, "type": "t{n}"}}\n' for n in range(1, count + 1))


def test_sendmany_refused_midway_says_what_was_sent_and_where_to_resume(
    user_module: UserModule,
) -> None:
    # Lines 1-4 (and a blank line 3) fill four of the five places; the chunk of lines 6-7
    # would trim an entry the processor has not acknowledged.
    text = capped_lines(2) + "\n" + capped_lines(9)[len(capped_lines(2)) :]

    result = run("sendmany", user_module.ref("capped"), "-", "--chunk-size", "2", stdin=text)

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.stderr.startswith("Error: BackpressureError: lossless cap of 5 on stream ")
    assert result.stderr.endswith(
        "\n4 of 9 event(s), up to line 5, were sent to 1 partition(s) of "
        f"{user_module.app_name}.capped before the error; the chunk of 2 event(s) from line 6 "
        "was not written, and nothing after it was sent. Sending the whole file again would "
        "send those 4 event(s) twice: resume from line 6 instead.\n"
    )
    assert [r["type"] for r in user_module.stored("capped")[0]] == ["t1", "t2", "t3", "t4"]


def test_sendmany_refused_at_the_first_chunk_says_nothing_was_sent(
    user_module: UserModule,
) -> None:
    result = run("sendmany", user_module.ref("capped"), "-", stdin=capped_lines(6))

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.stderr.endswith(
        f"\nnothing was sent to {user_module.app_name}.capped before the error; the chunk of "
        "6 event(s) from line 1 was not written, and nothing after it was sent.\n"
    )
    assert user_module.stored("capped") == [[]]


def test_sendmany_help_warns_that_a_rerun_duplicates_sent_events() -> None:
    result = run("sendmany", "--help")

    assert result.exit_code == 0
    assert "would send those events twice" in " ".join(result.output.split())


def test_sendmany_of_a_missing_file_says_so(user_module: UserModule) -> None:
    result = run("sendmany", user_module.ref("actions"), "no-such-file.jsonl")

    assert result.exit_code == 2
    assert "no-such-file.jsonl" in result.output
    assert "No such file or directory" in result.output


# --------------------------------------------------------------------------- references


def test_a_missing_module_is_a_clear_error(user_module: UserModule) -> None:
    result = run("send", "no_such_module_xyz:actions", "{}")

    assert result.exit_code == 2
    assert "cannot import module 'no_such_module_xyz': no such module" in result.output


def test_a_module_that_fails_to_import_says_why(user_module: UserModule) -> None:
    broken = f"broken_{user_module.app_name}"
    (user_module.path / f"{broken}.py").write_text("raise RuntimeError('boom at import')\n")

    result = run("send", f"{broken}:actions", "{}")

    assert result.exit_code == 2
    assert f"importing module '{broken}' failed: RuntimeError: boom at import" in result.output


def test_a_missing_attribute_is_a_clear_error(user_module: UserModule) -> None:
    result = run("send", user_module.ref("nope"), "{}")

    assert result.exit_code == 2
    assert f"module '{user_module.module}' has no attribute 'nope'" in result.output


@pytest.mark.parametrize(
    ("command", "attribute", "rest", "expected"),
    [
        ("send", "app", ["{}"], "is a App, expected a runnel Stream"),
        ("send", "not_a_stream", ["{}"], "is a int, expected a runnel Stream"),
        ("sendmany", "app", ["-"], "is a App, expected a runnel Stream"),
        ("worker", "actions", [], "is a Stream, expected a runnel App"),
    ],
)
def test_a_reference_of_the_wrong_type_is_a_clear_error(
    user_module: UserModule, command: str, attribute: str, rest: list[str], expected: str
) -> None:
    result = run(command, user_module.ref(attribute), *rest)

    assert result.exit_code == 2
    assert f"'{user_module.ref(attribute)}' {expected}" in result.output


def test_a_reference_without_a_colon_is_a_clear_error(user_module: UserModule) -> None:
    result = run("send", user_module.module, "{}")

    assert result.exit_code == 2
    assert f"'{user_module.module}' is not of the form module.path:attribute" in result.output


# --------------------------------------------------------------------------- worker


def test_worker_with_an_unknown_processor_lists_the_available_ones(
    user_module: UserModule,
) -> None:
    result = run("worker", user_module.ref("app"), "--processors", "count,nope")

    assert result.exit_code == 2
    assert "unknown processor(s) nope; available: audit, billing, count" in result.output


def test_worker_with_an_unsupported_redis_url_says_so_in_one_line(
    user_module: UserModule,
) -> None:
    result = run("worker", user_module.ref("app"), "--redis-url", "ftp://admin:hunter2@files")

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.output == (
        f"Error: invalid settings for app '{user_module.app_name}': --redis-url: unsupported "
        "backend URL 'ftp://admin:***@files': expected redis://, rediss://, unix://, "
        "redis+cluster://, redis+sentinel:// or memory://[name]\n"
    )


def test_worker_with_a_malformed_http_address_names_the_option(user_module: UserModule) -> None:
    result = run("worker", user_module.ref("app"), "--http", "9100")

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.output == (
        f"Error: invalid settings for app '{user_module.app_name}': --http: expected "
        "HOST:PORT (like 127.0.0.1:9100, :9100 or [::1]:9100), got '9100'\n"
    )


def test_worker_refuses_an_unknown_log_level_listing_the_levels(user_module: UserModule) -> None:
    result = run("worker", user_module.ref("app"), "--log-level", "loud")

    assert result.exit_code == 2
    assert cleanly(result), result.exception
    assert (
        "Invalid value for '--log-level': 'loud' is not one of 'debug', 'info', 'warning', "
        "'error', 'critical'" in result.output
    )


@pytest.mark.parametrize("command", ["worker", "send"])
def test_a_bad_setting_in_the_environment_is_reported_as_a_setting(
    user_module: UserModule, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("RUNNEL_LOG_LEVEL", "loud")
    rest = ["{}"] if command == "send" else []
    attribute = "actions" if command == "send" else "app"

    result = run(command, user_module.ref(attribute), *rest)

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.output == (
        f"Error: invalid runnel settings in module '{user_module.module}': log_level: Input "
        "should be 'debug', 'info', 'warning', 'error' or 'critical' (RUNNEL_LOG_LEVEL is set "
        "in the environment)\n"
    )
    assert "importing module" not in result.output


# --------------------------------------------------------------------------- python -m runnel


def test_python_dash_m_runnel_shows_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runnel", "--help"], capture_output=True, text=True, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: runnel [OPTIONS] COMMAND [ARGS]...")
    for command in ("worker", "send", "sendmany", "processor"):
        assert f"\n  {command} " in done.stdout


# --------------------------------------------------------------------------- idempotency, state


def test_send_repeated_with_its_idempotency_key_stores_one_event(user_module: UserModule) -> None:
    payload = '{"user_id": 1, "type": "signup"}'
    args = ("send", user_module.ref("actions"), payload, "--idempotency-key", "signup-1")
    first, again = run(*args), run(*args)

    assert first.exit_code == again.exit_code == 0, first.output + again.output
    assert first.output.split()[-1] == again.output.split()[-1]  # the same entry id
    assert sum(len(records) for records in user_module.stored()) == 1


def test_sendmany_run_again_with_its_idempotency_key_sends_nothing_twice(
    user_module: UserModule,
) -> None:
    half = "".join(JSONL.splitlines(keepends=True)[:8])
    args = ("sendmany", user_module.ref("actions"), "-", "--idempotency-key", "import-1")
    assert run(*args, stdin=half).exit_code == 0
    result = run(*args, stdin=JSONL)

    assert result.exit_code == 0, result.output
    assert user_module.stored() == expected_partitions(user_module)


def test_state_of_a_processor_without_state_is_a_one_line_error(user_module: UserModule) -> None:
    result = run("state", user_module.ref("count"))

    assert result.exit_code == 1
    assert cleanly(result), result.exception
    assert result.stderr == "Error: Misconfigured: processor 'count' was declared without state=\n"
