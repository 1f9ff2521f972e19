"""Settings: the DESIGN.md §3 defaults, RUNNEL_ environment variables, App kwargs, URLs."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import pytest
from dependency_injector import providers
from pydantic import ValidationError

from runnel import App, ExceptionPolicy, Record
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.serializers import OrjsonSerializer, serializer_named
from runnel.container import backend_kind, memory_name
from runnel.errors import Misconfigured
from runnel.runtime.worker import Worker
from runnel.settings import Settings
from tests.kit import unique

PASSWORD = "s3cret-Pa55"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without RUNNEL_* variables, whatever the shell exported."""
    for name in list(os.environ):
        if name.upper().startswith("RUNNEL_"):
            monkeypatch.delenv(name)


class Click(Record):
    user_id: int


async def noop(events: object) -> None:
    pass


def add_processor(app: App, **overrides: Any) -> None:
    """Register a processor called ``proc`` with ``overrides`` on a fresh stream."""
    stream = app.stream(unique(), record=Click, partition_by="user_id")
    app.processor(stream, name="proc", **overrides)(noop)


# --------------------------------------------------------------------------- defaults


def test_defaults_match_the_design_table() -> None:
    s = Settings()

    assert s.redis_url == "redis://127.0.0.1:6379"
    assert s.log_format == "console"
    assert s.log_level == "info"
    assert s.autodiscover is None
    assert s.timezone == "UTC"
    assert s.leadership_poll_interval == 4000  # ms
    assert s.testing is False
    assert s.default_read_timeout == 2000  # ms
    assert s.default_assignment_attempts == 32
    assert s.default_grace_period == 8
    assert s.default_join_delay == 2
    assert s.default_partition_count == 16
    assert s.default_partition_size == 50_000
    assert s.default_compressor is None
    assert s.default_hasher == "xxh64"
    assert s.default_exception_policy is ExceptionPolicy.HALT
    assert s.default_prefetch_count == 8
    assert s.default_prefetch_max == 128
    assert s.default_assignment_sleep == 2
    assert s.default_pool_size == 16
    assert s.default_trim_mode == "lossless"


def test_the_default_serializer_is_json_through_orjson_when_installed() -> None:
    serializer = serializer_named(Settings().default_serializer)

    assert isinstance(serializer, OrjsonSerializer)
    assert serializer.name == "json"


def test_the_default_lock_expiry_lets_a_killed_workers_partitions_resume_within_15s() -> None:
    s = Settings()

    assert s.default_lock_expiry + s.default_assignment_sleep < 15


# --------------------------------------------------------------------------- environment


def test_runnel_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNEL_REDIS_URL", "redis://cache:6380/3")
    monkeypatch.setenv("RUNNEL_LOG_LEVEL", "debug")
    monkeypatch.setenv("RUNNEL_DEFAULT_PARTITION_COUNT", "7")
    monkeypatch.setenv("RUNNEL_DEFAULT_COMPRESSOR", "lz4")
    monkeypatch.setenv("RUNNEL_DEFAULT_EXCEPTION_POLICY", "quarantine")
    monkeypatch.setenv("RUNNEL_TESTING", "true")

    with pytest.warns(DeprecationWarning, match="testing setting"):
        s = Settings()

    assert s.redis_url == "redis://cache:6380/3"
    assert s.log_level == "debug"
    assert s.default_partition_count == 7
    assert s.default_compressor == "lz4"
    assert s.default_exception_policy is ExceptionPolicy.QUARANTINE
    assert s.testing is True


@pytest.mark.parametrize(
    "variable",
    [
        "runnel_default_partition_count",
        "Runnel_Default_Partition_Count",
        "RUNNEL_default_PARTITION_count",
    ],
)
def test_environment_variable_names_are_case_insensitive(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "5")

    assert Settings().default_partition_count == 5
    assert App(name=unique(), redis_url="memory://").settings.default_partition_count == 5


def test_app_kwargs_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNEL_REDIS_URL", "redis://from-env:6379")
    monkeypatch.setenv("RUNNEL_DEFAULT_PARTITION_COUNT", "7")
    monkeypatch.setenv("RUNNEL_AUTODISCOVER", "env/**/streams.py")
    monkeypatch.setenv("RUNNEL_LOG_FORMAT", "json")

    app = App(
        name=unique(),
        redis_url="memory://kwargs",
        autodiscover="kw/**/streams.py",
        default_partition_count=3,
    )

    assert app.settings.redis_url == "memory://kwargs"
    assert app.settings.autodiscover == "kw/**/streams.py"
    assert app.settings.default_partition_count == 3
    assert app.settings.log_format == "json"  # not given as a kwarg: the environment's


def test_an_app_without_a_redis_url_kwarg_uses_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNNEL_REDIS_URL", "memory://from-env")

    assert App(name=unique()).settings.redis_url == "memory://from-env"


def test_stream_and_processor_arguments_beat_app_settings() -> None:
    app = App(name=unique(), redis_url="memory://", default_partition_count=3)
    stream = app.stream("clicks", record=Click, partition_by="user_id", partition_count=9)
    app.processor(stream, prefetch_count=1, prefetch_max=16, lock_expiry=4)(noop)

    spec = app.processors["noop"]
    assert stream.partition_count == 9
    assert spec.prefetch_count == 1
    assert spec.prefetch_max == 16
    assert spec.lock_expiry == 4.0
    assert spec.assignment_attempts == 32  # untouched: the app's default


def test_a_processors_pool_size_is_accepted_with_a_warning_and_ignored() -> None:
    app = App(name=unique(), redis_url="memory://")
    stream = app.stream("clicks", record=Click, partition_by="user_id")

    with pytest.warns(DeprecationWarning, match="pool_size .* ignored") as warned:
        app.processor(stream, pool_size=2)(noop)

    assert warned[0].filename == __file__  # it points at the registration
    assert "noop" in app.processors


# --------------------------------------------------------------------------- explicit zeros


def test_explicit_zero_settings_stay_zero() -> None:
    s = Settings(
        default_join_delay=0,
        default_assignment_sleep=0,
        default_grace_period=0,
        default_send_wait_timeout=0,
    )

    assert s.default_join_delay == 0
    assert s.default_assignment_sleep == 0
    assert s.default_grace_period == 0
    assert s.default_send_wait_timeout == 0


def test_explicit_zero_environment_values_stay_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNEL_DEFAULT_JOIN_DELAY", "0")
    monkeypatch.setenv("RUNNEL_DEFAULT_GRACE_PERIOD", "0.0")

    s = Settings()

    assert s.default_join_delay == 0
    assert s.default_grace_period == 0


def test_explicit_zero_app_settings_reach_the_processor() -> None:
    app = App(
        name=unique(),
        redis_url="memory://",
        default_join_delay=0,
        default_assignment_sleep=0,
        default_grace_period=0,
    )
    add_processor(app)

    spec = app.processors["proc"]
    assert (spec.join_delay, spec.assignment_sleep, spec.grace_period) == (0, 0, 0)


def test_explicit_zero_processor_overrides_beat_nonzero_app_settings() -> None:
    app = App(name=unique(), redis_url="memory://")
    add_processor(app, join_delay=0, assignment_sleep=0, grace_period=0)

    spec = app.processors["proc"]
    assert (spec.join_delay, spec.assignment_sleep, spec.grace_period) == (0, 0, 0)


# --------------------------------------------------------------------------- invalid settings


@pytest.mark.parametrize(
    ("setting", "value", "mentioned"),
    [
        ("default_partition_count", 0, "default_partition_count"),
        ("default_lock_expiry", 0, "default_lock_expiry"),
        ("log_level", "verbose", "log_level"),
        ("no_such_setting", 1, "no_such_setting"),
    ],
)
def test_an_invalid_app_setting_is_misconfigured_naming_it(
    setting: str, value: object, mentioned: str
) -> None:
    settings: dict[str, Any] = {setting: value}

    with pytest.raises(Misconfigured, match=mentioned) as caught:
        App(name="shop", redis_url="memory://", **settings)

    assert isinstance(caught.value, ValueError)
    assert "invalid settings for app 'shop'" in str(caught.value)


def test_runnel_timezone_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNNEL_TIMEZONE", "Europe/Paris")
    app = App(name=unique(), redis_url="memory://")

    @app.crontab("45 17 * * *")
    async def every_evening() -> None:
        pass

    assert app.settings.timezone == "Europe/Paris"
    assert app.tasks["every_evening"].timezone == "Europe/Paris"


def test_an_unknown_timezone_is_rejected_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match=r"unknown timezone 'Mars/Olympus': expected an IANA"):
        Settings(timezone="Mars/Olympus")

    monkeypatch.setenv("RUNNEL_TIMEZONE", "Nowhere/Atlantis")
    with pytest.raises(Misconfigured, match=r"unknown timezone 'Nowhere/Atlantis'"):
        App(name=unique(), redis_url="memory://")


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{PASSWORD}@host:6379/0",
        f"postgres://:{PASSWORD}@db",
        f"localhost:{PASSWORD}@6379",
    ],
)
def test_an_unsupported_url_scheme_names_the_schemes_and_hides_the_password(url: str) -> None:
    with pytest.raises(ValidationError) as direct:
        Settings(redis_url=url)
    with pytest.raises(Misconfigured) as via_app:
        App(name="shop", redis_url=url)

    for message in (str(direct.value), str(via_app.value)):
        assert "unsupported backend URL" in message
        assert "unix://, redis+cluster://, redis+sentinel:// or memory://[name]" in message
        assert PASSWORD not in message


def test_an_unsupported_url_from_the_environment_hides_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNNEL_REDIS_URL", f"ftp://admin:{PASSWORD}@files")

    with pytest.raises(ValidationError) as caught:
        Settings()

    assert "'ftp://admin:***@files'" in str(caught.value)
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379",
        "rediss://cache.example.com:6380/1",
        "unix:///run/redis.sock?db=2",
        "REDIS://upper-case-scheme",
        "memory://",
        "memory://x",
    ],
)
def test_supported_urls_are_accepted(url: str) -> None:
    assert Settings(redis_url=url).redis_url == url


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        (f"redis://user:{PASSWORD}@host:6379/0", "redis://user:***@host:6379/0"),
        (f"redis://:{PASSWORD}@host", "redis://***@host"),
        (f"rediss://default:{PASSWORD}@h:6380", "rediss://default:***@h:6380"),
        (f"redis://user:{PASSWORD}@with-at@host", "redis://user:***@host"),
        (f"unix://:{PASSWORD}@/run/redis.sock?db=1", "unix://***@/run/redis.sock?db=1"),
        ("redis://host:6379", "redis://host:6379"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("memory://x", "memory://x"),
        (f"redis://h:6379/0?password={PASSWORD}", "redis://h:6379/0?password=***"),
        (f"unix:///run/redis.sock?password={PASSWORD}", "unix:///run/redis.sock?password=***"),
        (
            f"unix:///run/redis.sock?db=2&username=bob&password={PASSWORD}&health=1",
            "unix:///run/redis.sock?db=2&username=bob&password=***&health=1",
        ),
        (f"rediss://h?Password={PASSWORD}", "rediss://h?Password=***"),
        (f"redis://h?pass%77ord={PASSWORD}", "redis://h?pass%77ord=***"),
        (f"redis://h/0?password=a@{PASSWORD}", "redis://h/0?password=***"),
        (
            f"redis://user:{PASSWORD}@h/0?password={PASSWORD}",
            "redis://user:***@h/0?password=***",
        ),
        # Anything named like a secret is hidden; other options are shown.
        ("redis://h/0?passwords=x&db=1", "redis://h/0?passwords=***&db=1"),
        ("redis://h/0?client_name=me&db=1", "redis://h/0?client_name=me&db=1"),
    ],
)
def test_redacted_url_hides_the_password(url: str, redacted: str) -> None:
    assert Settings(redis_url=url).redacted_url() == redacted


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://user:{PASSWORD}@host:6379/0", "redis://user:***@host:6379/0"),
        (f"redis://host:6379/0?password={PASSWORD}", "redis://host:6379/0?password=***"),
    ],
)
def test_the_password_shows_in_no_repr(url: str, shown: str) -> None:
    texts = [repr(Settings(redis_url=url)), repr(App(name="shop", redis_url=url))]

    for text in texts:
        assert PASSWORD not in text
        assert shown in text


def test_an_unsupported_url_hides_a_password_in_its_query_string() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(redis_url=f"http://host/?password={PASSWORD}")

    assert "'http://host/?password=***'" in str(caught.value)
    assert PASSWORD not in str(caught.value)


async def test_the_worker_start_up_log_hides_a_password_in_the_query_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    name = unique()
    app = App(name=name, redis_url=f"memory://{name}?password={PASSWORD}")
    app.container.clock.override(providers.Object(SimulatedClock(autojump=True)))
    add_processor(app)
    worker = Worker(app.plan(), install_signals=False)

    with caplog.at_level(logging.INFO, logger="runnel"):
        run = asyncio.create_task(worker.run())
        await worker.started.wait()
        worker.request_stop()
        assert await run == 0

    assert f"on memory://{name}?password=***" in caplog.text
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("url", "name"),
    [("memory://", "default"), ("memory://x", "x"), ("memory://tests-1", "tests-1")],
)
def test_memory_urls_name_their_broker(url: str, name: str) -> None:
    assert backend_kind(Settings(redis_url=url).redis_url) == "memory"
    assert memory_name(url) == name


def test_the_testing_setting_is_accepted_with_a_warning_and_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.warns(DeprecationWarning, match="testing setting .* ignored"):
        assert Settings(testing=True).testing is True
    monkeypatch.setenv("RUNNEL_TESTING", "1")
    with pytest.warns(DeprecationWarning, match="runnel.testing.Harness"):
        Settings()
