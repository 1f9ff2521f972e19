"""Least privilege on Redis Cluster: the rules ``runnel acl --cluster`` prints, applied on
every node, run a real worker and a real sender end to end with no refusal in any node's
ACL log, and still refuse what the role may not do.

The test app (``security/apps/guarded.py``: a dead-letter middleware, a leader-only timer)
writes its results to a plain redis-server of the test's own, so the users under test need
no right beyond runnel's.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoPermissionError

from runnel.domain.keys import Keys
from tests.servers import RunningServer, ServerUnavailable, running_server
from tests.topologies import RunningCluster

from ..engine.apps.common import poison_key, results_key
from ..engine.harness import WorkerProcess, process_env, runnel, wait_for

APP = "tests.integration.security.apps.guarded"


@pytest.fixture
def results_server() -> Iterator[RunningServer]:
    try:
        with running_server() as server:
            yield server
    except ServerUnavailable as exc:
        pytest.skip(f"needs a redis-server of its own: {exc}")


@pytest.fixture
async def results(results_server: RunningServer) -> AsyncIterator[Redis]:
    client = Redis(port=results_server.port, protocol=2)
    try:
        yield client
    finally:
        await client.aclose()


def cluster_acl(app: str, role: str, password: str) -> list[str]:
    """The ``ACL SETUSER`` words ``runnel acl`` prints for a cluster URL."""
    env = process_env(app, "redis+cluster://127.0.0.1:1,127.0.0.1:2")
    done = runnel("acl", app, "--role", role, env=env)
    assert done.returncode == 0, done.stderr
    assert "every primary and every replica" in done.stderr
    words = shlex.split(done.stdout.replace("<password>", password))
    assert words[:2] == ["ACL", "SETUSER"]
    return words


async def on_every_node(cluster: RunningCluster, *words: str) -> list[Any]:
    """Run one command on every node (primaries and replicas) as the default user."""
    out = []
    for port in cluster.ports:
        node = Redis(port=port, protocol=2)
        try:
            out.append(await node.execute_command(*words))  # type: ignore[no-untyped-call]
        finally:
            await node.aclose()
    return out


def user_url(cluster: RunningCluster, user: str) -> str:
    return cluster.url.replace("redis+cluster://", f"redis+cluster://{user}@", 1)


async def refusals(cluster: RunningCluster, *users: str) -> list[dict[str, Any]]:
    """Every node's ACL log entries of ``users`` (but redis-py's ``CLIENT SETINFO``,
    whose refusal it ignores: see docs/security.md)."""
    found = []
    for port in cluster.ports:
        node = Redis(port=port, protocol=2)
        try:
            entries = await node.acl_log(count=1000)
        finally:
            await node.aclose()
        found += [
            {**e, "node": port}
            for e in entries
            if _text(e.get("username")) in users and _text(e.get("object")) != "client|setinfo"
        ]
    return found


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def test_the_cluster_acl_runs_a_worker_and_a_sender_and_refuses_the_rest(
    cluster: RunningCluster,
    results_server: RunningServer,
    results: Redis,
    client: Any,
    tmp_path: Path,
) -> None:
    app = f"ca{uuid4().hex[:8]}"
    password = f"pw-{uuid4().hex}"
    users = {}
    for role in ("worker", "sender"):
        words = cluster_acl(app, role, password)
        assert f"~__*:{{{app}.*" in words  # the cluster layout's hash-tagged keys
        await on_every_node(cluster, *words)
        users[role] = words[2]
    secret = tmp_path / "password"
    secret.write_text(password + "\n")
    url = user_url(cluster, users["worker"])
    env = process_env(app, url, {"RESULTS_URL": results_server.url})
    argv = [sys.executable, "-m", "runnel", "worker", f"{APP}:app", "--redis-url", url,
            "--redis-password-file", str(secret)]  # fmt: skip
    proc = WorkerProcess(argv, env, tmp_path, "w")
    try:
        await wait_for(lambda: len(proc.acquired("ticks")) == 2, "ready", workers=[proc])
        await results.sadd(poison_key(app), "k1:2")
        send_env = process_env(
            app, user_url(cluster, users["sender"]), {"RUNNEL_REDIS_PASSWORD": password}
        )
        for key, seq in (("k0", 1), ("k1", 2), ("k1", 3)):
            sent = runnel(
                "send", f"{APP}:ticks", json.dumps({"key": key, "seq": seq}), env=send_env
            )
            assert sent.returncode == 0, sent.stderr

        async def done() -> bool:
            seen = await results.llen(results_key(app, "seen"))
            return seen == 2 and await results.llen(results_key(app, "beat")) >= 2

        await wait_for(done, "two ticks processed and two leader beats", workers=[proc])
        assert await proc.stop() == 0
    finally:
        proc.kill()
    seen = [json.loads(x) for x in await results.lrange(results_key(app, "seen"), 0, -1)]
    assert sorted((s["key"], s["seq"]) for s in seen) == [("k0", 1), ("k1", 3)]
    sink = Keys(app, "ticks.dead", "cluster").stream(1)
    [(_, dead)] = await client.xrange(sink) or [(b"", {})]
    assert dead[b"__error_type"] == b"ValueError"
    assert await refusals(cluster, *users.values()) == []
    assert password not in proc.stderr()

    # What the roles may not do is refused on every node.
    nodes = [ClusterNode("127.0.0.1", port) for port in cluster.ports]
    worker = RedisCluster(
        startup_nodes=nodes, username=users["worker"], password=password, protocol=2
    )
    sender = RedisCluster(
        startup_nodes=nodes, username=users["sender"], password=password, protocol=2
    )
    own = Keys(app, "ticks", "cluster").stream(0)
    other = Keys(f"{app}2", "ticks", "cluster").stream(0)  # the app name plus a suffix
    try:
        assert await worker.xlen(own) == 1  # its own keys: yes (k0 went to partition 0)
        forbidden = [
            (worker, ("XGROUP", "DESTROY", own, "proc")),  # an admin's command
            (worker, ("XADD", other, "*", "data", "{}")),  # another app's key
            (worker, ("FLUSHALL",)),
            (sender, ("XACK", own, "proc", "0-1")),  # a worker's command
        ]
        for user, command in forbidden:
            with pytest.raises(NoPermissionError):
                await user.execute_command(*command)
    finally:
        await worker.aclose()
        await sender.aclose()
    assert [g["name"] for g in await client.xinfo_groups(own)] == [b"proc"]


async def _on(port: int, *words: Any) -> Any:
    """One command on one node, as the default user."""
    node = Redis(port=port, protocol=2)
    try:
        return await node.execute_command(*words)  # type: ignore[no-untyped-call]
    finally:
        await node.aclose()


@contextlib.asynccontextmanager
async def migrating(cluster: RunningCluster, key: str) -> AsyncIterator[None]:
    """Move the slot of ``key`` to another primary, as a resharding does, and stop half-way:
    its keys are on the new node, and the old one still owns the slot (it answers ASK).
    On exit the slot is given to the new node."""
    slot = int(await _on(cluster.ports[0], "CLUSTER", "KEYSLOT", key))
    ids = {port: _text(await _on(port, "CLUSTER", "MYID")) for port in cluster.primaries()}
    owners = [p for p in ids if slot in await _slots_of(p)]
    assert len(owners) == 1
    source = owners[0]
    target = next(p for p in ids if p != source)
    await _on(target, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
    await _on(source, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
    try:
        moved = await _on(source, "CLUSTER", "GETKEYSINSLOT", slot, 1000)
        assert key in [_text(k) for k in moved]
        await _on(source, "MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *moved)
        yield
    finally:
        for port in ids:
            await _on(port, "CLUSTER", "SETSLOT", slot, "NODE", ids[target])


def _sender(cluster: RunningCluster, app: str, password: str) -> dict[str, str]:
    """The environment of ``runnel send`` as ``app``'s sender (its ACL set on every node)."""
    user = cluster_acl(app, "sender", password)[2]
    return process_env(app, user_url(cluster, user), {"RUNNEL_REDIS_PASSWORD": password})


def _send(env: dict[str, str], seq: int) -> Any:
    return runnel("send", f"{APP}:ticks", json.dumps({"key": "k0", "seq": seq}), env=env)


async def test_a_sender_finds_metadata_moved_mid_resharding_through_ask_under_its_acl(
    cluster: RunningCluster, client: Any
) -> None:
    # The stream's metadata key is on its way to another node: a new sender reads it there
    # through ASK, sending ASKING first, which its role must allow on every node.
    app, password = f"cm{uuid4().hex[:8]}", f"pw-{uuid4().hex}"
    await on_every_node(cluster, *cluster_acl(app, "sender", password))
    first = _send(process_env(app, cluster.url), 1)  # the stream, metadata and groups
    assert first.returncode == 0, first.stderr
    env = _sender(cluster, app, password)
    async with migrating(cluster, Keys(app, "ticks", "cluster").meta()):
        sent = _send(env, 2)
        assert sent.returncode == 0, sent.stderr
    entries = await client.xrange(Keys(app, "ticks", "cluster").stream(0))
    assert [json.loads(fields[b"data"])["seq"] for _, fields in entries] == [1, 2]
    assert await refusals(cluster, env_user(env)) == []


async def test_a_send_to_a_partition_mid_resharding_is_refused_whole_and_safe_to_repeat(
    cluster: RunningCluster, client: Any
) -> None:
    # A partition's keys are half-moved: Redis answers its scripts TRYAGAIN until the move
    # ends. The send says it did not run (BackendUnavailable), and sending it again after
    # the move writes it once.
    app, password = f"cm{uuid4().hex[:8]}", f"pw-{uuid4().hex}"
    await on_every_node(cluster, *cluster_acl(app, "sender", password))
    first = _send(process_env(app, cluster.url), 1)
    assert first.returncode == 0, first.stderr
    env = _sender(cluster, app, password)
    key = Keys(app, "ticks", "cluster").stream(0)  # k0's partition
    async with migrating(cluster, key):
        refused = _send(env, 2)
        assert refused.returncode != 0
        assert "BackendUnavailable" in refused.stderr, refused.stderr
        assert "nothing was written" in refused.stderr, refused.stderr
    again = _send(env, 2)
    assert again.returncode == 0, again.stderr
    entries = await client.xrange(key)
    assert [json.loads(fields[b"data"])["seq"] for _, fields in entries] == [1, 2]
    assert await refusals(cluster, env_user(env)) == []


def env_user(env: dict[str, str]) -> str:
    """The user name in the Redis URL of ``env``."""
    return env["RUNNEL_REDIS_URL"].split("://", 1)[1].split("@", 1)[0]


async def _slots_of(port: int) -> set[int]:
    """The slots ``port`` serves, from its own CLUSTER SLOTS."""
    mine: set[int] = set()
    for start, end, primary, *_ in await _on(port, "CLUSTER", "SLOTS"):
        if int(primary[1]) == port:
            mine.update(range(int(start), int(end) + 1))
    return mine
