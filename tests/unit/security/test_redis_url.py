"""Redis URL mistakes are one-line errors naming the option, before any I/O."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runnel import App
from runnel.adapters.redis._url import check_url, known_options
from runnel.adapters.redis.client import make_client
from runnel.errors import Misconfigured
from tests.kit import needs_tls_key_password


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("rediss://h/0?ssl_ca_cert=/ca.pem", "option 'ssl_ca_cert' (did you mean 'ssl_ca_certs'?)"),
        ("redis://h/0?sslcertreqs=none", "unknown Redis URL option 'sslcertreqs'"),
        ("redis://h/0?ssl_ca_certs=/ca.pem", "'ssl_ca_certs' needs a rediss:// (TLS) URL"),
        ("rediss://h/0?ssl_ca_certs=/no/ca.pem", "'ssl_ca_certs': no such file '/no/ca.pem'"),
        pytest.param(
            "rediss://h/0?ssl_ca_path=/no/such/dir", "'ssl_ca_path': no such directory",
            marks=needs_tls_key_password,
        ),
        ("redis://h/notadb", "Redis URL path '/notadb' is not a database number"),
        ("redis://h/-1", "Redis URL path '/-1' is not a database number"),
        ("redis://h?db=two", "Redis URL option 'db' must be a database number, not 'two'"),
        ("redis://h/0?socket_timeout=", "Redis URL option 'socket_timeout' has no value"),
        ("redis://h/0?db=1&db=2", "Redis URL option 'db' is given 2 times"),
        ("rediss://h/0?ssl_cert_reqs=never", "'ssl_cert_reqs' must be none, optional or required"),
        ("redis://h/0?socket_keepalive=maybe", "'socket_keepalive' must be true or false"),
        ("redis://h/0?decode_responses=yes", "'decode_responses' cannot be set"),
        ("redis://h/0?protocol=3", "'protocol' cannot be set"),
        ("redis://h:port/0", "cannot use Redis URL redis://h:port/0"),
    ],
)  # fmt: skip
def test_a_url_mistake_is_one_line_naming_it(url: str, message: str) -> None:
    with pytest.raises(Misconfigured) as refused:
        check_url(url)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_good_urls_pass(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    for url in (
        "redis://127.0.0.1:6379",
        "redis://u:p@h:6379/3?socket_timeout=2.5&client_name=me",
        f"rediss://h:6380/0?ssl_ca_certs={ca}&ssl_cert_reqs=required&ssl_check_hostname=true",
        "unix:///run/redis.sock?db=2&password=x",
    ):
        check_url(url)


@needs_tls_key_password
def test_turning_tls_checks_off_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="runnel"):
        check_url("rediss://h/0?ssl_cert_reqs=none&ssl_password=secret-passphrase")
        check_url("rediss://h/0?ssl_check_hostname=false")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "TLS certificate verification is off (ssl_cert_reqs=none)" in messages[0]
    assert "TLS host name checking is off" in messages[1]
    assert "secret-passphrase" not in " ".join(messages)


def test_the_client_is_not_built_from_a_bad_url_and_the_error_hides_secrets() -> None:
    with pytest.raises(Misconfigured, match="ssl_ca_cert'") as refused:
        make_client("rediss://u:pw-123@h/0?ssl_ca_cert=/x&ssl_password=kp-456", pool_size=1)
    assert "pw-123" not in str(refused.value)
    assert "kp-456" not in str(refused.value)
    app = App(name="badurl", redis_url="redis://h/notadb")
    with pytest.raises(Misconfigured, match="not a database number"):
        _ = app.backend


@needs_tls_key_password
def test_every_known_option_is_accepted_by_the_installed_client() -> None:
    # The allow-list is filtered by what redis-py's pool and connection classes take.
    assert {"ssl_ca_certs", "ssl_password", "ssl_certfile", "ssl_keyfile"} <= known_options(
        "rediss"
    )
    assert "socket_timeout" in known_options("unix")
    assert not {o for o in known_options("redis") if o.startswith("ssl_")}


def test_an_option_the_installed_client_cannot_take_is_named_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As with redis-py releases whose asyncio client takes no TLS key passphrase.
    from runnel.adapters.redis import _url

    older = frozenset(known_options("rediss") - {"ssl_password"})
    monkeypatch.setattr(_url, "known_options", lambda scheme: older)
    with pytest.raises(Misconfigured) as refused:
        check_url("rediss://h/0?ssl_password=kp-456")
    message = str(refused.value)
    assert "option 'ssl_password' is not supported by the installed redis-py" in message
    assert "did you mean" not in message
    assert "kp-456" not in message
