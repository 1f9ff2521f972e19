"""No secret is ever shown: a real worker's logs at DEBUG, every CLI error path, reprs.

The URL of the TLS server carries two secrets: the user's password and ``ssl_password``,
the passphrase of the encrypted client key. A third comes from ``RUNNEL_REDIS_PASSWORD``.
Every output below is scanned for each of them, as written and percent-encoded.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from runnel import App
from runnel._redact import redact_url
from runnel.errors import RunnelError
from tests.kit import needs_tls_key_password

from ..engine.apps import ordering
from ..engine.apps.common import Tick
from ..engine.conftest import Spawn
from ..engine.harness import APPS, process_env, runnel, wait_for
from .conftest import Tls

pytestmark = needs_tls_key_password

SEND = f"{APPS}.ordering:ticks"
APP = f"{APPS}.ordering:app"
HALTING = f"{APPS}.policies:halting"


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        for spelling in {secret, quote(secret, safe=""), quote_plus(secret)}:
            assert spelling not in text, f"secret shown in:\n{text[-3000:]}"


@pytest.mark.parametrize("log_format", ["console", "json"])
async def test_a_worker_logging_at_debug_never_shows_a_secret(
    spawn: Spawn, app_name: str, tls_redis: Tls, log_format: str
) -> None:
    url = tls_redis.url()
    worker = spawn(
        "ordering",
        url=url,
        env={"RUNNEL_LOG_LEVEL": "debug", "RUNNEL_LOG_FORMAT": log_format},
    )
    await wait_for(
        lambda: (
            len(worker.acquired("ticks")) == ordering.PARTITIONS or "acquired" in worker.stderr()
        ),
        "ready",
        workers=[worker],
    )
    app, ticks = ordering.build(app_name, url)
    try:
        await ticks.send(*[Tick(key=f"k{i}", seq=0) for i in range(10)])
    finally:
        await app.close()
    assert await worker.stop() == 0
    logs = worker.stderr() + worker.stdout()
    assert "DEBUG" in logs or '"level": "debug"' in logs
    assert "ssl_password=***" in logs
    assert_hidden(logs, tls_redis.password, tls_redis.key_passphrase)


def _cli_runs(tls: Tls, app_name: str, tmp_path: Path) -> list[subprocess.CompletedProcess[str]]:
    url = tls.url()
    env = process_env(app_name, url)
    wrong = url.replace(tls.password, f"wrong-{tls.password}")
    lines = tmp_path / "lines.jsonl"
    lines.write_text('{"key": "k", "seq": 1}\nnot json\n')
    missing = tmp_path / "no-such-password-file"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    return [
        # a refused password, in every command that talks to Redis
        runnel("worker", f"{APPS}.ordering:app", "--redis-url", wrong, env=env, timeout=60),
        runnel("send", SEND, '{"key": "k", "seq": 1}', "--redis-url", wrong, env=env),
        runnel("processor", "reset", HALTING, "--redis-url", wrong, env=env),
        runnel("quarantine", "list", HALTING, "--redis-url", wrong, env=env),
        # bad input and bad settings, with the secrets in the URL
        runnel("worker", f"{APPS}.ordering:app", "--processors", "nope", env=env),
        runnel("send", SEND, "{not json", env=env),
        runnel("sendmany", SEND, str(lines), env=env),
        runnel("quarantine", "clear", HALTING, "3", env=env),
        runnel("worker", APP, "--redis-url", url.replace("ssl_ca_certs", "ssl_ca_cert"), env=env),
        runnel("worker", APP, "--redis-url", url.replace("/0?", "/notadb?"), env=env),
        runnel("worker", APP, "--redis-url", url.replace("rediss://", "http://"), env=env),
        runnel("send", SEND, "{}", env={**env, "RUNNEL_DEFAULT_PARTITION_COUNT": "0"}),
        runnel("send", SEND, '{"key": "k", "seq": 1}', env={**env, "RUNNEL_REDIS_PASSWORD": "x"}),
        runnel("send", SEND, "{}", "--redis-password-file", str(missing), env=env),
        runnel("send", SEND, "{}", "--redis-password-file", str(empty), env=env),
    ]  # fmt: skip


async def test_no_cli_error_shows_a_secret(tls_redis: Tls, app_name: str, tmp_path: Path) -> None:
    runs = _cli_runs(tls_redis, app_name, tmp_path)
    for done in runs:
        assert done.returncode != 0, done.args
        assert "Traceback" not in done.stderr, done.stderr
        assert_hidden(done.stdout + done.stderr, tls_redis.password, tls_redis.key_passphrase)
    texts = [done.stderr for done in runs]
    assert "invalid username-password pair" in texts[0]
    assert "invalid username-password pair" in texts[2]
    assert "invalid username-password pair" in texts[3]
    assert "unknown processor(s) nope" in texts[4]
    assert "partition 3 of halting is not quarantined" in texts[7]
    assert "did you mean 'ssl_ca_certs'" in texts[8]
    assert "is given twice" in texts[12]
    assert "no-such-password-file" in texts[13]
    assert "is empty" in texts[14]


async def test_a_password_from_the_environment_is_never_shown(
    spawn: Spawn, tls_redis: Tls, app_name: str
) -> None:
    url = tls_redis.url(password=False)
    worker = spawn(
        "ordering",
        url=url,
        env={"RUNNEL_REDIS_PASSWORD": tls_redis.password, "RUNNEL_LOG_LEVEL": "debug"},
    )
    await wait_for(
        lambda: len(worker.acquired("ticks")) == ordering.PARTITIONS, "ready", workers=[worker]
    )
    assert await worker.stop() == 0
    wrong = runnel(
        "send", SEND, '{"key": "k", "seq": 1}',
        env={**process_env(app_name, url), "RUNNEL_REDIS_PASSWORD": f"wrong-{tls_redis.password}"},
    )  # fmt: skip
    assert wrong.returncode == 1
    for text in (worker.stderr(), wrong.stderr, wrong.stdout):
        assert_hidden(text, tls_redis.password, tls_redis.key_passphrase)


async def test_reprs_and_errors_never_show_a_secret(tls_redis: Tls) -> None:
    url = tls_redis.url()
    app = App(name="reprs", redis_url=url)
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    shown = [repr(app), repr(app.settings), str(app.settings), repr(ticks), redact_url(url)]
    unreachable = App(name="down", redis_url=url.replace(str(tls_redis.port), "1"))
    try:
        await unreachable.stream("ticks", record=Tick, partition_by="key").send(
            Tick(key="k", seq=1)
        )
    except RunnelError as exc:
        shown += [str(exc), repr(exc)]
    else:
        raise AssertionError("a send to a closed port succeeded")
    finally:
        await unreachable.close()
    for text in shown:
        assert_hidden(text, tls_redis.password, tls_redis.key_passphrase)
