"""The read-only half of a harness: what was handed out, stored, pending and owned.

Everything here reads the harness's recorder, its broker and its workers synchronously:
nothing awaits, so simulated time cannot move while a test looks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Literal

from runnel.adapters.memory.broker import MemoryBroker
from runnel.adapters.memory.clock import SimulatedClock
from runnel.app import App
from runnel.domain.failures import quarantine_field, read_dead_letter, read_quarantines
from runnel.domain.ids import MAX_ID, MIN_ID, StreamId
from runnel.domain.membership import assigned_to, decode
from runnel.domain.model import Event, Partition
from runnel.middleware.dead_letter import DeadLetterMiddleware
from runnel.runtime.specs import ProcessorSpec
from runnel.stream import Stream
from runnel.testing._observe import Recorder
from runnel.testing.observations import DeadLetterEntry, Delivery, TaskRun
from runnel.testing.virtual_worker import ProcessorRef, VirtualWorker

IdKind = Literal["pending", "acknowledged", "undelivered"]


class Inspection:
    """Read-only views of a harness run; :class:`~runnel.testing.Harness` inherits them.

    Example:
        h.pending("totals"), h.owners("totals"), h.dead_letters(dead_letter)
    """

    app: App
    clock: SimulatedClock
    broker: MemoryBroker
    _recorder: Recorder
    _all: list[VirtualWorker]

    @property
    def workers(self) -> dict[str, VirtualWorker]:
        """Every worker started, by name (the latest one of each name).

        Example:
            sorted(h.workers)  # -> ['w1', 'w2']
        """
        return {vw.name: vw for vw in self._all}

    def worker(self, name: str) -> VirtualWorker:
        """The (latest) worker called ``name``.

        Raises:
            KeyError: no worker has that name.

        Example:
            h.worker("w1").state  # -> 'running'
        """
        found = self.workers.get(name)
        if found is None:
            raise KeyError(f"no worker named {name!r}; workers: {sorted(self.workers)}")
        return found

    def exit_codes(self) -> dict[str, int | None]:
        """Each worker's exit code by name: None while alive, :data:`KILLED` if killed.

        Example:
            h.exit_codes()  # -> {'w1': None, 'w2': -9}
        """
        return {name: vw.exit_code for name, vw in self.workers.items()}

    def _alive(self) -> list[VirtualWorker]:
        return [vw for vw in self._all if vw.alive]

    def _progress(self) -> tuple[int, ...]:
        """A mark that changes whenever processing makes progress (for settling)."""
        marks = [self._recorder.changes]
        for stream in self.app.streams.values():
            for number in range(stream.partition_count):
                stored = self.broker.stream(stream.keys.stream(number))
                if stored is None:
                    continue
                marks.append(len(stored))
                for group in stored.groups.values():
                    marks.append(len(group.pel))
                    marks.extend(group.last_delivered)
        return tuple(marks)

    def is_idle(self, processors: Iterable[ProcessorRef] | None = None) -> bool:
        """Whether every partition of the considered processors is idle right now.

        See :meth:`run_until_idle` for what idle means.

        Example:
            assert not h.is_idle()   # a take() window is still open
        """
        return all(self._processor_idle(s) for s in self._considered(processors))

    def is_balanced(self) -> bool:
        """Whether partition ownership has settled (see :meth:`run_until_balanced`).

        Example:
            assert h.is_balanced()
        """
        running = [vw for vw in self._alive() if vw.state == "running"]
        names = {p for vw in running for p in vw.processors}
        for name in names:
            spec = self._processor(name)
            executors = [e for vw in running for e in vw.worker.executors if e.spec.name == name]
            members = decode(self.broker.get_string(spec.stream.keys.membership(name)))
            if set(members) != {e.id for e in executors}:
                return False
            owned: set[int] = set()
            now = self.clock.now()
            for executor in executors:
                if not executor.coordinator.joined.is_set():
                    return False
                held = frozenset(
                    n for n, f in executor.feeds.items() if not f.lost and now < f.deadline
                )
                if held != assigned_to(members, executor.id) or held & owned:
                    return False
                owned |= held
            if len(owned) != spec.stream.partition_count:
                return False
        return True

    def owners(self, processor: ProcessorRef = None) -> dict[int, str]:
        """Which worker owns each partition of ``processor`` now (unowned ones are left out).

        Read from the workers' executors: a partition is owned by the worker that would
        hand its events to user code right now (see :meth:`VirtualWorker.partitions`).

        Example:
            h.owners("totals")  # -> {0: 'w1', 1: 'w1', 2: 'w2', 3: 'w2'}
        """
        spec = self._processor(processor)
        owned: dict[int, str] = {}
        for vw in self._alive():
            for number in sorted(vw.partitions(spec.name)):
                owned.setdefault(number, vw.name)
        return dict(sorted(owned.items()))

    def deliveries(
        self,
        processor: ProcessorRef = None,
        *,
        partition: int | None = None,
        worker: str | None = None,
        first_only: bool = False,
    ) -> list[Delivery]:
        """The events handed to ``processor``'s code, in the order they were handed out.

        Redeliveries (after a crash, a failure under HALT or QUARANTINE, a lost lease) are
        listed again, with ``redelivered`` true.

        Args:
            processor: the processor (name or function); all of them if the app has one.
            partition: only this partition.
            worker: only what this worker handed out.
            first_only: only the first hand-out of each entry.

        Example:
            [d.record.seq for d in h.deliveries("totals", partition=2)]  # -> [1, 2, 3]
        """
        name = self._processor(processor).name
        seen: set[tuple[int, str]] = set()
        chosen = []
        for d in self._recorder.deliveries:
            if d.processor != name:
                continue
            if partition is not None and d.partition != partition:
                continue
            if worker is not None and d.worker != worker:
                continue
            if first_only:
                key = (d.partition, d.entry_id)
                if key in seen:
                    continue
                seen.add(key)
            chosen.append(d)
        return chosen

    def batches(
        self, processor: ProcessorRef = None, *, partition: int | None = None
    ) -> list[list[Delivery]]:
        """The items handed to ``processor``, each a list (one event, or a take() batch).

        Example:
            [len(b) for b in h.batches("loader")]  # -> [100, 100, 35]
        """
        grouped: dict[int, list[Delivery]] = {}
        for d in self.deliveries(processor, partition=partition):
            grouped.setdefault(d.batch, []).append(d)
        return list(grouped.values())

    def processed(self, processor: ProcessorRef = None) -> dict[int, list[Any]]:
        """The records ``processor`` finished, per partition, in the order it finished them.

        A record counts once its iteration ended without failing (the processor asked for
        the next item); failed and interrupted ones are left out, and a record processed
        twice (after a redelivery) appears twice. An entry that cannot be decoded appears
        as its :class:`~runnel.Event`.

        Example:
            h.processed("totals")  # -> {0: [Order(customer='ada', ...), ...], 3: [...]}
        """
        result: dict[int, list[Any]] = defaultdict(list)
        for d in self.deliveries(processor):
            if d.outcome == "done":
                result[d.partition].append(_decoded(d.event))
        return dict(sorted(result.items()))

    def pending(self, processor: ProcessorRef = None) -> dict[int, list[str]]:
        """Entries delivered to ``processor`` and not acknowledged, per partition (ids).

        Only partitions with such entries are listed. Read from the consumer groups in the
        broker, so it includes what was fetched but not yet handed out.

        Example:
            assert h.pending("totals") == {}
        """
        return self._group_ids(processor, "pending")

    def acknowledged(self, processor: ProcessorRef = None) -> dict[int, list[str]]:
        """Entries ``processor`` has acknowledged, per partition (ids, still stored ones).

        Dead-lettered entries are acknowledged too. Only non-empty partitions are listed.

        Example:
            sum(len(ids) for ids in h.acknowledged("totals").values())  # -> 42
        """
        return self._group_ids(processor, "acknowledged")

    def undelivered(self, processor: ProcessorRef = None) -> dict[int, list[str]]:
        """Entries not yet delivered to ``processor``, per partition (ids).

        Example:
            h.undelivered("totals")  # -> {2: ['1767225600000-3']}
        """
        return self._group_ids(processor, "undelivered")

    def quarantined(self, processor: ProcessorRef = None) -> dict[int, dict[str, Any]]:
        """The quarantined partitions of ``processor``: the records ``app.quarantined()`` reads.

        ``await app.quarantined(name)`` gives the same answer; this reads it without
        awaiting.

        Example:
            h.quarantined("charge")[0]["error_type"]  # -> 'ValueError'
        """
        spec = self._processor(processor)
        return read_quarantines(self.broker.hash(spec.stream.keys.quarantine(spec.name)) or {})

    def state(self, processor: ProcessorRef = None) -> dict[int, dict[str, Any]]:
        """The committed keyed state of an effectively-once ``processor``, per partition.

        Exactly what a new owner of each partition would load: what the commits wrote,
        decoded, and nothing an iteration staged but did not commit. Partitions with no
        state are left out.

        Raises:
            ValueError: the processor was declared without ``state=``.

        Example:
            h.state("totals")  # -> {0: {'ada': 30}, 3: {'bob': 12}}
        """
        spec = self._processor(processor)
        if spec.state is None:
            raise ValueError(f"processor {spec.name!r} was declared without state=")
        decode = spec.state.decode
        result: dict[int, dict[str, Any]] = {}
        for number in range(spec.stream.partition_count):
            stored = self.broker.hash(spec.stream.keys.state(spec.name, number))
            if stored:
                result[number] = {k.decode(): decode(v) for k, v in sorted(stored.items())}
        return result

    def entries(self, stream: Stream[Any] | str) -> dict[int, list[Event]]:
        """What a stream holds, per partition, in order, as :class:`~runnel.Event` objects.

        Useful for a stream that your processors write to. ``event.record()`` decodes.

        Example:
            [e.record() for e in h.entries(receipts)[0]]
        """
        found = self._stream(stream)
        result: dict[int, list[Event]] = {}
        for number in range(found.partition_count):
            stored = self.broker.stream(found.keys.stream(number))
            if stored is None or not len(stored):
                continue
            result[number] = [
                Event(Partition(found.name, number), sid.encode(), fields, 1, 0, found.codec.decode)
                for sid, fields in stored.between(MIN_ID, MAX_ID)
            ]
        return result

    def dead_letters(self, sink: DeadLetterMiddleware | Stream[Any] | str) -> list[DeadLetterEntry]:
        """The entries of a dead-letter stream with their errors, oldest first.

        Args:
            sink: the :class:`~runnel.middleware.DeadLetterMiddleware`, its sink stream, or
                the sink stream's name.

        Example:
            (letter,) = h.dead_letters(dead_letter)
            letter.error_type  # -> 'ValueError'
            letter.record  # -> Order(customer='ada', amount=-1.0)
        """
        found = sink.sink if isinstance(sink, DeadLetterMiddleware) else self._stream(sink)
        letters = []
        for number, events in self.entries(found).items():
            for event in events:
                letters.append(_dead_letter(found, number, event))
        return sorted(letters, key=lambda e: StreamId.parse(e.id))

    def task_runs(self, task: str | Callable[..., Any] | None = None) -> list[TaskRun]:
        """The runs of background tasks (one task, or all), in the order they started.

        Example:
            [r.started_at for r in h.task_runs("report")]  # -> [60.0, 120.0]
        """
        if task is None:
            return list(self._recorder.task_runs)
        name = self._task_name(task)
        return [r for r in self._recorder.task_runs if r.task == name]

    def describe(self) -> str:
        """A few lines on the workers and every busy partition (for failure messages).

        Example:
            print(h.describe())
        """
        lines = [
            "workers: "
            + (", ".join(f"{vw.name} {vw.state}" for vw in self.workers.values()) or "none")
        ]
        for spec in self._considered(None):
            owners = self.owners(spec.name)
            quarantined = self.quarantined(spec.name)
            for number in range(spec.stream.partition_count):
                pending = len(self._ids(spec, number, "pending"))
                waiting = len(self._ids(spec, number, "undelivered"))
                if not (pending or waiting):
                    continue
                where = f"{spec.name} partition {number}"
                state = " (quarantined)" if number in quarantined else ""
                lines.append(
                    f"  {where}{state}: {pending} pending, {waiting} undelivered, "
                    f"owner {owners.get(number, 'none')}"
                )
        return "\n".join(lines)

    # ------------------------------------------------------------------ internals

    def _processor(self, processor: ProcessorRef) -> ProcessorSpec:
        specs = self.app.processors
        if processor is None:
            if len(specs) == 1:
                return next(iter(specs.values()))
            raise ValueError(
                f"app {self.app.name!r} has {len(specs)} processors; name one of: "
                f"{', '.join(sorted(specs)) or '(none)'}"
            )
        if isinstance(processor, str):
            name = processor
        else:  # a decorated function: the name it was registered under, if it was
            by_function = (s.name for s in specs.values() if s.func is processor)
            name = next(by_function, f"<{getattr(processor, '__qualname__', processor)!r}>")
        (spec,) = self.app.processor_specs([name])  # the App decides what is unknown
        return spec

    def _considered(self, processors: Iterable[ProcessorRef] | None) -> list[ProcessorSpec]:
        if processors is not None:
            return [self._processor(p) for p in processors]
        # The processors the workers run; all of the app's before any worker has started.
        names = dict.fromkeys(p for vw in self._all for p in vw.processors) or self.app.processors
        return [self._processor(n) for n in names]

    def _task_name(self, task: str | Callable[..., Any]) -> str:
        for name, spec in self.app.tasks.items():
            if task == name or getattr(spec.func, "__wrapped__", spec.func) is task:
                return name
        raise ValueError(
            f"unknown background task {task!r}; available: "
            f"{', '.join(sorted(self.app.tasks)) or '(none)'}"
        )

    def _stream(self, stream: Stream[Any] | str) -> Stream[Any]:
        if isinstance(stream, Stream):
            return stream
        found = self.app.streams.get(stream)
        if found is None:
            raise ValueError(
                f"unknown stream {stream!r}; available: {', '.join(sorted(self.app.streams))}"
            )
        return found

    def _processor_idle(self, spec: ProcessorSpec) -> bool:
        quarantine = self.broker.hash(spec.stream.keys.quarantine(spec.name)) or {}
        for number in range(spec.stream.partition_count):
            stored = self.broker.stream(spec.stream.keys.stream(number))
            if stored is None:
                continue
            group = stored.groups.get(spec.name)
            newest = stored.last_entry_id()
            if group is None:
                if newest is not None:
                    return False
                continue
            busy = len(group.pel) > 0 or (newest is not None and newest > group.last_delivered)
            if busy and quarantine_field(number) not in quarantine:
                return False
        return True

    def _group_ids(
        self, processor: ProcessorRef, kind: Literal["pending", "acknowledged", "undelivered"]
    ) -> dict[int, list[str]]:
        spec = self._processor(processor)
        result = {}
        for number in range(spec.stream.partition_count):
            ids = self._ids(spec, number, kind)
            if ids:
                result[number] = ids
        return result

    def _ids(
        self,
        spec: ProcessorSpec,
        number: int,
        kind: Literal["pending", "acknowledged", "undelivered"],
    ) -> list[str]:
        stored = self.broker.stream(spec.stream.keys.stream(number))
        if stored is None:
            return []
        group = stored.groups.get(spec.name)
        if kind == "pending":
            if group is None:
                return []
            return [str(sid) for sid, _ in group.pel.since(MIN_ID)]
        ids = []
        for sid, _ in stored.between(MIN_ID, MAX_ID):
            delivered = group is not None and sid <= group.last_delivered
            if kind == "undelivered" and not delivered:
                ids.append(str(sid))
            elif kind == "acknowledged" and delivered:
                assert group is not None
                if sid not in group.pel:
                    ids.append(str(sid))
        return ids


def _decoded(event: Event) -> Any:
    try:
        return event.record()
    except Exception:
        return event


def _dead_letter(sink: Stream[Any], number: int, event: Event) -> DeadLetterEntry:
    data, info = read_dead_letter(event.data)
    try:
        record = sink.codec.decode(data)
    except Exception:
        record = None
    return DeadLetterEntry(
        sink=sink.name,
        partition=number,
        id=event.entry_id,
        stream=info.stream,
        source_partition=number if info.source_partition is None else info.source_partition,
        source_id=info.source_id,
        processor=info.processor,
        error_type=info.error_type,
        error_message=info.error_message,
        time=info.time,
        data=data,
        record=record,
    )
