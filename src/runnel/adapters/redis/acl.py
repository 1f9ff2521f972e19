"""The Redis ACL a runnel worker, sender or operator needs: exact commands and key patterns.

Every key of an app ``myapp`` is ``__<tag>:myapp.<...>`` or ``__<tag>:myapp`` (the leader
keys), and app, stream and processor names may not contain ``:`` or ``.`` where it would
matter (app names neither; stream and processor names no ``:``). So the two patterns
``~__*:myapp.*`` and ``~__*:myapp`` match exactly the keys of ``myapp``: not those of
``myapp2`` (``__strm:myapp2.orders.0`` has no ``:myapp.``), which the tempting
``~__*myapp*`` would.

Roles:

``sender``
    ``Stream.send``, ``runnel send`` and ``sendmany``: the append script, the stream
    metadata and the consumer groups it creates on first use.
``worker``
    ``runnel worker``: everything a worker runs, in its scripts and outside them; and the
    read-only operators' commands (``runnel status``, ``tail``, ``deadletter list``).
``admin``
    The worker's rights plus what operators' commands that move or delete run: ``XGROUP
    DESTROY`` (``runnel processor reset``, ``runnel processor skip`` of an undelivered
    entry) and ``XDEL`` (``runnel deadletter purge``).

``info`` lets workers check at start-up that Redis persists writes and evicts no keys;
it shows server statistics, no secrets. ``client|setname`` and ``client|list`` let a
worker notice within about two seconds that another worker's process is gone (its named
connection closed); ``CLIENT LIST`` shows every connection's address, name and last
command, never data or passwords. Without them, a dead worker is noticed when its
heartbeat expires. ``CONFIG GET`` would also do, but it reads
``requirepass`` and every other secret of the server: it is not granted.

On Redis Cluster (``cluster=True``) the keys follow the cluster layout
(``docs/architecture.md``, "The cluster layout"): a partition's keys carry the hash tag
``{app.stream.n}``, a processor's ``{app.stream.processor}``, the leader keys ``{app}``;
schedules and idempotency keys keep the single-server form. The patterns become
``~__*:{myapp.*``, ``~__*:{myapp}`` and ``~__*:myapp.*`` (the braces are literal to the
ACL's glob; ``{myapp2.`` does not start with ``{myapp.``). The rules add what redis-py's
cluster client runs itself: ``CLUSTER SLOTS`` (and ``CLUSTER SHARDS``, which newer
clients ask instead) to learn the topology, ``COMMAND`` and ``COMMAND GETKEYS`` to find
the keys of each command it routes (a script's, a stream read's), and ``ASKING`` before a
command redirected to a slot being migrated. ``READONLY`` is not granted: runnel reads
from primaries only. A cluster's ACL is kept per node, not replicated: run the
``ACL SETUSER`` line on every primary and every replica (a replica promoted by a failover
serves the same users only if it has them too).

Example:
    >>> " ".join(acl_rules("shop", "sender")[:2])
    'resetkeys ~__*:shop.*'
    >>> acl_rules("shop", "sender", cluster=True)[1:4]
    ['~__*:{shop.*', '~__*:{shop}', '~__*:shop.*']
"""

from __future__ import annotations

from typing import Final, Literal

Role = Literal["sender", "worker", "admin"]

ROLES: Final[tuple[Role, ...]] = ("sender", "worker", "admin")

CONNECTION: Final = ("ping", "select")
"""PING checks idle connections; SELECT a db other than 0."""

SCRIPTS: Final = ("evalsha", "script|load")
"""Scripts run by SHA, loaded again when the server does not know them."""

SENDER: Final = (
    *CONNECTION,
    *SCRIPTS,
    # append.lua (the lossless or lossy cap), and the lost counter of a lossy cap
    "xadd",
    "xlen",
    "xinfo|groups",
    "xpending",
    "xrange",
    "exists",
    "incrby",
    "get",
    # the routing record of each partition (a resized stream refuses stale routing)
    "hget",
    # the idempotency keys of idempotent sends (SET PX)
    "set",
    # stream metadata (hash_set_missing.lua) and the groups declared processors read from
    "hsetnx",
    "hgetall",
    "xgroup|create",
)

WORKER: Final = (
    *SENDER,
    # fetch rounds: a watched transaction, or exchange.lua
    "watch",
    "unwatch",
    "multi",
    "exec",
    "discard",
    "mget",
    "xreadgroup",
    "xread",
    "xack",
    # the outbox of an effectively-once partition on Redis Cluster (outbox.lua)
    "xdel",
    # leases, epochs, heartbeats, membership, leader election, schedules, quarantines
    "time",
    "del",
    "incr",
    "pexpire",
    "pttl",
    "hset",
    "hdel",
    # runnel status (the newest entry of each partition; read-only)
    "xrevrange",
    # a dead letter checks its sink is a stream before its transaction
    "type",
    # the durability check (statistics only; CONFIG would expose the server's secrets)
    "info",
    # presence: each worker names one connection, and its peers list the connections to
    # notice at once when a worker's process is gone (adapters/redis/presence.py)
    "client|setname",
    "client|list",
)

ADMIN: Final = (*WORKER, "xgroup|destroy", "xdel")

CLUSTER: Final = (
    # the topology, at start-up and after a MOVED or a failed node (CLUSTER SHARDS on
    # clients that prefer it)
    "cluster|slots",
    "cluster|shards",
    # the key positions of the commands the client routes by slot
    "command",
    "command|getkeys",
    # sent before a command redirected by ASK (a slot being migrated)
    "asking",
)
"""What redis-py's cluster client runs itself, added to every role on Redis Cluster."""

COMMANDS: Final[dict[Role, tuple[str, ...]]] = {
    "sender": SENDER,
    "worker": WORKER,
    "admin": ADMIN,
}


def key_patterns(app: str, cluster: bool = False) -> tuple[str, ...]:
    """The ACL key patterns of ``app``'s keys, and of no other app's, in the single-server
    layout or (``cluster``) the cluster layout.

    Example:
        >>> key_patterns("myapp")
        ('~__*:myapp.*', '~__*:myapp')
        >>> key_patterns("myapp", cluster=True)
        ('~__*:{myapp.*', '~__*:{myapp}', '~__*:myapp.*')
    """
    if cluster:
        # Hash-tagged: {app.stream.n}, {app.stream.processor}, {app.stream} and {app};
        # untagged: schedules (__sched:app.task) and idempotency keys (__idem:app.s.k).
        return f"~__*:{{{app}.*", f"~__*:{{{app}}}", f"~__*:{app}.*"
    return f"~__*:{app}.*", f"~__*:{app}"


def acl_rules(app: str, role: Role, cluster: bool = False) -> list[str]:
    """The ACL rules (``ACL SETUSER`` arguments, without user or password) of ``role``,
    for one server or (``cluster``) for each node of a Redis Cluster.

    Example:
        >>> acl_rules("shop", "admin")[-1]
        '+xdel'
        >>> acl_rules("shop", "worker", cluster=True)[-1]
        '+asking'
    """
    if role not in COMMANDS:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    commands = (*COMMANDS[role], *CLUSTER) if cluster else COMMANDS[role]
    return [
        "resetkeys",
        *key_patterns(app, cluster),
        "resetchannels",
        "-@all",
        *(f"+{command}" for command in commands),
    ]


def setuser_command(
    app: str, role: Role, user: str, password: str = "<password>", cluster: bool = False
) -> str:
    """A complete ``ACL SETUSER`` line for a new user of ``app`` in ``role`` (on a
    cluster: the line to run on every node).

    Example:
        >>> setuser_command("shop", "sender", "shop-sender").split()[:4]
        ['ACL', 'SETUSER', 'shop-sender', 'reset']
    """
    rules = acl_rules(app, role, cluster)
    return " ".join(["ACL", "SETUSER", user, "reset", "on", f">{password}", *rules])
