"""Waiting for replicas: the opt-in durability of ``redis_wait_replicas``.

Redis replicates asynchronously: a write the primary acknowledged may not have reached a
replica when the primary dies, and the replica promoted in its place never had it. With
``redis_wait_replicas = N``, every append, fetch round and dead letter is followed by a
marker write and ``WAIT N timeout`` on one connection. The replication stream is ordered,
so once a replica has the marker it has every earlier write of every connection, the
call's included: a send then returns only when N replicas hold its events.

The cost is one more round trip per call, plus however long the replicas take (their lag);
``benchmarks/`` measures it. ``WAIT`` does not make Redis strongly consistent: a replica
that confirmed a write can still lose it (it restarts without persistence), and a write
that timed out may yet arrive.

Example:
    >>> from redis.asyncio import Redis
    >>> log = ReplicatedStreamLog(Redis(), replicas=1, timeout=0.5)   # no I/O yet
    >>> log.replicas, log.timeout_ms
    (1, 500)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from redis.asyncio import Redis

from runnel.adapters.redis._errors import translated
from runnel.adapters.redis._replies import as_int
from runnel.adapters.redis.streams import RedisStreamLog
from runnel.domain.model import Entry
from runnel.errors import NotReplicated
from runnel.ports import AckRequest, Append, Cap, Commit, DeadLetter, ReadRequest, Routing

log = logging.getLogger("runnel.adapters.redis")

MARKER_KEY = "__sync"
"""The key the marker write increments (one per server, shared by every app)."""


class ReplicatedStreamLog(RedisStreamLog):
    """:class:`~runnel.adapters.redis.streams.RedisStreamLog` whose writes wait for
    ``replicas`` replicas, up to ``timeout`` seconds each.

    Raises (from ``append`` and ``dead_letter``):
        NotReplicated: fewer replicas confirmed the write in time (it is on the primary).
    """

    def __init__(self, client: Redis, replicas: int, timeout: float) -> None:
        super().__init__(client)
        self.replicas = replicas
        self.timeout_ms = max(1, round(timeout * 1000))
        self.on_short: Callable[[str], None] | None = None
        """Told of each fetch round, commit and dead letter the replicas fell short on
        (the worker counts them; see :class:`~runnel.ports.ReplicaShortfalls`)."""

    def _short(self, write: str) -> None:
        if self.on_short is not None:
            self.on_short(write)

    async def confirmed(self) -> int:
        """Write the marker and wait; how many replicas have every write so far."""
        pipe = self._client.pipeline(transaction=False)
        pipe.incr(MARKER_KEY)
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
        with translated():
            _, acked = await pipe.execute()
        return as_int(acked)

    async def _require(self, what: str) -> None:
        acked = await self.confirmed()
        if acked < self.replicas:
            raise NotReplicated(
                f"{what} is on the primary, but {acked} of the {self.replicas} replicas "
                f"required confirmed it within {self.timeout_ms} ms: a failover now could "
                "lose it (sending it again may duplicate it)",
                acked,
            )

    async def append(
        self,
        entries: Sequence[Append],
        cap: Cap | None = None,
        window: float = 0.0,
        routing: Routing | None = None,
    ) -> list[bytes]:
        """Append as the single-server log does, then wait for the replicas."""
        ids = await super().append(entries, cap, window, routing)
        if ids:
            await self._require(f"an append of {len(ids)} entries")
        return ids

    async def exchange(
        self, acks: Sequence[AckRequest], reads: Sequence[ReadRequest]
    ) -> tuple[list[int | Exception], list[list[Entry] | Exception]]:
        """Acknowledge and read, then wait for the replicas (a warning if they fall short:
        the round's work is done either way)."""
        done = await super().exchange(acks, reads)
        if acks or reads:
            acked = await self.confirmed()
            if acked < self.replicas:
                self._short("fetch_round")
                log.warning(
                    "a fetch round's acknowledgements reached %d of the %d replicas required "
                    "within %d ms: a failover now could deliver them again",
                    acked,
                    self.replicas,
                    self.timeout_ms,
                )
        return done

    async def wait_and_read(
        self, after: Mapping[str, bytes], timeout: float, reads: Sequence[ReadRequest]
    ) -> tuple[set[str], None]:
        """:meth:`wait` alone: every read goes in a round, which waits for the replicas."""
        return await self.wait(after, timeout), None

    async def commit(self, commit: Commit) -> list[bytes] | None:
        """Commit as the single-server log does, then wait for the replicas (a warning if
        they fall short: the commit is applied on the primary either way)."""
        ids = await super().commit(commit)
        acked = await self.confirmed()
        if acked < self.replicas:
            self._short("commit")
            log.warning(
                "a commit reached %d of the %d replicas required within %d ms: a failover "
                "now could lose it, and its input would be processed again",
                acked,
                self.replicas,
                self.timeout_ms,
            )
        return ids

    async def dead_letter(self, letter: DeadLetter) -> bytes:
        """Dead-letter, then wait for the replicas."""
        sink_id = await super().dead_letter(letter)
        try:
            await self._require("a dead letter")
        except NotReplicated:
            self._short("dead_letter")
            raise
        return sink_id
