"""Secrets never show: in URLs, settings, reprs, free text and log lines."""

from __future__ import annotations

import json
import logging

import pytest

from runnel import App
from runnel._redact import is_secret_name, redact_url, scrub, url_secrets
from runnel.entrypoints.logs import MESSAGE_LIMIT, ConsoleFormatter, JsonFormatter, bounded
from runnel.errors import Misconfigured
from runnel.settings import Settings

PASSWORD = "s3cr3t-pw"
PASSPHRASE = "key-pass-phrase"


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("password", True),
        ("ssl_password", True),
        ("Password", True),
        ("pass%77ord", True),
        ("passwd", True),
        ("pass", True),
        ("auth_token", True),
        ("API-Key", True),
        ("apikey", True),
        ("client_secret", True),
        ("sslpassphrase", True),
        ("ssl_keyfile", False),
        ("ssl_certfile", False),
        ("ssl_ca_certs", False),
        ("db", False),
        ("username", False),
        ("client_name", False),
        ("socket_keepalive", False),
    ],
)
def test_a_parameter_named_like_a_secret_is_one(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"rediss://app:{PASSWORD}@h:6380/0?ssl_password={PASSPHRASE}&ssl_ca_certs=/ca.pem",
            "rediss://app:***@h:6380/0?ssl_password=***&ssl_ca_certs=/ca.pem",
        ),
        (f"redis://h/0?token={PASSWORD}&db=1", "redis://h/0?token=***&db=1"),
        (f"redis://h/0?api_key={PASSWORD}", "redis://h/0?api_key=***"),
        (f"redis://{PASSWORD}@h/0", "redis://***@h/0"),
        (f"redis://:{PASSWORD}@h/0", "redis://***@h/0"),
        (f"{PASSWORD}@h:6379", "***@h:6379"),  # no scheme: all before "@" may be secret
    ],
)
def test_redact_url_hides_every_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert PASSWORD not in redact_url(url)


def test_a_lone_user_is_shown_when_the_password_is_given_elsewhere() -> None:
    assert redact_url("redis://worker@h/0", user_is_public=True) == "redis://worker@h/0"
    assert url_secrets("redis://worker@h/0", user_is_public=True) == []
    assert url_secrets("redis://worker@h/0") == ["worker"]


def test_url_secrets_are_decoded_as_the_client_decodes_them() -> None:
    assert url_secrets("rediss://u:p%40ss@h/0?ssl_password=a%2Bb&db=1") == ["p@ss", "a+b"]


def test_scrub_masks_every_spelling_of_a_secret() -> None:
    text = "url redis://:p%40ss%2F1@h, form p%40ss%2F1, plain p@ss/1 and pass"
    assert scrub(text, ["p@ss/1"]) == "url redis://:***@h, form ***, plain *** and pass"
    assert scrub("a b c", ["a", "b"]) == "a b c"  # too short to mask meaningfully


def test_settings_app_and_errors_never_show_a_secret() -> None:
    url = f"rediss://app:{PASSWORD}@h:6380/0?ssl_password={PASSPHRASE}"
    settings = Settings(redis_url=url)
    app = App(name="shown", redis_url=url)
    separate = Settings(redis_url="redis://worker@h/0", redis_password=PASSWORD)
    for text in (repr(settings), str(settings), repr(app), repr(separate), str(separate)):
        assert PASSWORD not in text
        assert PASSPHRASE not in text
    assert "redis://worker@h/0" in repr(separate)
    assert sorted(settings.secret_values()) == sorted([PASSWORD, PASSPHRASE])
    assert separate.secret_values() == [PASSWORD]
    with pytest.raises(Misconfigured) as refused:
        App(name="bad", redis_url=f"http://u:{PASSWORD}@h?ssl_password={PASSPHRASE}")
    assert PASSWORD not in str(refused.value)
    assert PASSPHRASE not in str(refused.value)


def test_a_password_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        Settings(redis_url=f"redis://:{PASSWORD}@h/0", redis_password="other")
    with pytest.raises(ValueError, match="given twice"):
        Settings(redis_url=f"redis://h/0?password={PASSWORD}", redis_password="other")
    # ssl_password is the key's passphrase, not the user's password.
    Settings(redis_url=f"rediss://h/0?ssl_password={PASSPHRASE}", redis_password=PASSWORD)


def test_the_password_reaches_the_client_but_no_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNEL_REDIS_PASSWORD", PASSWORD)
    app = App(name="envpw", redis_url="redis://worker@127.0.0.1:1/0")
    client = app.container.redis_client()
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("worker", PASSWORD)
    assert PASSWORD not in repr(app.settings) + repr(app) + repr(client)


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("runnel.x", logging.ERROR, __file__, 1, message, args, info)


@pytest.mark.parametrize("formatter", [ConsoleFormatter, JsonFormatter])
def test_log_lines_are_masked_and_bounded(
    formatter: type[ConsoleFormatter | JsonFormatter],
) -> None:
    try:
        raise ValueError(f"connect redis://:{PASSWORD}@h failed " + "x" * 100_000)
    except ValueError as exc:
        error = exc
    line = formatter([PASSWORD]).format(_record("url %s and %s", PASSWORD, "y" * 50_000, exc=error))
    assert PASSWORD not in line
    assert "***" in line
    assert len(line) < MESSAGE_LIMIT + 40_000
    assert "chars left out" in line
    if formatter.__name__ == "JsonFormatter":
        assert json.loads(line)["level"] == "error"


def test_bounded_keeps_the_start_and_the_end() -> None:
    text = "start-" + "m" * 1000 + "-end"
    kept = bounded(text, 100)
    assert kept.startswith("start-")
    assert kept.endswith("-end")
    assert "(910 of 1010 chars left out)" in kept
    assert bounded("short", 100) == "short"
