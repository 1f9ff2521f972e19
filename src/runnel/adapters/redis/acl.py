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

Example:
    >>> " ".join(acl_rules("shop", "sender")[:2])
    'resetkeys ~__*:shop.*'
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

COMMANDS: Final[dict[Role, tuple[str, ...]]] = {
    "sender": SENDER,
    "worker": WORKER,
    "admin": ADMIN,
}


def key_patterns(app: str) -> tuple[str, str]:
    """The ACL key patterns of ``app``'s keys, and of no other app's.

    Example:
        >>> key_patterns("myapp")
        ('~__*:myapp.*', '~__*:myapp')
    """
    return f"~__*:{app}.*", f"~__*:{app}"


def acl_rules(app: str, role: Role) -> list[str]:
    """The ACL rules (``ACL SETUSER`` arguments, without user or password) of ``role``.

    Example:
        >>> acl_rules("shop", "admin")[-1]
        '+xdel'
    """
    if role not in COMMANDS:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return [
        "resetkeys",
        *key_patterns(app),
        "resetchannels",
        "-@all",
        *(f"+{command}" for command in COMMANDS[role]),
    ]


def setuser_command(app: str, role: Role, user: str, password: str = "<password>") -> str:
    """A complete ``ACL SETUSER`` line for a new user of ``app`` in ``role``.

    Example:
        >>> setuser_command("shop", "sender", "shop-sender").split()[:4]
        ['ACL', 'SETUSER', 'shop-sender', 'reset']
    """
    return " ".join(["ACL", "SETUSER", user, "reset", "on", f">{password}", *acl_rules(app, role)])
