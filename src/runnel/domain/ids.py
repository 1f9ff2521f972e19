"""Stream entry ids as values: parsed, compared, stepped and written back.

An entry id is ``<milliseconds>-<sequence>``, two unsigned 64-bit numbers, and ids order
by the pair. Backends and the wire hold ids as bytes (``b"1700000000000-3"``); code that
compares ids, or needs the id just above or just below one, parses them into a
:class:`StreamId` first, so that arithmetic lives here and nowhere else.

Example:
    >>> sid = StreamId.parse(b"1700-3")
    >>> sid.next(), sid.previous()
    (StreamId(ms=1700, seq=4), StreamId(ms=1700, seq=2))
    >>> StreamId.parse(b"1700-0").previous().encode()
    b'1699-18446744073709551615'
    >>> StreamId.parse(b"5") < StreamId.parse(b"5-1") < MAX_ID
    True
"""

from __future__ import annotations

from typing import NamedTuple

MAX_PART = 2**64 - 1
"""The largest millisecond or sequence number an id can hold."""


class StreamId(NamedTuple):
    """A parsed entry id; ordered like the ids in a stream.

    A named tuple, so comparisons and sorting run at C speed (the memory backend keeps
    thousands of them in sorted lists).

    Example:
        >>> StreamId(5, 2).encode(), str(StreamId(5, 2))
        (b'5-2', '5-2')
    """

    ms: int
    seq: int

    @classmethod
    def parse(cls, raw: bytes | str, *, end: bool = False) -> StreamId:
        """Parse ``<ms>-<seq>``, ``<ms>``, ``-`` or ``+``.

        A missing sequence means 0, or the largest sequence when ``end`` is true (as the
        end of an XRANGE reads it).

        Raises:
            ValueError: ``raw`` is not an entry id.

        Example:
            >>> StreamId.parse(b"7"), StreamId.parse("7", end=True).seq == MAX_PART
            (StreamId(ms=7, seq=0), True)
        """
        text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
        if text == "-":
            return MIN_ID
        if text == "+":
            return MAX_ID
        ms, dash, seq = text.partition("-")
        if ms.isdigit() and (seq.isdigit() or not dash) and ms.isascii() and seq.isascii():
            parsed = cls(int(ms), int(seq) if dash else (MAX_PART if end else 0))
            if parsed.ms <= MAX_PART and parsed.seq <= MAX_PART:
                return parsed
        raise ValueError(f"not a stream entry id: {raw!r}")

    def encode(self) -> bytes:
        """The id as stored: ``b"<ms>-<seq>"``."""
        return b"%d-%d" % (self.ms, self.seq)

    def __str__(self) -> str:
        return f"{self.ms}-{self.seq}"

    def next(self) -> StreamId:
        """The smallest id above this one.

        Example:
            >>> StreamId(5, MAX_PART).next()
            StreamId(ms=6, seq=0)
        """
        return StreamId(self.ms, self.seq + 1) if self.seq < MAX_PART else StreamId(self.ms + 1, 0)

    def previous(self) -> StreamId:
        """The largest id below this one (to read from this one inclusively).

        Raises:
            ValueError: this is ``0-0``, which has nothing below it.

        Example:
            >>> StreamId(5, 0).previous()
            StreamId(ms=4, seq=18446744073709551615)
        """
        if self.seq > 0:
            return StreamId(self.ms, self.seq - 1)
        if self.ms == 0:
            raise ValueError("0-0 is the smallest stream entry id")
        return StreamId(self.ms - 1, MAX_PART)


MIN_ID = StreamId(0, 0)
"""``0-0``, below every entry id (the ``-`` of XRANGE)."""

MAX_ID = StreamId(MAX_PART, MAX_PART)
"""The largest possible id (the ``+`` of XRANGE)."""
