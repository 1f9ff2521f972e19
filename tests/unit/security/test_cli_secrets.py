"""The CLI takes the Redis password from a file or the environment, and prints the ACL."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from runnel.adapters.redis.acl import acl_rules
from runnel.entrypoints.cli import SECRETS, cli

from ..test_cli import UserModule

SECRET = "file-pass-w0rd"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture(autouse=True)
def forget_secrets() -> None:
    SECRETS.clear()


def test_the_password_file_sets_the_password_without_its_line_break(
    user_module: UserModule, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(SECRET + "\n")
    done = run(
        "send", user_module.ref("actions"), '{"user_id": 1, "type": "x"}',
        "--redis-password-file", str(secret),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    password = user_module.actions.app.settings.redis_password
    assert password is not None
    assert password.get_secret_value() == SECRET
    assert SECRET not in done.output


def test_the_password_file_can_come_from_the_environment(
    user_module: UserModule, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(SECRET)
    done = run(
        "send", user_module.ref("actions"), '{"user_id": 1, "type": "x"}',
        env={"RUNNEL_REDIS_PASSWORD_FILE": str(secret)},
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    password = user_module.actions.app.settings.redis_password
    assert password is not None
    assert password.get_secret_value() == SECRET


def test_a_password_given_twice_is_one_clear_error_showing_neither(
    user_module: UserModule, tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text(SECRET)
    done = run(
        "send", user_module.ref("actions"), "{}", "--redis-password-file", str(secret),
        "--redis-url", "redis://:url-pass-w0rd@127.0.0.1:1/0",
    )  # fmt: skip
    assert done.exit_code == 1
    assert "the Redis password is given twice" in done.output
    assert SECRET not in done.output
    assert "url-pass-w0rd" not in done.output


def test_an_unreadable_password_file_is_named(user_module: UserModule, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    done = run("send", user_module.ref("actions"), "{}", "--redis-password-file", str(missing))
    assert done.exit_code == 2
    assert str(missing) in done.output
    empty = tmp_path / "empty"
    empty.write_text("\r\n")
    done = run("send", user_module.ref("actions"), "{}", "--redis-password-file", str(empty))
    assert done.exit_code == 1
    assert f"the Redis password file '{empty}' is empty" in done.output


def test_errors_mask_every_secret_the_command_has_seen(user_module: UserModule) -> None:
    url = "http://user:url-pass-w0rd@h/0?ssl_password=key-pass-w0rd"
    done = run("send", user_module.ref("actions"), "{}", "--redis-url", url)
    assert done.exit_code == 1
    assert "unsupported backend URL" in done.output
    assert "url-pass-w0rd" not in done.output
    assert "key-pass-w0rd" not in done.output


@pytest.mark.parametrize("role", ["sender", "worker", "admin"])
def test_runnel_acl_prints_the_least_privilege_user(role: str) -> None:
    done = run("acl", "shop", "--role", role, "--user", "shop-svc")
    assert done.exit_code == 0, done.output
    words = shlex.split(done.output)
    assert words[:6] == ["ACL", "SETUSER", "shop-svc", "reset", "on", "><password>"]
    assert words[6:] == acl_rules("shop", role)  # type: ignore[arg-type]  # a Role


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--cluster"], {"RUNNEL_REDIS_URL": ""}),
        (["--redis-url", "redis+cluster://10.0.0.1:7000,10.0.0.2:7000"], None),
        ([], {"RUNNEL_REDIS_URL": "rediss+cluster://10.0.0.1:7000"}),
    ],
)
def test_runnel_acl_prints_cluster_rules_for_a_cluster_and_says_where_to_run_them(
    args: list[str], env: dict[str, str] | None
) -> None:
    done = run("acl", "shop", "--role", "worker", *args, env=env)
    assert done.exit_code == 0, done.output
    assert shlex.split(done.stdout)[6:] == acl_rules("shop", "worker", cluster=True)
    assert "every primary and every replica" in done.stderr


def test_runnel_acl_prints_single_server_rules_for_a_plain_url() -> None:
    done = run("acl", "shop", "--redis-url", "redis://10.0.0.1:6379/0")
    assert shlex.split(done.stdout)[6:] == acl_rules("shop", "worker")
    assert done.stderr == ""


def test_runnel_acl_refuses_what_is_not_an_app_name() -> None:
    done = run("acl", "shop*")
    assert done.exit_code == 2
    assert "is not an app name" in done.output
