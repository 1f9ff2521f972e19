"""Least privilege on Redis Cluster: the rules ``runnel acl --cluster`` prints, applied on
every node, run a real worker and a real sender end to end with no refusal in any node's
ACL log, and still refuse what the role may not do.

The test app (``security/apps/guarded.py``: a dead-letter middleware, a leader-only timer)
writes its results to a plain redis-server of the test's own, so the users under test need
no right beyond runnel's.
"""

from __future__ import annotations

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
