"""The outbox of an effectively-once partition: outputs committed now, appended later.

How it works:
    One atomic step (a Redis script) can only touch keys of one Redis Cluster slot. An
    effectively-once commit acknowledges its input in the input partition's slot; an
    output whose stream partition is in that slot too is appended by the commit itself
    (the *direct* path). Any other output is written, by the same commit, to the
    partition's *outbox* (a stream in the input partition's slot, see
    :meth:`runnel.domain.keys.Keys.outbox`), as an entry that carries everything needed
    to append it later: its destination stream key, the destination's cap, the
    idempotency window, and the record's fields.

    The partition's owner then *relays* the outbox, oldest entry first: it appends each
    entry to its destination with an idempotency key made of the outbox entry's id
    (:func:`runnel.domain.keys.relay_key`, in the destination's slot), then deletes the
    entries it relayed from the outbox, fenced by its lease. A relay that stops between
    the two steps (a crash, a lost lease) leaves the entries in the outbox; the next
    relay (the same owner, or the next one when it takes the partition) appends them
    again under the same keys, and the destination adds nothing.

    Which path an output takes depends only on the two slots, so every output from one
    input partition to one destination partition takes the same path, always, and they
    arrive in commit order.

    ========================== ========= ==========================================
    output's stream partition  path      appended
    ========================== ========= ==========================================
    in the input's slot        direct    by the commit, atomically with the ack
    in another slot            outbox    by the relay, after the commit, idempotently
    ========================== ========= ==========================================

Example:
    >>> fields = outbox_fields("__strm:{a.t.1}", (100, "lossless", "__lost:{a.t.1}"), 60.0,
    ...                        {b"data": b"x"})
    >>> entry = parse_outbox_fields(fields)
    >>> entry.destination, entry.cap, entry.window, dict(entry.fields)
    ('__strm:{a.t.1}', (100, 'lossless', '__lost:{a.t.1}'), 60.0, {b'data': b'x'})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, TypeAlias

DESTINATION_FIELD: Final = b"__outbox_to"
"""The field of an outbox entry holding its destination stream key."""

CAP_FIELD: Final = b"__outbox_cap"
"""The field holding the destination's cap: ``maxlen mode lost_key``, or empty for none."""

WINDOW_FIELD: Final = b"__outbox_window"
"""The field holding the idempotency window of the relay's append, in seconds."""

RESERVED: Final = frozenset({DESTINATION_FIELD, CAP_FIELD, WINDOW_FIELD})

Path = Literal["direct", "outbox"]

PATHS: Final[Mapping[bool, Path]] = MappingProxyType({True: "direct", False: "outbox"})
"""The path of an output, by whether its stream partition shares the input's slot."""

CapSpec: TypeAlias = tuple[int, Literal["lossless", "lossy"], str]
"""A destination's length cap as an outbox entry keeps it: maxlen, mode, lost counter."""


def path_of(colocated: bool) -> Path:
    """The path an output takes: ``direct`` when its stream partition is in the input
    partition's slot (``colocated``), else ``outbox``.

    Example:
        >>> path_of(True), path_of(False)
        ('direct', 'outbox')
    """
    return PATHS[colocated]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An outbox entry, decoded: where it goes, under which cap and window, and what."""

    destination: str
    cap: CapSpec | None
    window: float
    fields: Mapping[bytes, bytes]


def outbox_fields(
    destination: str, cap: CapSpec | None, window: float, fields: Mapping[bytes, bytes]
) -> dict[bytes, bytes]:
    """The fields of the outbox entry of a record with ``fields`` bound for
    ``destination``.

    Raises:
        ValueError: the record's fields use a name reserved for the outbox.
    """
    clash = RESERVED.intersection(fields)
    if clash:
        raise ValueError(f"fields {sorted(clash)} are reserved for outbox entries")
    cap_text = "" if cap is None else f"{cap[0]} {cap[1]} {cap[2]}"
    out: dict[bytes, bytes] = {
        DESTINATION_FIELD: destination.encode(),
        CAP_FIELD: cap_text.encode(),
        WINDOW_FIELD: repr(float(window)).encode(),
    }
    out.update(fields)
    return out


def parse_outbox_fields(fields: Mapping[bytes, bytes]) -> OutboxEntry:
    """Decode an outbox entry's fields.

    Raises:
        ValueError: the entry is not an outbox entry (a field missing or malformed).
    """
    try:
        destination = fields[DESTINATION_FIELD].decode()
        cap_text = fields[CAP_FIELD].decode()
        window = float(fields[WINDOW_FIELD])
        cap: CapSpec | None = None
        if cap_text:
            maxlen, mode, lost_key = cap_text.split(" ", 2)
            if mode not in ("lossless", "lossy"):
                raise ValueError(f"cap mode {mode!r}")
            cap = (int(maxlen), "lossless" if mode == "lossless" else "lossy", lost_key)
    except (KeyError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(
            f"not an outbox entry: expected the fields {sorted(RESERVED)}, found "
            f"{sorted(fields)[:6]} ({exc!r})"
        ) from None
    record = {k: v for k, v in fields.items() if k not in RESERVED}
    return OutboxEntry(destination, cap, window, record)
