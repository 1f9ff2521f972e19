"""TLS end to end: a private CA, a client certificate whose key is encrypted, a password.

The server speaks only TLS and refuses clients without a certificate from the test CA
(see ``conftest.py``). A real worker and the CLI reach it with a ``rediss://`` URL whose
query names the CA, the client certificate and key, and the key's passphrase
(``ssl_password``), exactly as ``docs/security.md`` shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from runnel.errors import BackendUnavailable
from tests.kit import needs_tls_key_password

from ..engine.apps import ordering
from ..engine.apps.common import Tick
from ..engine.conftest import Spawn
from ..engine.harness import APPS, process_env, recorded, runnel, wait_for
from .conftest import Tls

pytestmark = needs_tls_key_password


def _client(url: str) -> Redis:
    return Redis.from_url(url, protocol=2)


async def test_a_worker_and_the_cli_work_over_tls_with_a_client_certificate(
    spawn: Spawn, app_name: str, tls_redis: Tls
) -> None:
    url = tls_redis.url()
    worker = spawn("ordering", url=url)
    await wait_for(
        lambda: len(worker.acquired("ticks")) == ordering.PARTITIONS, "ready", workers=[worker]
    )
    app, ticks = ordering.build(app_name, url)
    client = _client(url)
    try:
        await ticks.send(*[Tick(key=f"k{i}", seq=0) for i in range(20)])
        sent = runnel(
            "send",
            f"{APPS}.ordering:ticks",
            '{"key": "cli", "seq": 1}',
            env=process_env(app_name, url),
        )
        assert sent.returncode == 0, sent.stderr
        await wait_for(
            lambda: recorded(client, app_name, "seen", 21), "21 events", workers=[worker]
        )
    finally:
        await app.close()
        await client.aclose()
    assert await worker.stop() == 0
    for text in (worker.stderr(), sent.stdout, sent.stderr):
        assert tls_redis.key_passphrase not in text
        assert tls_redis.password not in text
    assert "ssl_password=***" in worker.stderr()


async def test_the_server_refuses_a_client_without_a_certificate(tls_redis: Tls) -> None:
    url = f"rediss://:{tls_redis.password}@127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={tls_redis.ca}"
    app, ticks = ordering.build("tls-no-cert", url)
    try:
        with pytest.raises(BackendUnavailable):
            await ticks.send(Tick(key="k", seq=1))
    finally:
        await app.close()


async def test_turning_certificate_checks_off_works_but_logs_a_warning(
    spawn: Spawn, tls_redis: Tls
) -> None:
    url = tls_redis.url("&ssl_cert_reqs=none").replace(f"ssl_ca_certs={tls_redis.ca}&", "")
    worker = spawn("ordering", url=url)
    await wait_for(
        lambda: len(worker.acquired("ticks")) == ordering.PARTITIONS, "ready", workers=[worker]
    )
    assert await worker.stop() == 0
    [warning] = [m for m in worker.messages("warning") if "verification is off" in m]
    assert "TLS certificate verification is off (ssl_cert_reqs=none)" in warning
    assert tls_redis.key_passphrase not in worker.stderr()


@pytest.mark.parametrize(
    ("mistake", "named"),
    [
        ("ssl_ca_certs=", "unknown Redis URL option 'ssl_ca_cert' (did you mean 'ssl_ca_certs'?)"),
        ("ssl_ca_certs=/nowhere/", "Redis URL option 'ssl_ca_certs': no such file '/nowhere/"),
        ("/0?", "Redis URL path '/notadb' is not a database number"),
        ("ssl_certfile=", "Redis URL option 'ssl_certfile' has no value"),
    ],
)
async def test_url_mistakes_are_one_line_errors_naming_the_option(
    spawn: Spawn, app_name: str, tls_redis: Tls, tmp_path: Path, mistake: str, named: str
) -> None:
    url = tls_redis.url()
    if mistake == "ssl_ca_certs=":
        url = url.replace("ssl_ca_certs=", "ssl_ca_cert=")
    elif mistake == "ssl_ca_certs=/nowhere/":
        url = url.replace("ssl_ca_certs=", "ssl_ca_certs=/nowhere/")
    elif mistake == "/0?":
        url = url.replace("/0?", "/notadb?")
    else:
        url = url.replace(f"ssl_certfile={tls_redis.client_cert}", "ssl_certfile=")
    sent = runnel(
        "send", f"{APPS}.ordering:ticks", '{"key": "k", "seq": 1}', env=process_env(app_name, url)
    )
    worker = spawn("ordering", url=url)
    assert await worker.exit_code(within=60) == 1
    for output in (sent.stderr, worker.stderr()):
        assert named in output
        assert "Traceback" not in output
        assert len(output.strip().splitlines()) <= 3, output
        assert tls_redis.key_passphrase not in output
        assert tls_redis.password not in output
    assert sent.returncode == 1
