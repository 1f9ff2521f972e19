"""Refused permissions become PermissionDenied naming the command, key and user."""

from __future__ import annotations

from pathlib import Path

from redis.exceptions import NoPermissionError, ResponseError

from runnel.adapters.redis import _probe
from runnel.adapters.redis._errors import (
    SCRIPT_NAMES,
    Refusal,
    note_refusal,
    permission_denied,
    refused_permission,
    translate,
)
from runnel.adapters.redis._replies import probe_refusals
from runnel.adapters.redis._scripts import register, script_commands
from runnel.adapters.redis.acl import (
    ADMIN,
    SENDER,
    WORKER,
    acl_rules,
    key_patterns,
    setuser_command,
)
from runnel.adapters.redis.client import RunnelRedis, _refusal
from runnel.domain.access import ProcessorKeys, worker_access
from runnel.domain.keys import Keys, leader_epoch_key, leader_key, schedule_key
from runnel.errors import BackendError, PermissionDenied

SCRIPTS = (
    "acquire", "append", "compare_and_set", "exchange", "extend",
    "hash_set_missing", "membership_announce", "membership_update", "release",
)  # fmt: skip


def test_every_way_redis_refuses_a_permission_is_recognised() -> None:
    for message in (
        "NOPERM this user has no permissions to run the 'time' command",
        "NOPERM User w has no permissions to access the '__lock:x' key",
        "ERR The user executing the script can't run this command or subcommand script: "
        "0123456789abcdef0123456789abcdef01234567, on @user_script:13.",
        "ERR The user executing the script can't access at least one of the keys mentioned",
    ):
        error = ResponseError(message)
        assert refused_permission(error)
        assert isinstance(translate(error), PermissionDenied)
    assert not refused_permission(ResponseError("NOGROUP No such key"))
    assert not isinstance(translate(ResponseError("NOGROUP x")), PermissionDenied)


def test_a_refusal_names_the_command_and_key_the_server_names() -> None:
    error = permission_denied(
        NoPermissionError("User w has no permissions to access the '__lock:a.s.p.0' key"),
        Refusal(command="SET", keys=("__lock:a.s.p.0",), user="w"),
    )
    assert (error.command, error.key) == ("SET", "__lock:a.s.p.0")
    assert "Redis user 'w' may not run command SET on key(s) '__lock:a.s.p.0'" in str(error)
    assert "docs/security.md" in str(error)
    assert not isinstance(error, BackendError)  # not retried as a backend failure


def test_a_refusal_inside_a_script_names_the_script_its_commands_and_keys() -> None:
    script = register(RunnelRedis(), "acquire")
    assert SCRIPT_NAMES[script.sha] == "acquire"
    error = ResponseError(
        "ERR The user executing the script can't run this command or subcommand script: "
        f"{script.sha}, on @user_script:13."
    )
    note_refusal(error, script.refusal(["__lock:a.s.p.0", "__epoch:a.s.p.0"]))
    denied = translate(error)
    assert isinstance(denied, PermissionDenied)
    assert denied.command == "acquire.lua"
    assert "script acquire.lua (it runs EXISTS, INCR, SET, TIME)" in str(denied)
    assert "'__lock:a.s.p.0', '__epoch:a.s.p.0'" in str(denied)
    assert "user 'default'" in str(denied)


def test_a_refused_client_command_is_noted_with_its_keys() -> None:
    client = RunnelRedis(username="w")
    xread = _refusal(client, ("XREAD", "COUNT", 1, "BLOCK", 5, "STREAMS", b"__strm:a", b"0"))
    assert (xread.command, xread.keys, xread.user) == ("XREAD", ("__strm:a",), "w")
    assert _refusal(client, ("MGET", "k1", "k2")).keys == ("k1", "k2")
    assert _refusal(client, ("CONFIG GET", "save")).keys == ()


def test_the_worker_acl_grants_every_command_of_every_script() -> None:
    worker = {c.split("|")[0] for c in WORKER}  # XINFO GROUPS is granted as xinfo|groups
    sender = {c.split("|")[0] for c in SENDER}
    for name in SCRIPTS:
        assert {c.lower() for c in script_commands(name)} <= worker, name
    for name in ("append", "hash_set_missing"):
        assert {c.lower() for c in script_commands(name)} <= sender, name
    probed = {p[0].lower() for probes in _probe.PROBES.values() for p in probes}
    probed |= {p[0].lower() for p in _probe.UNKEYED}
    assert worker >= probed
    assert set(WORKER) < set(ADMIN)
    assert "config|get" not in ADMIN
    assert "config" not in ADMIN


def _matches(pattern: str, key: str) -> bool:
    """Redis' glob (``*`` and ``?``; no classes in our patterns) on an ACL key pattern."""
    import fnmatch

    return fnmatch.fnmatchcase(key, pattern.removeprefix("~"))


def test_an_apps_key_patterns_match_its_keys_and_no_other_apps() -> None:
    keys = Keys("myapp", "orders")
    own = [
        keys.stream(3), keys.meta(), keys.lost(), keys.lock("p", 1),
        keys.epoch("p", 1), keys.fenced("p"), keys.membership("p"), keys.membership_version("p"),
        keys.control("p"), keys.beat("p", "host-1-abc"), keys.quarantine("p"),
        leader_key("myapp"), schedule_key("myapp", "nightly"),
        Keys("myapp", "orders.dead").stream(0),
    ]  # fmt: skip
    other = Keys("myapp2", "orders")
    foreign = [
        other.stream(3),
        other.lock("p", 1),
        leader_key("myapp2"),
        Keys("x", "myapp").stream(0),
    ]
    patterns = key_patterns("myapp")
    for key in own:
        assert any(_matches(p, key) for p in patterns), key
    for key in foreign:
        assert not any(_matches(p, key) for p in patterns), key
    assert any(_matches("~__*myapp*", key) for key in foreign)  # the pattern to avoid


def test_the_cluster_key_patterns_match_the_cluster_layout_and_no_other_apps() -> None:
    keys = Keys("myapp", "orders", "cluster")
    own = [
        keys.stream(3), keys.meta(), keys.lost_counter(3), keys.lock("p", 1),
        keys.epoch("p", 1), keys.fenced("p"), keys.fenced_counter("p", 1),
        keys.membership("p"), keys.membership_version("p"), keys.control("p"),
        keys.beat("p", "host-1-abc"), keys.quarantine("p"), keys.state("p", 2),
        keys.halts("p"), keys.skips("p"), keys.idempotency("order-1"),
        leader_key("myapp", "cluster"), leader_epoch_key("myapp", "cluster"),
        schedule_key("myapp", "nightly"), Keys("myapp", "orders.dead", "cluster").stream(0),
    ]  # fmt: skip
    other = Keys("myapp2", "orders", "cluster")
    foreign = [
        other.stream(3),
        other.lock("p", 1),
        other.meta(),
        leader_key("myapp2", "cluster"),
        Keys("x", "myapp", "cluster").stream(0),
        schedule_key("myapp2", "nightly"),
    ]
    patterns = key_patterns("myapp", cluster=True)
    for key in own:
        assert any(_matches(p, key) for p in patterns), key
    for key in foreign:
        assert not any(_matches(p, key) for p in patterns), key
    # The single-server patterns would miss the hash-tagged keys.
    assert not any(_matches(p, keys.stream(3)) for p in key_patterns("myapp"))


def test_cluster_rules_add_only_what_the_cluster_client_runs() -> None:
    for role in ("sender", "worker", "admin"):
        single = acl_rules("shop", role)
        clustered = acl_rules("shop", role, cluster=True)
        added = [r for r in clustered if r not in single]
        assert added == [
            "~__*:{shop.*",
            "~__*:{shop}",
            "+cluster|slots",
            "+cluster|shards",
            "+command",
            "+command|getkeys",
            "+asking",
        ]
        assert "+readonly" not in clustered  # runnel reads from primaries only


def test_acl_lines_reset_the_user_and_grant_nothing_else() -> None:
    rules = acl_rules("shop", "worker")
    assert rules[:5] == ["resetkeys", "~__*:shop.*", "~__*:shop", "resetchannels", "-@all"]
    line = setuser_command("shop", "sender", "shop-sender", "pw")
    assert line.startswith("ACL SETUSER shop-sender reset on >pw resetkeys ")


def test_the_probe_covers_every_kind_of_key_a_worker_touches() -> None:
    needs = worker_access(
        "shop",
        [ProcessorKeys(Keys("shop", "orders"), "p", "w-1", (Keys("shop", "orders.dead"),))],
        ["nightly"],
    )
    assert {n.kind for n in needs} == set(_probe.PROBES)
    assert len(needs) == len(set(needs))
    assert probe_refusals([[3, b"ERR ... can't run"]], 5) == [2]


def test_docs_security_md_shows_the_cluster_acl_runnel_acl_prints() -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "security.md").read_text()
    assert setuser_command("myapp", "worker", "myapp-worker", cluster=True) in text


def test_the_user_of_a_cluster_client_is_named_in_refusals() -> None:
    from runnel.adapters.redis._scripts import user_of
    from runnel.adapters.redis.cluster import make_cluster_client

    named = make_cluster_client("redis+cluster://shop-worker:pw@127.0.0.1:7000", 2)
    anonymous = make_cluster_client("redis+cluster://127.0.0.1:7000", 2)
    assert (user_of(named), user_of(anonymous)) == ("shop-worker", "default")
