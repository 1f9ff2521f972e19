"""Throwaway Redis Clusters and Sentinel-managed primaries for the tests.

Every server runs on a free port of 127.0.0.1 (never 6379) in a temporary folder of its
own, started with the binary :mod:`tests.servers` chooses, and is stopped when the context
exits. ``redis-cli`` (from the same package as ``redis-server``) forms the cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.servers import (
    STARTUP_SECONDS,
    RunningServer,
    ServerBinary,
    ServerUnavailable,
    _wait_until_up,
    free_port,
    server_binary,
    start_process,
    stop_process,
)

FORM_SECONDS = 30.0


def command(port: int, *args: str, timeout: float = 5.0) -> str:
    """Send one inline command to ``127.0.0.1:port``; the raw reply as text."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall((" ".join(args) + "\r\n").encode())
        sock.settimeout(timeout)
        data = b""
        while True:
            chunk = sock.recv(65536)
            data += chunk
            if not chunk or _complete(data):
                return data.decode(errors="replace")


def _complete(data: bytes) -> bool:
    if data[:1] in (b"+", b"-", b":"):
        return data.endswith(b"\r\n")
    if data[:1] == b"$":
        head, _, rest = data.partition(b"\r\n")
        size = int(head[1:])
        return size < 0 or len(rest) >= size + 2
    return data.endswith(b"\r\n")


def info_fields(port: int, section: str) -> dict[str, str]:
    """The ``field:value`` lines of ``INFO section`` (or ``CLUSTER INFO``)."""
    raw = command(port, *section.split())
    out = {}
    for line in raw.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip()] = value.strip()
    return out


def sentinel_fields(port: int, *args: str) -> dict[str, str]:
    """A Sentinel's flat array reply of names and values, as a dict."""
    try:
        raw = command(port, *args)
    except OSError:
        return {}
    lines = raw.split("\r\n")
    values = [line for line in lines[1:] if line and line[0] not in "$*"]
    return dict(zip(values[::2], values[1::2], strict=False))


def _cli() -> str:
    """``redis-cli`` (or ``valkey-cli``) beside the server binary the tests use, else on
    ``PATH``."""
    folder = Path(server_binary().path).parent
    for name in ("redis-cli", "valkey-cli"):
        beside = folder / name
        if beside.is_file() and os.access(beside, os.X_OK):
            return str(beside)
    path = shutil.which("redis-cli") or shutil.which("valkey-cli")
    if path is None:
        raise ServerUnavailable("redis-cli is not installed (it comes with redis-server)")
    return path


@dataclass
class RunningCluster:
    """A Redis Cluster of ``masters`` primaries (and ``replicas`` replicas of each)."""

    binary: ServerBinary
    nodes: list[RunningServer] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node(self, port: int) -> RunningServer:
        return next(n for n in self.nodes if n.port == port)

    def primaries(self) -> list[int]:
        """The ports of the nodes that are primaries now (and answer)."""
        out = []
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            with contextlib.suppress(OSError):
                if info_fields(node.port, "INFO replication").get("role") == "master":
                    out.append(node.port)
        return out

    def wait_replicas_synced(self, seconds: float = FORM_SECONDS) -> None:
        """Wait until every replica has finished its initial sync with its primary."""
        deadline = time.monotonic() + seconds
        while True:
            links = []
            for node in self.nodes:
                info = info_fields(node.port, "INFO replication")
                if info.get("role") == "slave":
                    links.append(info.get("master_link_status") == "up")
            if all(links):
                return
            if time.monotonic() > deadline:
                raise ServerUnavailable("the cluster's replicas did not finish syncing")
            time.sleep(0.1)

    def wait_ok(self, seconds: float = FORM_SECONDS) -> None:
        """Wait until every live node says the cluster is ok and agrees on the slots."""
        deadline = time.monotonic() + seconds
        while True:
            states = []
            for node in self.nodes:
                if node.process.poll() is not None:
                    continue
                try:
                    states.append(info_fields(node.port, "CLUSTER INFO"))
                except OSError:
                    states.append({})
            if states and all(
                s.get("cluster_state") == "ok" and s.get("cluster_slots_assigned") == "16384"
                for s in states
            ):
                return
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"the cluster did not become ok: {states}")
            time.sleep(0.1)


@contextlib.contextmanager
def running_cluster(
    masters: int = 3, replicas: int = 0, extra: Sequence[str] = ()
) -> Iterator[RunningCluster]:
    """Start ``masters * (1 + replicas)`` cluster nodes, form the cluster, yield it."""
    binary = server_binary()
    cluster = RunningCluster(binary)
    with tempfile.TemporaryDirectory(prefix="runnel-cluster-") as root:
        try:
            for _ in range(masters * (1 + replicas)):
                port = free_port()
                workdir = Path(root, str(port))
                workdir.mkdir()
                process = start_process(
                    binary,
                    port,
                    workdir,
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(workdir / "nodes.conf"),
                        "--cluster-port",
                        str(free_port()),
                        "--cluster-node-timeout",
                        "1000",
                        "--cluster-replica-validity-factor",
                        "0",
                        "--repl-diskless-sync-delay",
                        "0",
                        *extra,
                    ],
                )
                node = RunningServer(binary, port, workdir, process)
                cluster.nodes.append(node)
                _wait_until_up(node)
            formed = subprocess.run(
                [
                    _cli(),
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in cluster.ports),
                    "--cluster-replicas",
                    str(replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=FORM_SECONDS,
                check=False,
            )
            if formed.returncode != 0:
                raise ServerUnavailable(f"redis-cli --cluster create failed: {formed.stdout}")
            cluster.wait_ok()
            cluster.wait_replicas_synced()
            yield cluster
        finally:
            for node in cluster.nodes:
                stop_process(node.process)


@dataclass
class RunningSentinels:
    """A primary, its replicas and the Sentinels watching them."""

    service: str
    primary: RunningServer
    replicas: list[RunningServer]
    sentinels: list[RunningServer]

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming every Sentinel and the service."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}"

    def current_primary(self) -> int:
        """The port the first Sentinel that answers names as the primary now."""
        for sentinel in self.sentinels:
            if sentinel.process.poll() is not None:
                continue
            with contextlib.suppress(OSError):
                raw = command(sentinel.port, "SENTINEL", "get-master-addr-by-name", self.service)
                return int(raw.split("\r\n")[-2])
        raise ServerUnavailable("no Sentinel answers")


@contextlib.contextmanager
def running_sentinels(
    replicas: int = 1, sentinels: int = 3, service: str = "runnel", down_after_ms: int = 1000
) -> Iterator[RunningSentinels]:
    """A primary with ``replicas`` replicas and ``sentinels`` Sentinels (quorum: a majority)."""
    binary = server_binary()
    started: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="runnel-sentinel-") as root:
        try:

            def start(args: Sequence[str], sentinel: bool = False) -> RunningServer:
                port = free_port()
                workdir = Path(root, str(port))
                workdir.mkdir()
                if sentinel:
                    conf = workdir / "sentinel.conf"
                    conf.write_text("")
                    process = subprocess.Popen(
                        [
                            binary.path,
                            str(conf),
                            "--sentinel",
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--dir",
                            str(workdir),
                            "--logfile",
                            str(workdir / "server.log"),
                            *args,
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        env=dict(binary.env) or None,
                    )
                else:
                    process = start_process(binary, port, workdir, args)
                started.append(process)
                server = RunningServer(binary, port, workdir, process)
                _wait_until_up(server)
                return server

            primary = start(["--repl-diskless-sync-delay", "0"])
            copies = [
                start(["--replicaof", "127.0.0.1", str(primary.port)]) for _ in range(replicas)
            ]
            quorum = sentinels // 2 + 1
            watchers = [
                start(
                    [
                        "--sentinel",
                        "monitor",
                        service,
                        "127.0.0.1",
                        str(primary.port),
                        str(quorum),
                        "--sentinel",
                        "down-after-milliseconds",
                        service,
                        str(down_after_ms),
                        "--sentinel",
                        "failover-timeout",
                        service,
                        "5000",
                    ],
                    sentinel=True,
                )
                for _ in range(sentinels)
            ]
            found = RunningSentinels(service, primary, copies, watchers)
            _wait_replicated(found, STARTUP_SECONDS)
            yield found
        finally:
            for process in reversed(started):
                stop_process(process)


def _wait_replicated(found: RunningSentinels, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        info = info_fields(found.primary.port, "INFO replication")
        known = [
            sentinel_fields(s.port, "SENTINEL", "master", found.service) for s in found.sentinels
        ]
        others = len(found.sentinels) - 1
        linked = all(
            info_fields(r.port, "INFO replication").get("master_link_status") == "up"
            for r in found.replicas
        )
        if (
            linked
            and int(info.get("connected_slaves", "0")) >= len(found.replicas)
            and all(
                int(k.get("num-other-sentinels", "0")) >= others
                and int(k.get("num-slaves", "0")) >= len(found.replicas)
                for k in known
            )
        ):
            return
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"replication or the Sentinels did not start: {info}")
        time.sleep(0.1)


def client_for(url: str) -> Any:
    """A plain redis-py client (replies as bytes) for any Redis URL runnel takes:
    ``RedisCluster`` for ``redis+cluster://``, the primary's client for
    ``redis+sentinel://``, else ``Redis.from_url``."""
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    from runnel.adapters.redis._url import parse_hosts_url

    scheme = url.split("://", 1)[0].lower()
    if scheme.endswith("+cluster"):
        parsed = parse_hosts_url(url)
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in parsed.hosts])
    if scheme.endswith("+sentinel"):
        from redis.asyncio.sentinel import Sentinel

        parsed = parse_hosts_url(url)
        return Sentinel(list(parsed.hosts)).master_for(parsed.service)
    return Redis.from_url(url)
