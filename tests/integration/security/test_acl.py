"""Least privilege: the ACL of docs/security.md, tested on a real server.

A worker, a sender and an operator each run as their own Redis user, made from the line
``runnel acl`` prints (the same as in docs/security.md). Everything a worker does (fetch,
acknowledge, dead-letter, lead, tick a leader timer, stop) works and the server's ACL log
records no refusal for those users; two apps on one server cannot touch each other's
keys; and a user that lacks a permission gets one clear error naming it, never a worker
that runs idle.
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis
from redis.exceptions import NoPermissionError

from runnel.adapters.redis.acl import ROLES

from ..engine.apps.common import Tick, poison_key, results_key
from ..engine.harness import REPO, WorkerProcess, process_env, runnel, wait_for
from .apps import guarded

APP = "tests.integration.security.apps.guarded"
DOCS = REPO / "docs" / "security.md"


async def execute(client: Redis, *words: str) -> object:
    """One raw command (redis-py leaves ``execute_command`` unannotated)."""
    return await client.execute_command(*words)  # type: ignore[no-untyped-call]


async def make_user(admin: Redis, app: str, role: str, password: str) -> str:
    """Create the user ``runnel acl`` describes for ``app`` and ``role``; its name."""
    done = runnel("acl", app, "--role", role, env=process_env(app, "redis://unused"))
    assert done.returncode == 0, done.stderr
    words = shlex.split(done.stdout.replace("<password>", password))
    assert words[:2] == ["ACL", "SETUSER"]
    await execute(admin, *words)
    return words[2]


def user_url(base: str, user: str) -> str:
    """``base`` with a user name and no password (the password goes elsewhere)."""
    return base.replace("redis://", f"redis://{user}@", 1)


async def refusals(admin: Redis, *users: str) -> list[dict[str, Any]]:
    """The ACL log entries of ``users`` (what the server refused them), but for redis-py's
    ``CLIENT SETINFO`` on Redis 7.2 and later, which it sends on connect and whose refusal
    it ignores (docs/security.md: grant ``+client|setinfo`` there to keep the log quiet)."""
    entries = await admin.acl_log(count=1000)
    return [
        e
        for e in entries
        if _text(e.get("username")) in users and _text(e.get("object")) != "client|setinfo"
    ]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def seen(admin: Redis, app: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in await admin.lrange(results_key(app, "seen"), 0, -1)]


async def test_the_documented_acls_run_a_worker_a_sender_and_an_operator_with_no_refusal(
    admin: Redis, acl_redis_url: str, tmp_path: Path
) -> None:
    app = f"a{uuid4().hex[:8]}"
    password = f"pw-{uuid4().hex}"
    worker_user = await make_user(admin, app, "worker", password)
    sender_user = await make_user(admin, app, "sender", password)
    admin_user = await make_user(admin, app, "admin", password)
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    url = user_url(acl_redis_url, worker_user)
    # The password comes from a file: it appears in no command line (ps) and no URL.
    argv = [sys.executable, "-m", "runnel", "worker", f"{APP}:app", "--redis-url", url,
            "--redis-password-file", str(secret)]  # fmt: skip
    proc = WorkerProcess(argv, process_env(app, url, {"RESULTS_URL": acl_redis_url}), tmp_path, "w")
    try:
        await wait_for(lambda: len(proc.acquired("ticks")) == 2, "ready", workers=[proc])
        await admin.sadd(poison_key(app), "k1:2")
        send_env = process_env(
            app, user_url(acl_redis_url, sender_user), {"RUNNEL_REDIS_PASSWORD": password}
        )
        for key, seq in (("k0", 1), ("k1", 2), ("k1", 3)):
            sent = runnel(
                "send", f"{APP}:ticks", json.dumps({"key": key, "seq": seq}), env=send_env
            )
            assert sent.returncode == 0, sent.stderr

        async def done() -> bool:
            return (
                len(await seen(admin, app)) == 2 and await admin.llen(results_key(app, "beat")) >= 2
            )

        await wait_for(done, "two ticks processed and two leader beats", workers=[proc])
        assert await proc.stop() == 0
    finally:
        proc.kill()
    assert sorted((s["key"], s["seq"]) for s in await seen(admin, app)) == [("k0", 1), ("k1", 3)]
    [(_, dead)] = await admin.xrange(f"__strm:{app}.ticks.dead.1") or []
    assert (dead or {})[b"__error_type"] == b"ValueError"
    # The operator resets the processor (a worker could not: no XGROUP DESTROY).
    reset_env = process_env(
        app, user_url(acl_redis_url, admin_user), {"RUNNEL_REDIS_PASSWORD": password}
    )
    reset = runnel("processor", "reset", f"{APP}:proc", env=reset_env)
    assert reset.returncode == 0, reset.stderr
    assert await refusals(admin, worker_user, sender_user, admin_user) == []
    assert password not in proc.stderr() + sent.stderr + sent.stdout + reset.stderr


async def test_a_worker_user_may_not_reset_a_processor_and_is_told_why(
    admin: Redis, acl_redis_url: str
) -> None:
    app = f"a{uuid4().hex[:8]}"
    password = f"pw-{uuid4().hex}"
    user = await make_user(admin, app, "worker", password)
    existing = guarded.build(app, acl_redis_url)
    try:
        await existing.streams["ticks"].send(Tick(key="k0", seq=1))
    finally:
        await existing.close()
    env = process_env(app, user_url(acl_redis_url, user), {"RUNNEL_REDIS_PASSWORD": password})
    reset = runnel("processor", "reset", f"{APP}:proc", env=env)
    assert reset.returncode == 1
    assert "xgroup|destroy" in reset.stderr
    assert f"__strm:{app}.ticks.0" in reset.stderr
    assert "Traceback" not in reset.stderr
    assert password not in reset.stderr


async def test_two_apps_on_one_redis_are_isolated_by_their_acls(
    admin: Redis, acl_redis_url: str
) -> None:
    mine = f"i{uuid4().hex[:6]}"
    theirs = f"{mine}2"  # the name the tempting pattern ~__*myapp* would also match
    password = f"pw-{uuid4().hex}"
    for app in (mine, theirs):
        await make_user(admin, app, "admin", password)
    their_app = guarded.build(theirs, acl_redis_url)
    try:
        await their_app.streams["ticks"].send(Tick(key="k0", seq=1))
    finally:
        await their_app.close()
    me = Redis.from_url(acl_redis_url, username=f"{mine}-admin", password=password, protocol=2)
    try:
        probes = {
            "read": ("XRANGE", f"__strm:{theirs}.ticks.0", "-", "+"),
            "read lock": ("GET", f"__lock:{theirs}.ticks.proc.0"),
            "write": ("XADD", f"__strm:{theirs}.ticks.0", "*", "data", "{}"),
            "reset": ("XGROUP", "DESTROY", f"__strm:{theirs}.ticks.0", "proc"),
            "quarantine": ("HSET", f"__quar:{theirs}.ticks.proc", "0", "{}"),
            "lead": ("SET", f"__lead:{theirs}", "me"),
        }
        for what, command in probes.items():
            try:
                await execute(me, *command)
            except NoPermissionError:
                continue
            raise AssertionError(f"{mine}'s user could {what} {theirs}'s keys: {command}")
        assert await execute(me, "XLEN", f"__strm:{mine}.ticks.0") == 0  # its own: yes
    finally:
        await me.aclose()
    # Through runnel too: one app's user cannot send to, or reset, the other app.
    env = process_env(
        theirs, user_url(acl_redis_url, f"{mine}-admin"), {"RUNNEL_REDIS_PASSWORD": password}
    )
    sent = runnel("send", f"{APP}:ticks", '{"key": "k0", "seq": 2}', env=env)
    reset = runnel("processor", "reset", f"{APP}:proc", "--force", env=env)
    for done in (sent, reset):
        assert done.returncode == 1
        assert "may not run" in done.stderr, done.stderr
        assert f":{theirs}." in done.stderr  # the refused key is named
    assert await admin.xlen(f"__strm:{theirs}.ticks.0") == 1
    assert [g["name"] for g in await admin.xinfo_groups(f"__strm:{theirs}.ticks.0")] == [b"proc"]
    # The pattern the docs warn about would not have isolated them.
    await admin.acl_setuser(f"{mine}-naive", enabled=True, passwords=[f"+{password}"],
                            keys=[f"~__*{mine}*"], commands=["+xadd"])  # fmt: skip
    naive = Redis.from_url(acl_redis_url, username=f"{mine}-naive", password=password, protocol=2)
    try:
        await naive.xadd(f"__strm:{theirs}.ticks.0", {"data": "{}"})
    finally:
        await naive.aclose()


def test_docs_security_md_shows_the_acl_runnel_acl_prints() -> None:
    text = DOCS.read_text()
    for role in ROLES:
        done = runnel("acl", "myapp", "--role", role, env=process_env("x", "redis://unused"))
        assert done.returncode == 0
        line = done.stdout.strip()
        assert line in text, f"docs/security.md lacks the {role} ACL:\n{line}"
    assert re.search(r"~__\*:myapp\.\* ~__\*:myapp\b", text)


def worker_process(
    acl_redis_url: str, app: str, user: str, password: str, tmp_path: Path, label: str
) -> WorkerProcess:
    """``runnel worker`` for the guarded app as ``user`` (password from the environment)."""
    url = user_url(acl_redis_url, user)
    argv = [sys.executable, "-m", "runnel", "worker", f"{APP}:app", "--redis-url", url]
    env = process_env(app, url, {"RESULTS_URL": acl_redis_url, "RUNNEL_REDIS_PASSWORD": password})
    return WorkerProcess(argv, env, tmp_path, label)


async def test_a_worker_whose_user_lacks_a_command_refuses_to_start_naming_it(
    admin: Redis, acl_redis_url: str, tmp_path: Path
) -> None:
    # A reasonable-looking category ACL: it lacks TIME (acquire.lua seeds epochs from it),
    # which the old worker found only in a silent retry loop while processing nothing.
    app, password = f"c{uuid4().hex[:8]}", f"pw-{uuid4().hex}"
    user = f"{app}-categories"
    await execute(admin,
        "ACL", "SETUSER", user, "on", f">{password}", f"~__*:{app}.*", f"~__*:{app}",
        "+@read", "+@write", "+@scripting", "+@transaction", "+@connection", "-@dangerous",
    )  # fmt: skip
    worker = worker_process(acl_redis_url, app, user, password, tmp_path, "categories")
    try:
        assert await worker.exit_code(within=30) == 1
    finally:
        worker.kill()
    [critical] = worker.messages("critical")
    assert "PermissionDenied" in critical
    assert f"Redis user {user!r} may not run what a worker needs: TIME" in critical
    assert "docs/security.md" in critical
    assert len(worker.logs()) < 10, worker.stderr()  # no retry loop
    assert "Traceback" not in worker.stderr()
    assert password not in worker.stderr()


async def test_a_permission_revoked_while_running_halts_the_worker_naming_command_and_key(
    admin: Redis, acl_redis_url: str, tmp_path: Path
) -> None:
    app, password = f"r{uuid4().hex[:8]}", f"pw-{uuid4().hex}"
    user = await make_user(admin, app, "worker", password)
    worker = worker_process(acl_redis_url, app, user, password, tmp_path, "revoked")
    try:
        await wait_for(lambda: len(worker.acquired("ticks")) == 2, "ready", workers=[worker])
        await execute(admin, "ACL", "SETUSER", user, "-xreadgroup")
        assert await worker.exit_code(within=30) == 1
    finally:
        worker.kill()
    [critical] = worker.messages("critical")
    assert "cannot do its job" in critical
    assert "xreadgroup" in critical
    assert f"'__strm:{app}.ticks." in critical
    assert password not in worker.stderr()
