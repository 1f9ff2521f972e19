"""The only place raw Redis replies become domain values.

Replies arrive either straight from a Lua script (plain nested lists, RESP2) or after
redis-py's RESP2 response callbacks (tuples and dicts). Each parser checks the shape it
expects and raises :class:`~runnel.errors.BackendProtocolError` naming what it expected
and what it found, so a surprise never travels further as a wrong value.

Example:
    >>> [e.fields for e in entries_from_script([[b"1-0", [b"n", b"1"]], [b"2-0", None]])]
    [{b'n': b'1'}, {}]
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from redis.exceptions import ResponseError

from runnel.adapters.redis._errors import translate
from runnel.domain.excerpt import truncated
from runnel.domain.model import Entry
from runnel.errors import BackendError, BackendProtocolError, Fenced, PermissionDenied
from runnel.ports import (
    GroupInfo,
    GroupSnapshot,
    KeyPeek,
    MembershipRecord,
    MembershipWrite,
    PendingEntry,
)

T = TypeVar("T")


def _unexpected(expected: str, found: Any) -> BackendProtocolError:
    # reprlib bounds every part of the reply (a stream entry may hold megabytes), and
    # truncated() marks how long the text was.
    shown = truncated(reprlib.repr(found), 200)
    return BackendProtocolError(f"expected {expected} from Redis, found {shown}")


def _list(raw: Any, what: str) -> Sequence[Any]:
    if not isinstance(raw, (list, tuple)):
        raise _unexpected(what, raw)
    return raw


def as_bytes(raw: Any) -> bytes:
    """A bulk string reply.

    Example:
        >>> as_bytes(b"1-0")
        b'1-0'
    """
    if not isinstance(raw, bytes):
        raise _unexpected("a bulk string", raw)
    return raw


def optional_bytes(raw: Any) -> bytes | None:
    """A bulk string or nil reply (GET).

    Example:
        >>> optional_bytes(None) is None
        True
    """
    return None if raw is None else as_bytes(raw)


def as_int(raw: Any) -> int:
    """An integer reply (also accepts the digits of a bulk string, as XINFO may send).

    Example:
        >>> as_int(b"3")
        3
    """
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, (bytes, str)):
        try:
            return int(raw)
        except ValueError:
            pass
    raise _unexpected("an integer", raw)


def flags(raw: Any, count: int) -> list[bool]:
    """``count`` integer replies (or one array of them) read as booleans (non-zero is True).

    Example:
        >>> flags([1, 0], 2)
        [True, False]
    """
    values = [as_int(item) != 0 for item in _list(raw, "an array of integers")]
    if len(values) != count:
        raise _unexpected(f"{count} integers", raw)
    return values


def ids(raw: Any, count: int) -> list[bytes]:
    """The ``count`` entry ids the append script returns.

    Example:
        >>> ids([b"1-0", b"1-1"], 2)
        [b'1-0', b'1-1']
    """
    values = [as_bytes(item) for item in _list(raw, "an array of entry ids")]
    if len(values) != count:
        raise _unexpected(f"{count} entry ids", raw)
    return values


def flat_hash(raw: Any) -> dict[bytes, bytes]:
    """A flat ``[field, value, ...]`` array (HGETALL from Lua, stream entry fields).

    ``None`` (nil, e.g. an entry trimmed after delivery) gives an empty dict.

    Example:
        >>> flat_hash([b"a", b"1"])
        {b'a': b'1'}
    """
    if raw is None:
        return {}
    items = _list(raw, "a field/value array")
    if len(items) % 2:
        raise _unexpected("an even number of fields and values", raw)
    return {as_bytes(items[i]): as_bytes(items[i + 1]) for i in range(0, len(items), 2)}


def hash_dict(raw: Any) -> dict[bytes, bytes]:
    """HGETALL as redis-py's callback returns it (a dict of bytes).

    Example:
        >>> hash_dict({b"a": b"1"})
        {b'a': b'1'}
    """
    if not isinstance(raw, Mapping):
        raise _unexpected("a hash", raw)
    return {as_bytes(k): as_bytes(v) for k, v in raw.items()}


def entries_from_script(raw: Any) -> list[Entry]:
    """Stream entries as Lua returns them: ``[[id, [field, value, ...] | nil], ...]``."""
    out = []
    for item in _list(raw, "an array of stream entries"):
        pair = _list(item, "an [id, fields] stream entry")
        if len(pair) != 2:
            raise _unexpected("an [id, fields] stream entry", item)
        out.append(Entry(as_bytes(pair[0]), flat_hash(pair[1])))
    return out


_new_tuple = tuple.__new__


def _fast_entries(raw: Any) -> list[Entry]:
    """Entries from a script reply, with only cheap shape checks (any surprise raises
    TypeError or ValueError, and the caller falls back to the checked parser)."""
    # One call per entry is most of the cost here: the tuple is built without the named
    # tuple's Python-level __new__, and zip() takes no keyword (the length is even).
    out: list[Entry] = []
    append = out.append
    for entry_id, flat in raw:
        if flat:
            if type(flat) is not list or len(flat) & 1:
                raise ValueError("not a field/value list")
            pairs = iter(flat)
            append(_new_tuple(Entry, (entry_id, dict(zip(pairs, pairs)), 1)))  # noqa: B905
        else:  # nil: trimmed after delivery
            append(_new_tuple(Entry, (entry_id, {}, 1)))
    return out


def entries_of(entries: Any) -> list[Entry]:
    """Stream entries ``[[id, [field, value, ...] | nil], ...]``, fast, checked on surprise.

    Example:
        >>> entries_of([[b"1-0", [b"k", b"v"]], [b"2-0", None]])[1]
        Entry(id=b'2-0', fields={}, delivery_count=1)
    """
    try:
        out = _fast_entries(entries)
        if out and not isinstance(out[0].id, bytes):
            raise TypeError
    except (TypeError, ValueError):
        out = entries_from_script(entries)  # raises BackendProtocolError with the details
    return out


def xreadgroup_entries(reply: Any) -> list[Entry]:
    """A native ``XREADGROUP`` of one stream: nil, or ``[[key, entries]]``.

    Example:
        >>> xreadgroup_entries(None), xreadgroup_entries([[b"s", [[b"1-0", [b"k", b"v"]]]]])
        ([], [Entry(id=b'1-0', fields={b'k': b'v'}, delivery_count=1)])
    """
    if reply is None:
        return []
    streams = _list(reply, "an XREADGROUP reply of one stream")
    if len(streams) != 1:
        raise _unexpected("an XREADGROUP reply of one stream", reply)
    pair = _list(streams[0], "a [key, entries] XREADGROUP item")
    if len(pair) != 2:
        raise _unexpected("a [key, entries] XREADGROUP item", streams[0])
    return entries_of(pair[1])


def with_delivery_counts(entries: list[Entry], pending: Any) -> list[Entry]:
    """Give each history entry its delivery count from XPENDING's extended reply."""
    counts = {as_bytes(row[0]): as_int(row[3]) for row in _pending_rows(pending)}
    return [Entry(e.id, e.fields, counts.get(e.id, 1)) for e in entries]


def _slot_entries(entries: Any, pending: Any) -> list[Entry]:
    out = entries_of(entries)
    if pending is None:
        return out
    counts = {as_bytes(row[0]): as_int(row[3]) for row in _pending_rows(pending)}
    return [Entry(e.id, e.fields, counts.get(e.id, 1)) for e in out]


def _fenced(lock: str) -> Fenced:
    return Fenced(f"lease {lock} is no longer held by this owner (Redis said: FENCED {lock})")


def _refused(message: Any) -> BackendError | PermissionDenied:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return translate(ResponseError(text))


def read_slots(raw: Any, locks: Sequence[str]) -> list[list[Entry] | Exception]:
    """The read slots of the exchange script's reply: one per request, in order.

    ``locks`` names each request's lock, for the message of a fenced slot.

    Example:
        >>> slots = read_slots([[1, [[b"5-0", [b"k", b"v"]]]], [0]], ["l0", "l1"])
        >>> slots[0][0].fields, type(slots[1]).__name__
        ({b'k': b'v'}, 'Fenced')
    """
    rows = _list(raw, "one reply per partition read")
    if len(rows) != len(locks):
        raise _unexpected(f"{len(locks)} partition read replies", raw)
    out: list[list[Entry] | Exception] = []
    for row, lock in zip(rows, locks, strict=True):
        row = _list(row, "a partition read reply")
        code = as_int(row[0]) if row else None
        if code == 1 and len(row) in (2, 3):
            out.append(_slot_entries(row[1], row[2] if len(row) == 3 else None))
        elif code == 0:
            out.append(_fenced(lock))
        elif code == -1 and len(row) == 2:
            out.append(_refused(row[1]))
        else:
            raise _unexpected("[1, entries(, pending)], [0] or [-1, error]", row)
    return out


def ack_slots(raw: Any, locks: Sequence[str]) -> list[int | Exception]:
    """The acknowledgement slots of the exchange script's reply: one count (or error) each.

    Example:
        >>> [type(s).__name__ for s in ack_slots([[1, 3], [0], [-1, b"NOGROUP x"]], "abc")]
        ['int', 'Fenced', 'GroupMissing']
    """
    rows = _list(raw, "one reply per partition acknowledgement")
    if len(rows) != len(locks):
        raise _unexpected(f"{len(locks)} acknowledgement replies", raw)
    out: list[int | Exception] = []
    for row, lock in zip(rows, locks, strict=True):
        row = _list(row, "an acknowledgement reply")
        code = as_int(row[0]) if row else None
        if code == 1 and len(row) == 2:
            out.append(as_int(row[1]))
        elif code == 0:
            out.append(_fenced(lock))
        elif code == -1 and len(row) == 2:
            out.append(_refused(row[1]))
        else:
            raise _unexpected("[1, count], [0] or [-1, error]", row)
    return out


def exchange_slots(
    raw: Any, ack_locks: Sequence[str], read_locks: Sequence[str]
) -> tuple[list[int | Exception], list[list[Entry] | Exception]]:
    """The exchange script's reply ``{ack slots, read slots}``.

    Example:
        >>> acked, read = exchange_slots([[[1, 2]], [[1, [[b"5-0", [b"k", b"v"]]]]]], ["a"], ["r"])
        >>> acked, read[0][0].id
        ([2], b'5-0')
    """
    parts = _list(raw, "{ack slots, read slots}")
    if len(parts) != 2:
        raise _unexpected("{ack slots, read slots}", raw)
    return ack_slots(parts[0], ack_locks), read_slots(parts[1], read_locks)


def _pending_rows(raw: Any) -> list[Sequence[Any]]:
    rows = [_list(row, "an XPENDING row") for row in _list(raw, "XPENDING rows")]
    for row in rows:
        if len(row) != 4:
            raise _unexpected("an [id, consumer, idle, deliveries] XPENDING row", row)
    return rows


def stream_entries(raw: Any) -> list[Entry]:
    """XRANGE after redis-py's callback: ``[(id, {field: value}), ...]`` (nil: none).

    Example:
        >>> stream_entries([(b"1-0", {b"a": b"b"})])
        [Entry(id=b'1-0', fields={b'a': b'b'}, delivery_count=1)]
    """
    if raw is None:
        return []
    out = []
    for item in _list(raw, "an array of stream entries"):
        pair = _list(item, "an (id, fields) stream entry")
        if len(pair) != 2:
            raise _unexpected("an (id, fields) stream entry", item)
        fields = {} if pair[1] is None else hash_dict(pair[1])
        out.append(Entry(as_bytes(pair[0]), fields))
    return out


def _text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    return as_bytes(raw).decode("utf-8", "replace")


def groups(raw: Any) -> list[GroupInfo]:
    """XINFO GROUPS after redis-py's callback: one dict (str keys) per group.

    Example:
        >>> groups([{"name": b"g", "consumers": 1, "pending": 2, "last-delivered-id": b"3-0",
        ...          "lag": 5}])
        [GroupInfo(name='g', consumers=1, pending=2, last_delivered_id=b'3-0', lag=5)]

    ``lag`` is nil when Redis cannot tell it (read as None), and absent before Redis 7.0.
    """
    return _described(
        raw,
        "consumer group",
        lambda info: GroupInfo(
            name=_text(info["name"]),
            consumers=as_int(info["consumers"]),
            pending=as_int(info["pending"]),
            last_delivered_id=as_bytes(info["last-delivered-id"]),
            lag=None if info.get("lag") is None else as_int(info["lag"]),
        ),
    )


def pending_entries(raw: Any) -> list[PendingEntry]:
    """XPENDING's extended form after redis-py's callback (dicts, idle in ms).

    Example:
        >>> pending_entries([{"message_id": b"1-0", "consumer": b"c",
        ...                   "time_since_delivered": 1500, "times_delivered": 2}])
        [PendingEntry(id=b'1-0', consumer='c', idle=1.5, delivery_count=2)]
    """
    return _described(
        raw,
        "XPENDING row",
        lambda row: PendingEntry(
            id=as_bytes(row["message_id"]),
            consumer=_text(row["consumer"]),
            idle=as_int(row["time_since_delivered"]) / 1000,
            delivery_count=as_int(row["times_delivered"]),
        ),
    )


def _described(raw: Any, what: str, build: Callable[[Mapping[str, Any]], T]) -> list[T]:
    """An array of descriptions (dicts, after redis-py's callback), each built into a value."""
    out = []
    for item in _list(raw, f"an array of {what}s"):
        if not isinstance(item, Mapping):
            raise _unexpected(f"a {what}", item)
        try:
            out.append(build(item))
        except KeyError as exc:
            raise _unexpected(f"a {what} with {exc}", item) from exc
    return out


def woken_keys(raw: Any) -> set[str]:
    """The keys in an XREAD reply (``[[key, entries], ...]``, a dict, or nil on timeout).

    Example:
        >>> woken_keys([[b"s", [(b"1-0", {b"a": b"b"})]]])
        {'s'}
    """
    if raw is None:
        return set()
    if isinstance(raw, Mapping):
        return {_text(key) for key in raw}
    out = set()
    for item in _list(raw, "an XREAD reply"):
        pair = _list(item, "a [key, entries] XREAD item")
        if len(pair) != 2:
            raise _unexpected("a [key, entries] XREAD item", item)
        if pair[1]:
            out.add(_text(pair[0]))
    return out


def epoch(raw: Any) -> int | None:
    """The acquire script's reply: the new epoch, or nil when the lock is held.

    Example:
        >>> epoch(None) is None, epoch(7)
        (True, 7)
    """
    return None if raw is None else as_int(raw)


def membership_read(raw: Any) -> MembershipRecord:
    """``MGET value version``: the version (0 when missing) and the value.

    Example:
        >>> membership_read([b'{}', b'3']), membership_read([None, None])
        (MembershipRecord(version=3, value=b'{}'), MembershipRecord(version=0, value=None))
    """
    pair = _list(raw, "an MGET reply of two values")
    if len(pair) != 2:
        raise _unexpected("an MGET reply of two values", raw)
    version = 0 if pair[1] is None else as_int(pair[1])
    return MembershipRecord(version, optional_bytes(pair[0]))


def membership_write(raw: Any) -> MembershipWrite:
    """The membership update script's reply: ``{1, version, id}`` or ``{0, version}``.

    Example:
        >>> membership_write([1, 4, b"5-0"]), membership_write([0, 9])
        (MembershipWrite(written=True, version=4, announced=b'5-0'), \
MembershipWrite(written=False, version=9, announced=None))
    """
    row = _list(raw, "a [written, version, id] reply")
    if len(row) == 3 and as_int(row[0]) == 1:
        return MembershipWrite(True, as_int(row[1]), as_bytes(row[2]))
    if len(row) == 2 and as_int(row[0]) == 0:
        return MembershipWrite(False, as_int(row[1]))
    raise _unexpected("a [written, version, id] reply", raw)


def probe_refusals(raw: Any, probes: int) -> list[int]:
    """The probe script's reply ``{{number, error}, ...}``: the 0-based refused probes.

    Example:
        >>> probe_refusals([[2, b"ERR The user executing the script can't run this"]], 3)
        [1]
    """
    refused = []
    for row in _list(raw, "a list of {probe number, error}"):
        pair = _list(row, "a {probe number, error} pair")
        if len(pair) != 2 or not isinstance(pair[0], int) or not 1 <= pair[0] <= probes:
            raise _unexpected(f"a {{probe number in 1..{probes}, error}} pair", row)
        refused.append(pair[0] - 1)
    return refused


def _slot_ok(raw: Any, missing: tuple[str, ...] = ()) -> Any:
    """A pipeline slot's reply; None for a refusal naming a missing stream or group."""
    if isinstance(raw, ResponseError):
        message = str(raw)
        if any(word in message for word in missing):
            return None
        raise translate(raw)
    if isinstance(raw, Exception):
        raise translate(raw)
    return raw


def ttl_seconds(raw: Any) -> float | None:
    """PTTL in seconds; None for a key that is missing (-2) or never expires (-1).

    Example:
        >>> ttl_seconds(1500), ttl_seconds(-1), ttl_seconds(-2)
        (1.5, None, None)
    """
    ms = as_int(raw)
    return None if ms < 0 else ms / 1000


def snapshot(raw: Sequence[Any], group: str) -> GroupSnapshot:
    """One partition's replies of :meth:`RedisStreamLog.snapshot`, in its order:
    XLEN, XRANGE - + COUNT 1, XREVRANGE + - COUNT 1, XINFO GROUPS, XPENDING - + 1 (the
    oldest pending entry), GET lock, PTTL lock.

    Example:
        >>> snapshot([2, [(b"1-0", {})], [(b"2-0", {})],
        ...           [{"name": b"g", "consumers": 1, "pending": 1,
        ...             "last-delivered-id": b"1-0", "lag": 1}],
        ...           [{"message_id": b"1-0", "consumer": b"p0",
        ...             "time_since_delivered": 1500, "times_delivered": 3}],
        ...           b"w:3", 900], "g").oldest_deliveries
        3
    """
    if len(raw) != 7:
        raise _unexpected("7 replies per partition", raw)
    length = as_int(_slot_ok(raw[0]))
    first = stream_entries(_slot_ok(raw[1]))
    last = stream_entries(_slot_ok(raw[2]))
    described = _slot_ok(raw[3], ("no such key", "requires the key to exist"))
    found = [g for g in groups(described) if g.name == group] if described is not None else []
    listed = _slot_ok(raw[4], ("NOGROUP", "no such key"))
    oldest = pending_entries(listed)[:1] if listed is not None else []
    holder = optional_bytes(_slot_ok(raw[5]))
    return GroupSnapshot(
        length=length,
        first_id=first[0].id if first else None,
        last_id=last[0].id if last else None,
        group=found[0] if found else None,
        oldest_pending=oldest[0].id if oldest else None,
        holder=holder,
        lease_left=ttl_seconds(_slot_ok(raw[6])) if holder is not None else None,
        oldest_deliveries=oldest[0].delivery_count if oldest else 0,
        oldest_idle=oldest[0].idle if oldest else None,
    )


def peek(value: Any, ttl: Any) -> KeyPeek:
    """GET (a WRONGTYPE refusal reads as no value) and PTTL of one key.

    Example:
        >>> peek(b"w1", 2500)
        KeyPeek(value=b'w1', ttl=2.5)
    """
    got = _slot_ok(value, ("WRONGTYPE",))
    return KeyPeek(optional_bytes(got), ttl_seconds(_slot_ok(ttl)))
