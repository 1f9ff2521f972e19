"""Turning redis-py exceptions into runnel's :mod:`runnel.errors`.

Every call into redis-py sits inside :class:`translated`, so callers of the Redis adapters
only ever see :class:`~runnel.errors.BackendError` subclasses. Pipelined calls report
per-slot errors as exception *instances*; :func:`translate` converts those without raising.

Our Lua scripts refuse with error replies whose first word is a code:

* ``FENCED <lock key>``: the caller's lease is gone (:class:`~runnel.errors.Fenced`);
* ``BACKPRESSURE <stream key> <first unsafe id> <group>``: a lossless cap refused an
  append (:class:`~runnel.errors.BackpressureError`);
* ``RESIZED <stream key> <count>``: the partition routes with another partition count
  than the append's (:class:`~runnel.errors.StreamResized`).

A command the Redis user may not run, or a key it may not touch (``NOPERM``, or inside a
script "The user executing the script can't run this command"), becomes
:class:`~runnel.errors.PermissionDenied`, naming the command and the keys as far as the
server or the caller (:func:`note_refusal`) knows them.

Example:
    >>> from redis.exceptions import ResponseError
    >>> print(translate(ResponseError("FENCED __lock:app.s.p.0")))
    lease __lock:app.s.p.0 is no longer held by this owner (Redis said: FENCED __lock:app.s.p.0)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from redis import exceptions as rex

from runnel.errors import (
    AuthenticationFailed,
    BackendError,
    BackendFull,
    BackendProtocolError,
    BackendUnavailable,
    BackpressureError,
    Fenced,
    GroupMissing,
    PermissionDenied,
    StreamResized,
)

FENCED = "FENCED"
"""First word of the error reply of a fenced script whose lease check failed."""

NOGROUP = "NOGROUP"
"""First word of Redis' error reply when a consumer group, or its stream, is missing."""

BACKPRESSURE = "BACKPRESSURE"
RESIZED = "RESIZED"
"""First word of the error reply of the append script when a lossless cap refuses."""

_BACKPRESSURE_RE = re.compile(r"^BACKPRESSURE (?P<key>.+) (?P<id>\d+-\d+|new) (?P<group>.+)$")

# Replies that mean "this server cannot serve you right now" rather than "you sent
# something wrong": a replica after failover, a master-down replica, a cluster in flux.
_UNAVAILABLE_REPLIES: tuple[type[rex.RedisError], ...] = (
    rex.ReadOnlyError,
    rex.MasterDownError,
    rex.TryAgainError,
    rex.ClusterDownError,
)


# How Redis says a permission is missing: NOPERM replies to commands (7.0: "this user has
# no permissions to run the 'x' command"; later: "User u has no permissions to access the
# 'k' key"), and the error a script gets from redis.call (7.0: "The user executing the
# script can't run this command or subcommand", "... can't access at least one of the
# keys mentioned in the command arguments").
_PERMISSION_MARKS = (
    "NOPERM",
    "no permissions to",
    "user executing the script can't",
)
_COMMAND_RE = re.compile(r"'([A-Za-z0-9_|.-]+)' command")
_KEY_RE = re.compile(r"the '(.*?)' key")
_SCRIPT_RE = re.compile(r"script: ([0-9a-f]{40})")

_REFUSAL = "_runnel_refusal"
_REPLY_LOST = "_runnel_reply_lost"

OOM = "OOM"
"""First word of Redis' error reply to a write refused at ``maxmemory`` (``noeviction``)."""

# Connection errors that are in fact replies: the server answered, and did nothing.
_ANSWERED = (rex.BusyLoadingError, rex.AuthenticationError, rex.AuthorizationError)


def note_reply_lost(exc: BaseException) -> None:
    """Mark ``exc`` as raised while waiting for a reply: the request had been written.

    The client (:class:`runnel.adapters.redis.client.RunnelRedis`) marks what fails
    after the request went out; :func:`reply_lost` reads the mark.
    """
    if not isinstance(exc, _ANSWERED):
        setattr(exc, _REPLY_LOST, True)


def reply_lost(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or the error it was translated from) failed after its request
    was written, so the server may have carried the request out.

    Example:
        >>> from redis.exceptions import ConnectionError
        >>> error = ConnectionError("Connection closed by server.")
        >>> reply_lost(error)
        False
        >>> note_reply_lost(error)
        >>> reply_lost(error), reply_lost(translate(error).__cause__ or error)
        (True, True)
    """
    while exc is not None:
        if getattr(exc, _REPLY_LOST, False):
            return True
        exc = exc.__cause__
    return False


SCRIPT_NAMES: dict[str, str] = {}
"""SHA of each of our scripts -> its name (filled as scripts are registered)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """What a refused call was doing, as the caller knows it (the server may not say).

    Example:
        >>> Refusal(script="acquire", commands=("EXISTS", "TIME"), keys=("__lock:a.s.p.0",)).what()
        "script acquire.lua (it runs EXISTS, TIME) on key(s) '__lock:a.s.p.0'"
    """

    command: str | None = None
    keys: tuple[str, ...] = ()
    script: str | None = None
    commands: tuple[str, ...] = ()
    user: str | None = None

    def what(self) -> str:
        """The refused call in words."""
        if self.script is not None:
            ran = f" (it runs {', '.join(self.commands)})" if self.commands else ""
            head = f"script {self.script}.lua{ran}"
        else:
            head = f"command {self.command or '(unknown)'}"
        return head + (f" on key(s) {_keys(self.keys)}" if self.keys else "")


def _keys(keys: Sequence[str], shown: int = 3) -> str:
    text = ", ".join(repr(k) for k in keys[:shown])
    return text + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def refused_permission(exc: BaseException) -> bool:
    """Whether ``exc`` is the server refusing a command or key to this user (ACL).

    Example:
        >>> from redis.exceptions import ResponseError
        >>> refused_permission(ResponseError("NOPERM no permissions to run the 'time' command"))
        True
    """
    if isinstance(exc, rex.NoPermissionError):
        return True
    if not isinstance(exc, rex.ResponseError):
        return False
    message = str(exc)
    return any(mark in message for mark in _PERMISSION_MARKS)


def note_refusal(exc: BaseException, refusal: Refusal) -> None:
    """Attach what the caller was doing to a refused call's exception (first note wins)."""
    if getattr(exc, _REFUSAL, None) is None:
        setattr(exc, _REFUSAL, refusal)


def permission_denied(exc: BaseException, refusal: Refusal | None = None) -> PermissionDenied:
    """The :class:`~runnel.errors.PermissionDenied` for a refused call.

    The command and key come from the server's message when it names them (Redis 7.2 and
    later name the key), else from what the caller noted (:func:`note_refusal`).

    Example:
        >>> from redis.exceptions import ResponseError
        >>> error = permission_denied(
        ...     ResponseError("NOPERM this user has no permissions to run the 'xread' command"),
        ...     Refusal(command="XREAD", keys=("__strm:a.s.0",), user="w"))
        >>> error.command, error.key
        ('xread', '__strm:a.s.0')
    """
    message = str(exc)
    note = refusal or getattr(exc, _REFUSAL, None) or Refusal()
    sha = _SCRIPT_RE.search(message)
    if note.script is None and sha is not None and sha[1] in SCRIPT_NAMES:
        note = Refusal(note.command, note.keys, SCRIPT_NAMES[sha[1]], note.commands, note.user)
    named_command = _COMMAND_RE.search(message)
    named_key = _KEY_RE.search(message)
    command = named_command[1].lower() if named_command else None
    key = named_key[1] if named_key else (note.keys[0] if len(note.keys) == 1 else None)
    if named_command and note.script is not None:
        what = f"command {command} in {note.what()}"
    elif named_command:
        what = Refusal(command, note.keys, None, (), note.user).what()
    else:
        what = note.what()
    if named_key:
        what += f" (key {named_key[1]!r})"
    user = f"Redis user {note.user!r}" if note.user else "the Redis user"
    return PermissionDenied(
        f"{user} may not run {what}: Redis said {message!r}. Grant the worker or sender "
        "ACL of docs/security.md (printed by `runnel acl`)",
        command=command or (f"{note.script}.lua" if note.script else note.command),
        key=key,
    )


def translate(exc: BaseException) -> BackendError | PermissionDenied:
    """Return the runnel error for a redis-py (or socket) exception ``exc``.

    Args:
        exc: what redis-py raised, or left in a pipeline slot.

    Returns:
        A :class:`~runnel.errors.BackendError` whose message includes Redis' own message,
        or a :class:`~runnel.errors.PermissionDenied` for a refused permission.

    Example:
        >>> from redis.exceptions import ConnectionError
        >>> type(translate(ConnectionError("refused"))).__name__
        'BackendUnavailable'
    """
    if isinstance(exc, BackendError | PermissionDenied):
        return exc
    if refused_permission(exc):
        return permission_denied(exc)
    message = str(exc) or _unnamed(exc)
    if isinstance(exc, rex.AuthenticationError) or message.startswith(("WRONGPASS", "NOAUTH")):
        return AuthenticationFailed(
            f"Redis refused the credentials (wrong password or user name?): {message}"
        )
    if isinstance(exc, rex.BusyLoadingError):
        return BackendUnavailable(
            f"Redis is reachable but still loading its data into memory: {message}"
        )
    if isinstance(exc, (rex.ConnectionError, rex.TimeoutError, ConnectionError, TimeoutError)):
        return BackendUnavailable(f"Redis is unreachable or did not answer in time: {message}")
    if isinstance(exc, _UNAVAILABLE_REPLIES):
        return BackendUnavailable(f"Redis cannot serve this request now: {message}")
    if isinstance(exc, rex.AskError | rex.ClusterCrossSlotError) or message.startswith("CROSSSLOT"):
        return BackendProtocolError(
            "this Redis server is a node of a Redis Cluster: name its nodes in a "
            f"redis+cluster://host:port[,host:port...] URL (Redis said: {message})"
        )
    if isinstance(exc, rex.RedisClusterException) and "not enabled" in message.lower():
        return BackendProtocolError(
            "this Redis server is not a Redis Cluster node: use a redis:// URL, not "
            f"redis+cluster:// (Redis said: {message})"
        )
    if isinstance(exc, rex.ClusterError) and "TTL exhausted" in message:
        # redis-py gives up after its redirections: every attempt was answered MOVED, ASK
        # or TRYAGAIN, none of which runs the command.
        return BackendUnavailable(
            "Redis Cluster kept redirecting the command (a slot is being moved between "
            "nodes, or the cluster is changing), so it did not run and nothing was written; "
            f"sending it again once the move is over is safe (Redis said: {message})"
        )
    if isinstance(exc, rex.RedisClusterException) and "cannot be connected" in message:
        return BackendUnavailable(f"no node of the Redis Cluster answers: {message}")
    if isinstance(exc, rex.OutOfMemoryError) or (
        isinstance(exc, rex.ResponseError) and message.startswith(OOM)
    ):
        return BackendFull(
            "Redis is out of memory (maxmemory reached under the noeviction policy) and "
            f"refused the write; nothing was written (Redis said: {message})"
        )
    if isinstance(exc, rex.ResponseError):
        if message.startswith(FENCED):
            lock = message[len(FENCED) :].strip() or "(unknown lock)"
            return Fenced(f"lease {lock} is no longer held by this owner (Redis said: {message})")
        if message.startswith(BACKPRESSURE):
            return BackpressureError(_backpressure_message(message))
        if message.startswith(RESIZED):
            return _resized(message)
        if message.startswith(NOGROUP):
            return GroupMissing(f"Redis refused the command: {message}")
        return BackendProtocolError(f"Redis refused the command: {message}")
    return BackendProtocolError(f"unexpected Redis client error {type(exc).__name__}: {message}")


def _unnamed(exc: BaseException) -> str:
    """Words for an exception raised without a message (a bare timeout, say)."""
    if isinstance(exc, (rex.TimeoutError, TimeoutError)):
        return f"no reply within the socket timeout ({type(exc).__name__})"
    return f"{type(exc).__name__} (no detail given)"


def _resized(reply: str) -> StreamResized:
    _, key, count = [*reply.split(" ", 2), "", ""][:3]
    return StreamResized(
        f"stream partition {key} now routes with {count or 'another'} partitions: the "
        f"append was routed with an older count and was not written (Redis said: {reply})",
        key,
        int(count) if count.isdigit() else 0,
    )


def _backpressure_message(reply: str) -> str:
    match = _BACKPRESSURE_RE.match(reply)
    if match is None:
        return f"append refused by a lossless cap; nothing was written (Redis said: {reply})"
    entry = match["id"]
    what = "an entry of this batch" if entry == "new" else f"entry {entry}"
    return (
        f"append to stream {match['key']} refused by its lossless cap: trimming would remove "
        f"{what}, which consumer group {match['group']!r} has not acknowledged; nothing was "
        f"written (Redis said: {reply})"
    )


_REDIS_ERRORS = (rex.RedisError, rex.RedisClusterException, ConnectionError, TimeoutError)

T = TypeVar("T")

COUNTS_CANCELLATIONS = hasattr(asyncio.Task, "cancelling")
"""Whether :class:`translated` restores lost cancellations (Python >= 3.11 has
``Task.cancelling``); tests turn it off to exercise :func:`cancellable` instead."""


class translated:  # used like a function: ``with translated():``
    """Re-raise redis-py and socket errors from the body as runnel errors (``from`` them).

    It also restores a cancellation redis-py lost. When a task is cancelled just as a
    blocking read's reply arrives, redis-py can catch the ``CancelledError`` while it tidies
    the connection and return normally (or fail with a connection error), so the caller
    never learns that it was cancelled and a ``while True`` loop around the read keeps
    running, which hangs whatever awaits that task. The task's own count of pending
    cancellation requests (:meth:`asyncio.Task.cancelling`) still shows the request: if it
    grew during the call, the call ends with ``CancelledError`` as it should have (with
    a message of its own, not the one given to ``cancel()``). The command may have taken
    effect on the server by then (an ``XACK`` done, entries added to the pending list);
    callers treat that like any call cancelled after it was sent. Python 3.10 has no
    ``Task.cancelling``: there the guard does nothing, and
    :func:`cancellable` protects the blocking reads instead.

    Example:
        >>> from redis.exceptions import ResponseError
        >>> try:
        ...     with translated():
        ...         raise ResponseError("NOGROUP No such key")
        ... except GroupMissing as e:
        ...     print(e)
        Redis refused the command: NOGROUP No such key
    """

    __slots__ = ("_before", "_count")

    def __init__(self) -> None:
        self._count: Callable[[], int] | None = None
        self._before = 0

    def __enter__(self) -> None:
        if not COUNTS_CANCELLATIONS:
            return
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: a synchronous use, nothing to guard
            return
        count = getattr(task, "cancelling", None)  # Python >= 3.11
        if count is not None:
            self._count = count
            self._before = count()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        count = self._count
        if (
            count is not None
            and count() > self._before
            and not isinstance(exc, asyncio.CancelledError)
        ):
            raise asyncio.CancelledError("cancelled during a Redis call") from exc
        if exc is not None and isinstance(exc, _REDIS_ERRORS):
            raise translate(exc) from exc


async def cancellable(call: Awaitable[T]) -> T:
    """Await ``call`` in a task of its own, so that cancelling the caller always ends it.

    For blocking reads on Python 3.10, where :class:`translated` cannot notice a
    cancellation that redis-py lost: the caller awaits the call through
    :func:`asyncio.shield`, so its own cancellation always reaches it, and then cancels
    the call's task (whatever that task does with it no longer matters).
    """
    task = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_forget)
        raise


def _forget(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
