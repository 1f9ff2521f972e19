"""Watching one processor's partitions: counters, lag and pending entries, stuck partitions.

One :class:`ProcessorMonitor` per executor. It hands each consumer its
:class:`~runnel.runtime.iterations.IterationMonitor` (when metrics or tracing are on), turns
the counters the executor keeps anyway (leases gained and lost, rebalances, fenced
refusals, store resets) into metrics when asked to :meth:`~ProcessorMonitor.publish`, and
every ``partition_check_interval`` :meth:`~ProcessorMonitor.check` looks at each owned
partition in Redis:

* its lag (entries not yet delivered to the group) and pending entries (``XINFO
  GROUPS``), and how long ago its oldest pending entry was delivered (``XPENDING``);
* whether it is stuck (:mod:`runnel.domain.health`): the iteration in flight has run
  longer than ``stuck.iteration``, or the oldest pending entry waited longer than
  ``stuck.pending``. A new reason is logged once as a warning and counted; the partition
  recovering is logged once too.

The iteration in flight is known without timing every iteration: a check notes the item
the processor holds, and when a later check finds the very same item, it has been in
flight at least since the first. Nothing here runs per event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from runnel.domain.health import StuckReason, stuck_change, stuck_reasons
from runnel.errors import BackendError, BackendUnavailable, PermissionDenied
from runnel.ports import Clock, StreamAdmin, StreamLog
from runnel.runtime.iterations import IterationMonitor, Where
from runnel.runtime.plan import PartitionChecks
from runnel.telemetry import LabelValue, Metrics, NoMetrics, NoTracing, Tracing

log = logging.getLogger(__name__)


class BackendWatch(Protocol):
    """Told whether calls to the backend succeed (the worker's health keeps it)."""

    def answered(self) -> None:
        """A call succeeded."""
        ...

    def failed(self, error: BaseException) -> None:
        """A call failed because the backend did not answer."""
        ...


@dataclass(frozen=True, slots=True)
class Counts:
    """The running totals an executor keeps, as :meth:`ProcessorMonitor.publish` reads them."""

    rebalances: int = 0
    gained: int = 0
    lost: int = 0
    fenced: int = 0
    store_resets: int = 0
    owned: int = 0
    assigned: int = 0
    commits: int = 0
    committed_outputs: int = 0
    commit_retries: int = 0
    relayed: int = 0
    relay_failures: int = 0
    outbox_backlog: int = 0
    reaped_by_connection: int = 0
    reaped_by_heartbeat: int = 0


@dataclass(slots=True)
class _Watched:
    """What the checks remember of one owned partition."""

    item: object | None = None
    since: float = 0.0
    reasons: frozenset[StuckReason] = frozenset()
    gauges: dict[str, float] = field(default_factory=dict)


_PARTITION_GAUGES = (
    "runnel_partition_lag",
    "runnel_partition_pending",
    "runnel_partition_oldest_pending_seconds",
    "runnel_partition_stuck",
)


class ProcessorMonitor:
    """Metrics, traces and stuck-partition checks of one executor (see the module docstring).

    Args:
        app: the app's name.
        stream: the stream's name.
        processor: the processor (consumer group).
        executor: the executor's id.
        partition_count: the stream's partition count.
        log_port: reads the groups' lag and pending counts.
        admin: reads the oldest pending entry.
        clock: the executor's clock.
        metrics: where metrics go.
        tracing: where consumer spans go.
        checks: how often to check, and the stuck thresholds.
        watch: told whether the checks' calls to the backend succeed.
    """

    def __init__(
        self,
        app: str,
        stream: str,
        processor: str,
        executor: str,
        partition_count: int,
        log_port: StreamLog,
        admin: StreamAdmin,
        clock: Clock,
        metrics: Metrics | None = None,
        tracing: Tracing | None = None,
        checks: PartitionChecks | None = None,
        watch: BackendWatch | None = None,
    ) -> None:
        self.metrics = metrics = metrics if metrics is not None else NoMetrics()
        self.tracing = tracing if tracing is not None else NoTracing()
        self.checks = checks if checks is not None else PartitionChecks()
        self._where = Where(app, stream, processor, 0, executor)
        self._log = log_port
        self._admin = admin
        self._clock = clock
        self._watch = watch
        labels = self._where.processor_labels()
        self._counters = {
            "rebalances": metrics.counter("runnel_rebalances_total", **labels),
            "gained": metrics.counter("runnel_leases_gained_total", **labels),
            "lost": metrics.counter("runnel_leases_lost_total", **labels),
            "fenced": metrics.counter("runnel_fenced_refusals_total", **labels),
            "commits": metrics.counter("runnel_commits_total", **labels),
            "committed_outputs": metrics.counter("runnel_committed_outputs_total", **labels),
            "commit_retries": metrics.counter("runnel_commit_retries_total", **labels),
            "relayed": metrics.counter("runnel_outbox_relayed_total", **labels),
            "relay_failures": metrics.counter("runnel_outbox_relay_failures_total", **labels),
            "reaped_by_connection": metrics.counter(
                "runnel_partitions_reaped_total", **labels, reason="connection"
            ),
            "reaped_by_heartbeat": metrics.counter(
                "runnel_partitions_reaped_total", **labels, reason="heartbeat"
            ),
        }
        self._outbox_backlog = metrics.gauge("runnel_outbox_backlog", **labels)
        self._resets = metrics.counter("runnel_store_resets_total", app=app, stream=stream)
        self._owned = metrics.gauge("runnel_partitions_owned", **labels)
        self._assigned = metrics.gauge("runnel_partitions_assigned", **labels)
        metrics.gauge("runnel_stream_partitions", app=app, stream=stream).set(partition_count)
        self._published = Counts()
        self._iterations: dict[int, IterationMonitor] = {}
        self._watched: dict[int, _Watched] = {}

    # ------------------------------------------------------------------ consumers

    def iterations(self, partition: int) -> IterationMonitor | None:
        """The iteration monitor of ``partition``'s consumer; None when nothing is measured.

        A partition keeps its monitor while it is owned, across restarts of its processor.
        """
        monitor = self._iterations.get(partition)
        if monitor is None:
            where = Where(
                self._where.app,
                self._where.stream,
                self._where.processor,
                partition,
                self._where.executor,
            )
            monitor = IterationMonitor(where, self.metrics, self.tracing, self._clock)
            if not monitor.active:
                return None
            self._iterations[partition] = monitor
        return monitor

    def released(self, partition: int) -> None:
        """This executor no longer owns ``partition``: stop exporting its series."""
        monitor = self._iterations.pop(partition, None)
        if monitor is not None:
            monitor.publish()
        watched = self._watched.pop(partition, None)
        if watched is None:
            return
        labels = self._labels(partition)
        for name in watched.gauges:
            self.metrics.forget(name, **labels)
        if watched.reasons:
            log.info(
                "%s.%d is no longer watched by this worker (it was stuck: %s)",
                self._where.stream,
                partition,
                ", ".join(sorted(r.value for r in watched.reasons)),
                extra={"partition": partition},
            )

    # ------------------------------------------------------------------ counters

    def publish(self, counts: Counts) -> None:
        """Bring the counters up to date with the executor's running totals."""
        for monitor in self._iterations.values():
            monitor.publish()
        before = self._published
        for name, counter in self._counters.items():
            delta = getattr(counts, name) - getattr(before, name)
            if delta > 0:
                counter.inc(delta)
        if counts.store_resets > before.store_resets:
            self._resets.inc(counts.store_resets - before.store_resets)
        self._owned.set(counts.owned)
        self._assigned.set(counts.assigned)
        self._outbox_backlog.set(counts.outbox_backlog)
        self._published = counts

    # ------------------------------------------------------------------ partition checks

    async def check(self, owned: Mapping[int, str], in_flight: Mapping[int, object | None]) -> None:
        """Look at every owned partition (``owned``: number to stream key) once.

        ``in_flight`` holds, per partition, the item its processor holds now (None between
        iterations).
        """
        now = self._clock.now()
        for number in list(self._watched):
            if number not in owned:
                self.released(number)
        for number, key in sorted(owned.items()):
            watched = self._watched.setdefault(number, _Watched(since=now))
            try:
                lag, pending, oldest = await self._backlog(key)
            except (BackendError, PermissionDenied) as exc:
                if isinstance(exc, BackendUnavailable) and self._watch is not None:
                    self._watch.failed(exc)
                log.debug("checking %s failed: %s", key, exc)
                return  # try again at the next check
            if self._watch is not None:
                self._watch.answered()
            now = self._clock.now()
            item = in_flight.get(number)
            if item is None or item is not watched.item:
                watched.item, watched.since = item, now
            running = now - watched.since if item is not None else None
            self._stuck(number, watched, running, oldest, item)
            self._retune(number)
            self._set(number, watched, "runnel_partition_pending", pending)
            self._set(number, watched, "runnel_partition_oldest_pending_seconds", oldest or 0.0)
            self._set(number, watched, "runnel_partition_stuck", 1 if watched.reasons else 0)
            if lag is not None:
                self._set(number, watched, "runnel_partition_lag", lag)

    async def _backlog(self, key: str) -> tuple[int | None, int, float | None]:
        """The partition's lag, pending count and oldest pending entry's idle seconds."""
        group = self._where.processor
        info = next((g for g in await self._log.groups(key) if g.name == group), None)
        if info is None:
            return None, 0, None
        oldest = None
        if info.pending:
            entries = await self._admin.pending(key, group, count=1)
            oldest = entries[0].idle if entries else None
        return info.lag, info.pending, oldest

    def _stuck(
        self,
        number: int,
        watched: _Watched,
        running: float | None,
        oldest: float | None,
        item: object | None,
    ) -> None:
        reasons = stuck_reasons(self.checks.stuck, running, oldest)
        change = stuck_change(watched.reasons, reasons)
        watched.reasons = reasons
        stream = self._where.stream
        for reason in change.new:
            self.metrics.counter(
                "runnel_stuck_partition_warnings_total", **self._labels(number), reason=reason.value
            ).inc()
            if reason is StuckReason.ITERATION:
                log.warning(
                    "%s.%d is stuck: the iteration on entry %s has run for at least %.1fs "
                    "(stuck_iteration_seconds=%g)",
                    stream,
                    number,
                    _entry_of(item),
                    running or 0.0,
                    self.checks.stuck.iteration or 0.0,
                    extra={"partition": number},
                )
            else:
                log.warning(
                    "%s.%d is stuck: its oldest pending entry was delivered %.1fs ago and is "
                    "not acknowledged (stuck_pending_seconds=%g)",
                    stream,
                    number,
                    oldest or 0.0,
                    self.checks.stuck.pending or 0.0,
                    extra={"partition": number},
                )
        if change.cleared:
            log.info("%s.%d is moving again", stream, number, extra={"partition": number})

    def _retune(self, number: int) -> None:
        monitor = self._iterations.get(number)
        if monitor is not None:
            monitor.retune()

    def _set(self, number: int, watched: _Watched, name: str, value: float) -> None:
        if watched.gauges.get(name) != value:
            self.metrics.gauge(name, **self._labels(number)).set(value)
            watched.gauges[name] = value

    def _labels(self, number: int) -> dict[str, LabelValue]:
        return {**self._where.processor_labels(), "partition": number}


def _entry_of(item: object | None) -> str:
    """The entry id an in-flight item names (the first of a batch)."""
    first = item[0] if isinstance(item, list) and item else item
    entry = getattr(first, "id", None)
    return entry.decode("ascii", "replace") if isinstance(entry, bytes) else "-"
