"""The commits of an effectively-once processor, one partition at a time.

A :class:`Transactor` serves one partition's consumer. While an iteration runs it keeps
what the iteration staged (records sent to runnel streams, keyed state changes); when
the processor asks for the next item it commits them together with the acknowledgement
of the item, in one atomic step fenced by the partition's lease
(:meth:`runnel.ports.StreamLog.commit`), and reads the outcome from the domain's table
(:mod:`runnel.domain.transactions`). An iteration that staged nothing is acknowledged
like any other (coalesced with the fetch rounds): it has no effect to protect.

Every output's stream is prepared (its metadata checked, its processors' groups created)
before its first record is staged, so the output's cap protects the groups declared on it.

An output that one atomic step cannot reach from the input partition (another Redis
Cluster slot: :meth:`runnel.ports.StreamLog.colocated`) is committed to the partition's
outbox instead, and relayed after the commit (:mod:`runnel.domain.outbox`): the
transactor relays the outbox after every commit that wrote to it, and once when its
consumer starts (what a previous owner committed and did not relay).

Example:
    >>> from runnel.domain.transactions import on_commit, CommitOutcome
    >>> on_commit(CommitOutcome.FULL).retry   # wait for room downstream, then commit
    True
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from runnel.domain.keys import relay_key
from runnel.domain.model import Entry, Event
from runnel.domain.outbox import CapSpec, outbox_fields, parse_outbox_fields
from runnel.domain.transactions import CommitOutcome, Staged, on_commit
from runnel.errors import (
    BackendProtocolError,
    BackendUnavailable,
    BackpressureError,
    Fenced,
    Misconfigured,
    OutcomeUnknown,
)
from runnel.ports import AckRequest, Append, Cap, Clock, Commit, KeyValue, StateChange, StreamLog
from runnel.runtime.feed import PartitionFeed
from runnel.runtime.specs import ProcessorSpec
from runnel.runtime.state import KeyedState
from runnel.runtime.store import StreamStore

log = logging.getLogger(__name__)

FIRST_PAUSE: Final = 0.01
"""Seconds before a commit that could not be applied (no room, no reply) is tried again;
the pause doubles after each try."""

LONGEST_PAUSE: Final = 1.0
"""The longest pause between two tries of a commit."""

RELAY_BATCH: Final = 200
"""Outbox entries relayed per round (read, appended, deleted)."""


@dataclass(slots=True)
class CommitCounts:
    """Running totals of one executor's commits (its metrics read them)."""

    committed: int = 0
    """Iterations committed with outputs or state changes."""
    outputs: int = 0
    """Records committed to output streams."""
    retried: int = 0
    """Commits tried again (no room downstream, or no reply)."""
    fenced: int = 0
    """Commits and outbox relays refused because the lease was gone."""
    relayed: int = 0
    """Outbox entries relayed to their destinations (and deleted from the outbox)."""
    relay_failures: int = 0
    """Relay rounds that failed (no room downstream, no reply) and were tried again."""


Output = tuple[StreamStore, Append]


class Transactor:
    """Stages and commits the effects of one partition's iterations.

    Args:
        spec: the processor (effectively-once).
        feed: the partition it serves.
        log_port: where commits go.
        kv: where the partition's state is loaded from.
        clock: what retries pause on.
        ack: acknowledges an iteration that staged nothing (coalesced).
        counts: the executor's running totals.
    """

    def __init__(
        self,
        spec: ProcessorSpec,
        feed: PartitionFeed,
        log_port: StreamLog,
        kv: KeyValue,
        clock: Clock,
        ack: Callable[[Sequence[Event]], None],
        counts: CommitCounts,
    ) -> None:
        self._group = spec.name
        self._feed = feed
        self._log = log_port
        self._kv = kv
        self._clock = clock
        self._ack = ack
        self.counts = counts
        self._staged: Staged[Output] = Staged()
        self.state: KeyedState[Any] | None = None
        keys = spec.stream.keys
        if spec.state is not None:
            key = keys.state(spec.name, feed.partition.number)
            self.state = KeyedState(spec.state, key, self._staged)
        self.outbox = keys.outbox(spec.name, feed.partition.number)
        self.backlog = 0
        """Entries left in the outbox after the last relay round (a gauge)."""
        self._unrelayed = True  # the outbox may hold entries nobody relayed yet

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Relay what a previous owner left in the outbox (one fenced read when it is
        empty), then load the partition's committed state into the cache (once per
        consumer).

        A backend that does not answer is asked again, until it does or the feed closes
        (then nothing is processed: the consumer finds its feed closing).
        """
        await self.relay()
        state = self.state
        if state is None or state.loaded:
            return
        pause = FIRST_PAUSE
        while True:
            try:
                state.load(await self._kv.hash_get_all(state.key))
                return
            except BackendUnavailable as exc:
                if self._feed.closing:
                    return
                log.warning("loading the state of %s failed (retrying): %s", state.key, exc)
            await self._clock.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)

    # ------------------------------------------------------------------ staging

    async def stage(self, store: Any, appends: Sequence[Any]) -> None:
        """Keep ``appends`` for ``store``'s stream until the iteration commits.

        Raises:
            Misconfigured: the stream is on another backend (another App's Redis), which
                no commit of this processor can reach.
        """
        target: StreamStore = store
        if target.log is not self._log:
            raise Misconfigured(
                f"stream {target.spec.app}.{target.spec.name} is on another backend than this "
                "effectively-once processor: only sends to streams of its own App (on its "
                "own Redis) can be committed with its acknowledgements"
            )
        if not target.prepared:
            await target.prepare()
        self._staged.stage((target, append) for append in appends)

    def discard(self) -> None:
        """Forget what the current iteration staged (it failed, or was cancelled)."""
        self._staged.clear()

    # ------------------------------------------------------------------ committing

    async def commit(self, events: Sequence[Event]) -> None:
        """Commit what was staged with the acknowledgement of ``events``.

        Raises:
            Fenced: the lease is gone (the feed is closed as lost; nothing was written).
        """
        staged = self._staged
        if not staged:
            self._ack(events)
            return
        feed = self._feed
        changes = dict(staged.state)
        state = self.state
        change = None
        if state is not None and changes:
            change = StateChange(
                state.key,
                {k.encode(): v for k, v in changes.items() if v is not None},
                [k.encode() for k, v in changes.items() if v is None],
            )
        outputs, caps, routed = self._route(staged.outputs)
        commit = Commit(
            AckRequest(feed.key, self._group, [e.id for e in events], feed.fence),
            outputs,
            caps,
            change,
        )
        pause = FIRST_PAUSE
        while True:
            ids: list[bytes] | None = None
            try:
                ids = await self._log.commit(commit)
                outcome = CommitOutcome.COMMITTED if ids is not None else CommitOutcome.APPLIED
                error: Exception | None = None
            except Fenced as exc:
                outcome, error = CommitOutcome.FENCED, exc
            except BackpressureError as exc:
                outcome, error = CommitOutcome.FULL, exc
            except BackendUnavailable as exc:
                outcome, error = CommitOutcome.UNAVAILABLE, exc
            decision = on_commit(outcome)
            if decision.done:
                if state is not None:
                    state.committed(changes)
                self.counts.committed += 1
                self.counts.outputs += len(commit.outputs)
                staged.clear()
                if routed:
                    await self.relay(self._written(outputs, ids))
                return
            if decision.lost or feed.lost or feed.expired():
                self.counts.fenced += decision.lost
                staged.clear()
                feed.close(lost=True)
                raise Fenced(
                    f"the commit of {feed.partition.stream}.{feed.partition.number} entry "
                    f"{events[0].id.decode()} was not applied: the lease (epoch {feed.epoch}) "
                    f"is no longer ours ({error})"
                )
            self.counts.retried += 1
            log.warning(
                "commit of %s.%d not applied yet (%s): trying again",
                feed.partition.stream,
                feed.partition.number,
                error,
            )
            await self._clock.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)

    def _route(self, staged: Sequence[Output]) -> tuple[list[Append], dict[str, Cap], bool]:
        """The commit's outputs (each direct, or as an entry of the outbox, in send
        order), the caps of the direct ones, and whether any went to the outbox."""
        source = self._feed.key
        colocated = self._log.colocated
        outputs: list[Append] = []
        caps: dict[str, Cap] = {}
        routed = False
        for store, append in staged:
            if colocated(source, append.key):
                outputs.append(append)
                caps[append.key] = store.cap
                continue
            fields = outbox_fields(
                append.key,
                _cap_spec(store.cap, append.key),
                store.idempotency_window,
                append.fields,
            )
            outputs.append(Append(self.outbox, fields))
            routed = True
        return outputs, caps, routed

    # ------------------------------------------------------------------ relaying

    def _written(self, outputs: Sequence[Append], ids: list[bytes] | None) -> list[Entry] | None:
        """The outbox entries a commit just wrote (its reply gives their ids), when they
        are all the outbox holds: the relay then need not read them back. None when the
        commit was applied already (no ids) or an earlier relay left entries."""
        if ids is None or self.backlog or self._unrelayed or len(ids) != len(outputs):
            return None
        return [
            Entry(entry_id, output.fields)
            for entry_id, output in zip(ids, outputs, strict=True)
            if output.key == self.outbox
        ]

    async def relay(self, written: Sequence[Entry] | None = None) -> None:
        """Append every entry of the partition's outbox to its destination, oldest first,
        then delete it from the outbox; until the outbox is empty.

        ``written``: the entries the commit just wrote, when they are all the outbox
        holds (the first round relays them without reading the outbox; a commit verified
        the lease a moment ago).

        Each entry is appended with an idempotency key made of its outbox id
        (:func:`runnel.domain.keys.relay_key`, in the destination's slot), so a relay
        repeated after a crash or a failed round appends nothing twice. A round that fails
        (no room downstream, no reply) is tried again after a pause, until the feed
        closes (the next owner relays what is left). A lease found gone closes the feed
        as lost: the next owner relays.
        """
        feed = self._feed
        fence = feed.fence
        pause = FIRST_PAUSE
        self._unrelayed = True
        while True:
            try:
                while True:
                    if written:
                        entries, written = list(written), None
                    else:
                        entries = await self._log.read_outbox(self.outbox, fence, RELAY_BATCH)
                    if not entries:
                        self.backlog = 0
                        self._unrelayed = False
                        return
                    await self._append_relayed(entries)
                    self.backlog = await self._log.drop_relayed(
                        self.outbox, fence, [e.id for e in entries]
                    )
                    self.counts.relayed += len(entries)
                    pause = FIRST_PAUSE
                    if not self.backlog:
                        self._unrelayed = False
                        return
            except Fenced as exc:
                self.counts.fenced += 1
                log.warning("relay of %s stopped: the lease is gone (%s)", self.outbox, exc)
                feed.close(lost=True)
                return
            except (BackendUnavailable, BackpressureError, OutcomeUnknown) as exc:
                self.counts.relay_failures += 1
                if feed.closing or feed.lost or feed.expired():
                    log.warning("relay of %s left for the next owner (%s)", self.outbox, exc)
                    return
                log.warning("relay of %s not done yet (%s): trying again", self.outbox, exc)
            await self._clock.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)

    async def _append_relayed(self, entries: Sequence[Entry]) -> None:
        """Append outbox ``entries`` to their destinations, in order per destination:
        one append per run of entries with the same cap and window."""
        runs: list[tuple[tuple[Cap | None, float], list[Append]]] = []
        for entry in entries:
            try:
                found = parse_outbox_fields(entry.fields)
            except ValueError as exc:
                raise BackendProtocolError(
                    f"{self.outbox} entry {entry.id.decode()}: {exc}"
                ) from None
            cap = None if found.cap is None else Cap(found.cap[0], found.cap[1], found.cap[2])
            append = Append(
                found.destination,
                found.fields,
                relay_key(found.destination, self.outbox, entry.id),
            )
            if runs and runs[-1][0] == (cap, found.window):
                runs[-1][1].append(append)
            else:
                runs.append(((cap, found.window), [append]))
        for (cap, window), appends in runs:
            await self._log.append(appends, cap, window)


def _cap_spec(cap: Cap | None, key: str) -> CapSpec | None:
    if cap is None:
        return None
    lost = cap.lost_keys.get(key, cap.lost_key) if cap.lost_keys else cap.lost_key
    return (cap.maxlen, cap.mode, lost)
