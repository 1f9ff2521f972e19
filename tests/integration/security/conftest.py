"""Servers for the security tests: a plain redis-server whose ACL users the tests create,
and one that speaks only TLS with a private CA and requires client certificates.

Both are started from the test server binary (``tests/servers.py``: ``redis-server`` unless
``RUNNEL_TEST_REDIS_SERVER`` names another) on free local ports, without persistence, for
this package's tests only (ACL users and the ACL log are server-wide). A build without TLS
skips the TLS tests.
Throwaway certificates are made with the ``openssl`` binary: a CA, a server certificate
for 127.0.0.1/localhost, and a client certificate whose key is encrypted with a passphrase
(the ``ssl_password`` of the URL).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from tests.servers import ServerUnavailable, free_port, server_binary, start_process, stop_process

from ..engine.conftest import app_name, spawn  # noqa: F401 - fixtures shared with engine tests

_STARTUP = 15.0


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _server(workdir: Path, port: int, options: Sequence[str]) -> Iterator[None]:
    """The test server binary (``tests/servers.py``) on ``port``, with ``options`` last
    (a later ``--port 0`` turns the plain port off)."""
    try:
        binary = server_binary()
    except ServerUnavailable as exc:
        pytest.skip(f"no server for the security tests: {exc}")
    process = start_process(binary, port, workdir, options)
    try:
        deadline = time.monotonic() + _STARTUP
        while not _listening(port):
            if process.poll() is not None:
                log = (workdir / "server.log").read_text(errors="replace")[-2000:]
                pytest.skip(f"{binary.name} cannot run this way ({process.returncode}): {log}")
            if time.monotonic() > deadline:
                pytest.fail(f"{binary.name} did not listen on {port} in time")
            time.sleep(0.05)
        yield
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def acl_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain redis-server (default user without password) for ACL tests."""
    workdir = tmp_path_factory.mktemp("acl-redis")
    port = free_port()
    with _server(workdir, port, []):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def admin(acl_redis_url: str) -> AsyncIterator[Redis]:
    """A client of the ACL server as its default (all-powerful) user."""
    client = Redis.from_url(acl_redis_url, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


@dataclass(frozen=True)
class Tls:
    """A TLS-only redis-server and the files a client needs to reach it."""

    port: int
    ca: Path
    client_cert: Path
    client_key: Path
    """Encrypted with :attr:`key_passphrase`."""
    key_passphrase: str
    password: str
    """Password of the ``default`` user (``requirepass``)."""

    def url(self, extra: str = "", password: bool = True) -> str:
        """A rediss:// URL with CA, client certificate and key (and the passphrase)."""
        auth = f":{self.password}@" if password else ""
        query = (
            f"ssl_ca_certs={self.ca}&ssl_certfile={self.client_cert}"
            f"&ssl_keyfile={self.client_key}&ssl_password={self.key_passphrase}"
        )
        return f"rediss://{auth}127.0.0.1:{self.port}/0?{query}{extra}"


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"openssl {' '.join(args[:2])} failed: {done.stderr[-2000:]}")


def make_certificates(directory: Path, passphrase: str) -> tuple[Path, Path, Path, Path, Path]:
    """A private CA, a server certificate (127.0.0.1, localhost) and a client certificate
    with an encrypted key; returns (ca, server cert, server key, client cert, client key)."""
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make throwaway certificates")
    d = directory
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=runnel test CA", cwd=d)  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=127.0.0.1", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
             cwd=d)  # fmt: skip
    _openssl("genrsa", "-aes256", "-passout", f"pass:{passphrase}", "-out", "client.key", "2048",
             cwd=d)  # fmt: skip
    _openssl("req", "-new", "-key", "client.key", "-passin", f"pass:{passphrase}",
             "-out", "client.csr", "-subj", "/CN=runnel test client", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "client.crt", "-days", "2", cwd=d)  # fmt: skip
    return d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    """A redis-server that speaks only TLS, requires a client certificate from the test CA,
    and has a password."""
    workdir = tmp_path_factory.mktemp("tls-redis")
    passphrase, password = f"kp-{uuid4().hex}", f"pw-{uuid4().hex}"
    ca, cert, key, client_cert, client_key = make_certificates(workdir, passphrase)
    if not hasattr(ssl, "PROTOCOL_TLS_CLIENT"):  # pragma: no cover - every CPython has it
        pytest.skip("Python without TLS support")
    port = free_port()
    options = [
        "--port", "0",
        "--tls-port", str(port),
        "--tls-cert-file", str(cert),
        "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "yes",
        "--requirepass", password,
    ]  # fmt: skip
    with _server(workdir, port, options):
        yield Tls(port, ca, client_cert, client_key, passphrase, password)
