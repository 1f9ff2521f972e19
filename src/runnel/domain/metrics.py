"""The metrics runnel exports, as one table: names, kinds, labels, help and buckets.

How it works:
    Every metric a worker or a producer reports is declared once in :data:`CATALOGUE`. The
    runtime asks the metrics port for a handle by name and label values; the Prometheus
    adapter registers exactly these families; the documentation, the example Grafana
    dashboard and the alert rules are checked against this table by the tests, so a
    renamed metric cannot leave a dashboard silently empty.

    Names are stable: they are part of runnel's public surface, like its Redis keys.
    Counters are named with their ``_total`` suffix, as they appear in PromQL. Labels are
    few and bounded: ``app``, ``stream`` and ``processor`` are names from the code, and
    ``partition`` is bounded by the stream's ``partition_count``. Histograms carry no
    ``partition`` label (a label multiplies every bucket).

    ===================== ======================================
    label set             labels
    ===================== ======================================
    ``APP``               app
    ``STREAM``            app, stream
    ``PROCESSOR``         app, stream, processor
    ``PARTITION``         app, stream, processor, partition
    ===================== ======================================

Example:
    >>> CATALOGUE["runnel_events_processed_total"].labels
    ('app', 'stream', 'processor', 'partition')
    >>> spec_of_sample("runnel_iteration_duration_seconds_bucket").kind
    <MetricKind.HISTOGRAM: 'histogram'>
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final


class MetricKind(str, Enum):
    """How a metric behaves: a counter only goes up, a gauge is a current value, a
    histogram counts observations into buckets."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric.

    Example:
        >>> MetricSpec("runnel_x_total", MetricKind.COUNTER, "Xs.", APP).family
        'runnel_x'
    """

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()

    @property
    def family(self) -> str:
        """The family name (a counter's name without ``_total``, as Prometheus declares it)."""
        if self.kind is MetricKind.COUNTER:
            return self.name.removesuffix("_total")
        return self.name

    @property
    def samples(self) -> tuple[str, ...]:
        """The sample names a scrape shows for this metric (counters without ``_created``).

        Example:
            >>> CATALOGUE["runnel_send_duration_seconds"].samples[:2]
            ('runnel_send_duration_seconds_bucket', 'runnel_send_duration_seconds_sum')
        """
        if self.kind is MetricKind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


APP: Final = ("app",)
STREAM: Final = ("app", "stream")
PROCESSOR: Final = ("app", "stream", "processor")
PARTITION: Final = ("app", "stream", "processor", "partition")

ITERATION_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
"""Seconds: from half a millisecond (a cheap handler) to a minute (a stuck one)."""

LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
)  # fmt: skip
"""Seconds: from a millisecond (caught up) to an hour (a backlog being worked off)."""

SEND_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Seconds: one round trip on a local network up to a ``wait``-mode send's default limit."""


def _specs(*specs: MetricSpec) -> MappingProxyType[str, MetricSpec]:
    table = {spec.name: spec for spec in specs}
    if len(table) != len(specs):
        raise ValueError("a metric is declared twice")
    return MappingProxyType(table)


C, G, H = MetricKind.COUNTER, MetricKind.GAUGE, MetricKind.HISTOGRAM

CATALOGUE: Final = _specs(
    # ------------------------------------------------------------ processing
    MetricSpec(
        "runnel_events_processed_total",
        C,
        "Events whose processing iteration finished, so they are acknowledged.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_events_failed_total",
        C,
        "Events of iterations that failed (decoding, middleware or the processor raised), "
        "whatever the exception policy then did.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_events_ignored_total",
        C,
        "Failed events acknowledged under the IGNORE policy.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_events_dead_lettered_total",
        C,
        "Events written to a dead-letter stream (and acknowledged with it).",
        PARTITION,
    ),
    MetricSpec(
        "runnel_events_quarantined_total",
        C,
        "Failed events that quarantined their partition.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_iteration_duration_seconds",
        H,
        "Seconds from handing an event (or a take() batch) to the processor until it asked "
        "for the next one.",
        PROCESSOR,
        ITERATION_BUCKETS,
    ),
    MetricSpec(
        "runnel_end_to_end_latency_seconds",
        H,
        "Seconds from an entry's append (the time in its id, on the Redis clock) until its "
        "iteration finished (on this worker's clock); one observation per iteration, for "
        "its oldest entry.",
        PROCESSOR,
        LATENCY_BUCKETS,
    ),
    # ------------------------------------------------------------ owned partitions (sampled)
    MetricSpec(
        "runnel_partition_lag",
        G,
        "Entries of an owned partition not yet delivered to the processor's group.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_partition_pending",
        G,
        "Entries of an owned partition delivered to the group and not yet acknowledged.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_partition_oldest_pending_seconds",
        G,
        "Seconds since the oldest pending entry of an owned partition was delivered "
        "(0 when nothing is pending).",
        PARTITION,
    ),
    MetricSpec(
        "runnel_partition_stuck",
        G,
        "1 while the stuck-partition detector finds an owned partition stuck, else 0.",
        PARTITION,
    ),
    MetricSpec(
        "runnel_stuck_partition_warnings_total",
        C,
        "Times a partition was found stuck: reason 'iteration' (one iteration ran longer "
        "than stuck_iteration_seconds) or 'pending' (its oldest pending entry waited longer "
        "than stuck_pending_seconds).",
        (*PARTITION, "reason"),
    ),
    MetricSpec(
        "runnel_partitions_owned",
        G,
        "Partitions this worker holds a lease on, per processor.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_partitions_assigned",
        G,
        "Partitions the current assignment gives this worker, per processor.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_stream_partitions",
        G,
        "The stream's partition_count.",
        STREAM,
    ),
    MetricSpec(
        "runnel_stream_resizes_total",
        C,
        "Stream resizes (partition count growths) this worker noticed, per processor.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_partitions_held_by_resize",
        G,
        "Partitions a pending stream resize holds back for this processor: new ones not "
        "consumed yet, and old ones stopped at their switch point (0 once released).",
        PROCESSOR,
    ),
    # ------------------------------------------------------------ coordination
    MetricSpec(
        "runnel_rebalances_total",
        C,
        "Assignment changes this worker applied (partitions released and/or acquired).",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_leases_gained_total",
        C,
        "Partition leases acquired.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_leases_lost_total",
        C,
        "Partition leases lost without a graceful hand-back (a renewal failed, a command "
        "was fenced, or the local lease deadline passed).",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_commits_total",
        C,
        "Iterations of effectively-once processors committed with outputs or state changes "
        "(one atomic, fenced step each).",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_committed_outputs_total",
        C,
        "Records effectively-once processors committed to output streams.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_commit_retries_total",
        C,
        "Commits tried again because an output stream had no room or the reply never came.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_outbox_relayed_total",
        C,
        "Outbox entries relayed to their destination streams (effectively-once outputs "
        "committed in another Redis Cluster slot than their input).",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_outbox_relay_failures_total",
        C,
        "Outbox relay rounds that failed (no room downstream, no reply) and were tried again.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_outbox_backlog",
        G,
        "Entries waiting in the outboxes of the partitions this worker holds, after their "
        "last relay round.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_fenced_refusals_total",
        C,
        "Reads, acknowledgements, dead letters and commits the backend refused because "
        "this worker's lease was gone.",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_partitions_reaped_total",
        C,
        "Partitions of members this worker removed from the membership as gone: reason "
        "'connection' (the member's named connection to Redis closed: its process is gone, "
        "and its leases are released at once) or 'heartbeat' (its heartbeat expired: its "
        "leases are left to expire).",
        (*PROCESSOR, "reason"),
    ),
    MetricSpec(
        "runnel_lease_expired_errors_total",
        C,
        "LeaseExpired errors Events.ensure_owned() raised to processor code (the local lease "
        "deadline had passed, or the lease was lost, before a side effect).",
        PROCESSOR,
    ),
    MetricSpec(
        "runnel_worker_writes_not_replicated_total",
        C,
        "Fetch rounds, commits and dead letters of this worker that fewer replicas than "
        "redis_wait_replicas confirmed in time (write: 'fetch_round', 'commit' or "
        "'dead_letter'); the write is on the primary.",
        (*APP, "write"),
    ),
    MetricSpec(
        "runnel_store_resets_total",
        C,
        "Times this worker found that the backend lost a stream's data (a store reset).",
        STREAM,
    ),
    MetricSpec(
        "runnel_backend_errors_total",
        C,
        "Backend calls of the worker's loops that failed as unavailable (connection "
        "refused or lost, timeout).",
        APP,
    ),
    MetricSpec(
        "runnel_reconnects_total",
        C,
        "Times the backend answered the worker again after failing as unavailable.",
        APP,
    ),
    # ------------------------------------------------------------ producer
    MetricSpec(
        "runnel_events_sent_total",
        C,
        "Events appended by send().",
        STREAM,
    ),
    MetricSpec(
        "runnel_send_duration_seconds",
        H,
        "Seconds a send() took, including any wait for room under the 'wait' trim mode.",
        STREAM,
        SEND_BUCKETS,
    ),
    MetricSpec(
        "runnel_backpressure_refusals_total",
        C,
        "Appends the lossless length cap refused (each refused attempt, so a 'wait'-mode "
        "send that waits counts every retry).",
        STREAM,
    ),
    MetricSpec(
        "runnel_sends_rerouted_total",
        C,
        "Events a grown stream's partition refused as routed with its old partition "
        "count, then routed with the new count and sent again.",
        STREAM,
    ),
    MetricSpec(
        "runnel_send_errors_total",
        C,
        "send() calls that raised after reaching the stream's backend, by the error's class "
        "(OutcomeUnknown, BackendFull, BackendUnavailable, PermissionDenied, "
        "BackpressureError, NotReplicated, ...; 'other' for an exception runnel does not "
        "define).",
        (*STREAM, "error"),
    ),
    MetricSpec(
        "runnel_sends_not_replicated_total",
        C,
        "Sends whose events reached the primary but fewer replicas than "
        "redis_wait_replicas confirmed in time (NotReplicated).",
        STREAM,
    ),
    # ------------------------------------------------------------ worker
    MetricSpec(
        "runnel_leader",
        G,
        "1 while this worker holds the app's leadership, else 0.",
        APP,
    ),
    MetricSpec(
        "runnel_worker_halted",
        G,
        "1 once a HALT policy stopped this worker (it then drains and exits), else 0.",
        APP,
    ),
    MetricSpec(
        "runnel_worker_start_time_seconds",
        G,
        "Unix time this worker started; several changes within minutes mean it keeps "
        "restarting (a HALT on the same event, say).",
        APP,
    ),
    MetricSpec(
        "runnel_worker_ready",
        G,
        "1 while this worker's readiness probe (/readyz) passes, else 0.",
        APP,
    ),
    MetricSpec(
        "runnel_worker_buffered_bytes",
        G,
        "Bytes of fetched events this worker holds that its processors have not taken yet "
        "(what prefetch_bytes bounds).",
        APP,
    ),
    MetricSpec(
        "runnel_backend_reachable",
        G,
        "1 while the backend answers this worker, else 0.",
        APP,
    ),
    MetricSpec(
        "runnel_task_failures_total",
        C,
        "Runs of a background task, timer or crontab job that raised.",
        (*APP, "task", "kind"),
    ),
    MetricSpec(
        "runnel_build_info",
        G,
        "Always 1; the runnel version in a label.",
        (*APP, "version"),
    ),
)
"""Every metric runnel exports, by name."""

_BY_SAMPLE: Final = MappingProxyType(
    {sample: spec for spec in CATALOGUE.values() for sample in spec.samples}
)


def spec_of_sample(sample: str) -> MetricSpec:
    """The metric a scraped sample name (``..._bucket``, ``..._created``) belongs to.

    Raises:
        KeyError: no runnel metric has that sample.

    Example:
        >>> spec_of_sample("runnel_events_sent_total").name
        'runnel_events_sent_total'
    """
    return _BY_SAMPLE[sample]


def spec_named(name: str, kind: MetricKind) -> MetricSpec:
    """The catalogue entry ``name``, checked to be of ``kind``.

    Raises:
        KeyError: no such metric, or one of another kind.

    Example:
        >>> spec_named("runnel_leader", MetricKind.GAUGE).labels
        ('app',)
    """
    spec = CATALOGUE.get(name)
    if spec is None:
        raise KeyError(f"{name!r} is not a runnel metric (see runnel.domain.metrics)")
    if spec.kind is not kind:
        raise KeyError(f"{name!r} is a {spec.kind.value}, not a {kind.value}")
    return spec


def label_key(spec: MetricSpec, labels: Mapping[str, object]) -> tuple[str, ...]:
    """The label values of one series, as text, in the order the metric declares them.

    Raises:
        KeyError: ``labels`` names other labels than the metric declares.

    Example:
        >>> label_key(CATALOGUE["runnel_events_sent_total"], {"stream": "s", "app": "a"})
        ('a', 's')
    """
    if labels.keys() != set(spec.labels):
        raise KeyError(
            f"{spec.name!r} has labels {', '.join(spec.labels)}; got "
            f"{', '.join(sorted(labels)) or 'none'}"
        )
    return tuple(str(labels[label]) for label in spec.labels)


TIMED_EVERY: Final = 0.005
"""Seconds a partition aims to let pass between two timed iterations (about 200 a second)."""

MAX_STRIDE: Final = 100_000
"""The most iterations one timed iteration stands for."""


def next_stride(stride: int, elapsed: float) -> int:
    """How many iterations to let pass before timing the next one, given that the last
    ``stride`` iterations took ``elapsed`` seconds.

    The stride doubles while timed iterations come much more often than every
    :data:`TIMED_EVERY` seconds and halves while they come much less often, so a busy
    partition reads the clock about 200 times a second however fast it goes, and a quiet
    one times every iteration. Changing by halves and doubles keeps a burst of buffered
    events, or a pause between fetches, from swinging it far.

    Each timed iteration is counted in the histograms for itself and the untimed ones since
    the timed one before it, so their counts are exact at every timed iteration and their
    sums estimate every iteration's.

    Example:
        >>> next_stride(8, 0.0001), next_stride(8, 0.005), next_stride(8, 0.5), next_stride(1, 1.0)
        (16, 8, 4, 1)
    """
    if elapsed < TIMED_EVERY / 2:
        return min(stride * 2, MAX_STRIDE)
    if elapsed > TIMED_EVERY * 2:
        return max(stride // 2, 1)
    return stride
