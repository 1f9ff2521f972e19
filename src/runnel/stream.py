"""Streams: a named, partitioned log of one Record type.

Example:
    >>> from runnel import App, Record
    >>> app = App(name="shop", redis_url="memory://doc-stream")
    >>> class Order(Record):
    ...     order_id: int
    >>> orders = app.stream("orders", record=Order, partition_by="order_id", partition_count=4)
    >>> orders.partition_for(Order(order_id=1)) in range(4)
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from runnel import context
from runnel.adapters.hashers import Hasher
from runnel.codec import RecordCodec
from runnel.domain.keys import KeyLayout, Keys
from runnel.domain.model import Partition, TrimMode
from runnel.errors import Misconfigured
from runnel.interfaces import Compressor, Serializer
from runnel.ports import Append, Backend, routed_append
from runnel.record import Record
from runnel.runtime.specs import StreamSpec
from runnel.runtime.store import StreamStore
from runnel.settings import Settings

R = TypeVar("R", bound=Record)

PartitionBy = str | Callable[[Any], object]


class StreamHome(Protocol):
    """The App as its streams see it (an :class:`~runnel.App` is one).

    A stream finds its store through it, on the App's current backend: stores are rebuilt
    when the App moves to another backend (``reconfigure``, ``close``, a test harness). The
    rest is what code holding only a stream reaches through ``stream.app``: the App's name,
    settings and backend, and moving or closing the backend.
    """

    name: str
    settings: Settings

    @property
    def backend(self) -> Backend:
        """The ports the App talks through."""
        ...

    @property
    def key_layout(self) -> KeyLayout:
        """How the backend's keys are named (``single`` or ``cluster``)."""
        ...

    def reconfigure(self, **updates: Any) -> None:
        """Replace settings before the backend is first used."""
        ...

    async def close(self) -> None:
        """Close the backend's connections."""
        ...

    def _store(self, stream: str) -> StreamStore:
        """The store of ``stream``, built on first use."""
        ...

    def _built_store(self, stream: str) -> StreamStore | None:
        """The store of ``stream`` if it was built."""
        ...


class Stream(Generic[R]):
    """A stream of ``record`` events, hashed by ``partition_by`` into partitions.

    Create streams with :meth:`runnel.App.stream`, not directly. A stream routes and
    encodes records; writing them, under the stream's length cap, is its store's job
    (:class:`runnel.runtime.store.StreamStore`, one per backend the App uses).

    Attributes:
        app: the :class:`~runnel.App` that declared the stream.
        spec: what the runtime knows of the stream (:class:`~runnel.runtime.specs.StreamSpec`).
    """

    def __init__(
        self,
        app: StreamHome,
        name: str,
        record: type[R],
        partition_by: PartitionBy,
        partition_count: int,
        partition_size: int,
        serializer: Serializer,
        compressor: Compressor | None,
        hasher: Hasher,
        hasher_name: str,
        trim_mode: TrimMode,
    ) -> None:
        candidate: object = record
        if not (isinstance(candidate, type) and issubclass(candidate, Record)):
            raise Misconfigured(
                f"stream {name!r}: record must be a Record subclass, got {record!r}"
            )
        if isinstance(partition_by, str):
            if partition_by not in record.model_fields:
                raise Misconfigured(
                    f"stream {name!r}: partition_by={partition_by!r} is not a field of "
                    f"{record.__name__} (fields: {', '.join(record.model_fields)})"
                )
            field = partition_by
            self._key_of: Callable[[Any], object] = lambda r: getattr(r, field)
        elif callable(partition_by):
            self._key_of = partition_by
        else:
            raise Misconfigured(
                f"stream {name!r}: partition_by must be a field name or a callable, "
                f"got {partition_by!r}"
            )
        if partition_count < 1:
            raise Misconfigured(f"stream {name!r}: partition_count must be >= 1")
        if partition_size < 1:
            raise Misconfigured(f"stream {name!r}: partition_size must be >= 1")
        self.app = app
        self.name = name
        self.record = record
        self.partition_by = partition_by
        self.partition_count = partition_count
        self.partition_size = partition_size
        self.serializer = serializer
        self.compressor = compressor
        self.hasher = hasher
        self.hasher_name = hasher_name
        self.trim_mode: TrimMode = trim_mode
        self.kept_by: tuple[str, ...] = ()
        """Consumer groups that hold entries without processing them (a dead-letter sink's)."""
        self.keys = Keys(app.name, name, app.key_layout)
        self.codec: RecordCodec[R] = RecordCodec(
            record, serializer, compressor, app.settings.decode_limits()
        )
        self.spec = StreamSpec(
            app=app.name,
            name=name,
            keys=self.keys,
            partition_count=partition_count,
            partition_size=partition_size,
            trim_mode=trim_mode,
            metadata={
                b"partition_count": str(partition_count).encode(),
                b"hash": hasher_name.encode(),
                b"codec": self.codec.name.encode(),
            },
            decode=self.codec.decode,
        )
        self._partition_keys = self.spec.partition_keys

    def __repr__(self) -> str:
        return f"<Stream {self.app.name}.{self.name} partitions={self.partition_count}>"

    def _use_layout(self, layout: KeyLayout) -> None:
        """Name the stream's keys in ``layout`` (when the App's backend URL changes)."""
        if self.keys.layout == layout:
            return
        self.keys = Keys(self.app.name, self.name, layout)
        self.spec = dataclasses.replace(self.spec, keys=self.keys)
        self._partition_keys = self.spec.partition_keys

    # ------------------------------------------------------------------ routing

    def partition_key(self, record: R) -> object:
        """The value ``record`` is partitioned by."""
        return self._key_of(record)

    def partition_for(self, record: R) -> int:
        """The partition number ``record`` is sent to."""
        return self.hasher(self._key_of(record)) % self.partition_count

    def partitions(self) -> list[Partition]:
        """Every partition of the stream."""
        return self.spec.partitions()

    def partition_key_name(self, number: int) -> str:
        """The backend key of partition ``number``."""
        return self._partition_keys[number]

    @property
    def metadata(self) -> dict[bytes, bytes]:
        """What is recorded in the backend on first use, and checked by every later App."""
        return dict(self.spec.metadata)

    # ------------------------------------------------------------------ sending

    async def send(
        self, *records: R, idempotency_key: str | Sequence[str] | None = None
    ) -> list[bytes]:
        """Append records to their partitions in one round trip; return their entry ids.

        Every record is checked to be this stream's record type before anything is
        written. Records for the same partition keep the order given.

        With ``idempotency_key`` the send can be repeated safely (after a timeout, a crash
        of the sender, a retry of a whole job): a record whose key was used within the
        ``idempotency_window`` setting is not appended again, and the id returned for it
        is the original entry's. Give one key per record (a sequence), or one key for the
        call (a string ``k``: record ``i`` gets the key ``f"{k}:{i}"``). A producer id and
        a sequence number (``f"{producer}:{seq}"``) make good keys.

        Inside an effectively-once processor the records are not sent at once: they are
        staged and committed with the acknowledgement of the events being processed (see
        ``docs/effectively-once.md``), and the call returns an empty list.

        Raises:
            TypeError: a record of another type (nothing is sent).
            ValueError: idempotency keys that are empty, or not one per record.
            runnel.errors.BackpressureError: a lossless cap refused the batch (nothing
                sent); in ``wait`` mode, after ``default_send_wait_timeout``, or at once
                when the batch holds more events for one partition than ``partition_size``.
            runnel.errors.MetadataMismatch: the stream exists with other settings.
            runnel.errors.OutcomeUnknown: the request was sent and its reply lost (the
                connection closed, or no reply in time): the records may or may not have
                been written; sending again may write them twice.
            runnel.errors.BackendFull: Redis is out of memory (``maxmemory`` with
                ``noeviction``); nothing was written, sending again later is safe.
            runnel.errors.BackendUnavailable: Redis could not be reached; nothing was
                written, sending again is safe.
            runnel.errors.BackendError: the backend failed otherwise (message from Redis).

        Example:
            >>> import asyncio
            >>> from runnel import App, Record
            >>> app = App(name="doc-send-idem", redis_url="memory://doc-send-idem")
            >>> class Order(Record):
            ...     order_id: int
            >>> orders = app.stream("orders", record=Order, partition_by="order_id")
            >>> first = asyncio.run(orders.send(Order(order_id=1), idempotency_key="o-1"))
            >>> again = asyncio.run(orders.send(Order(order_id=1), idempotency_key="o-1"))
            >>> first == again, asyncio.run(orders.store._log.length(orders.partition_key_name(
            ...     orders.partition_for(Order(order_id=1)))))
            (True, 1)
        """
        if not records:
            return []
        kind = self.record
        for i, record in enumerate(records):
            if type(record) is not kind and not isinstance(record, kind):
                raise TypeError(
                    f"stream {self.name!r} takes {kind.__name__} records; record {i} is a "
                    f"{type(record).__name__} (nothing was sent)"
                )
        appends = self.encode_batch(records)
        if idempotency_key is not None:
            appends = self.with_idempotency_keys(appends, idempotency_key)
        staging = context.outputs.get()
        if staging is not None:
            await staging.stage(self.app._store(self.name), appends)
            return []
        return await self.app._store(self.name).append(appends)

    def with_idempotency_keys(
        self, appends: Sequence[Append], key: str | Sequence[str]
    ) -> list[Append]:
        """``appends`` with idempotency keys: ``key:i`` for the i-th with a string, or one
        of a sequence each.

        Raises:
            ValueError: an empty key, or a sequence not holding one key per append.
        """
        keys = [f"{key}:{i}" for i in range(len(appends))] if isinstance(key, str) else list(key)
        if isinstance(key, str) and not key:
            raise ValueError("idempotency_key must not be empty (nothing was sent)")
        if len(keys) != len(appends):
            raise ValueError(
                f"idempotency_key: {len(keys)} key(s) for {len(appends)} record(s); give one "
                "per record, or one string for the call (nothing was sent)"
            )
        for k in keys:
            candidate: object = k  # a sequence of anything may come in
            if not isinstance(candidate, str) or not candidate:
                raise ValueError(
                    f"idempotency keys must be non-empty strings, got {k!r} (nothing was sent)"
                )
        idem = self.keys.idempotency
        # In the cluster layout a key is in its partition's slot (named with its number).
        number = {key: n for n, key in enumerate(self._partition_keys)}
        return [
            Append(a.key, a.fields, idem(k, number.get(a.key, 0)), a.route)
            for a, k in zip(appends, keys, strict=True)
        ]

    def encode_batch(self, records: Sequence[R]) -> list[Append]:
        """Route and encode records into appends (no I/O)."""
        keys = self._partition_keys
        count = self.partition_count
        hasher, key_of = self.hasher, self._key_of
        encoded = self.codec.encode_many(records)
        appends = []
        for r, fields in zip(records, encoded, strict=True):
            route = hasher(key_of(r))
            appends.append(routed_append(keys[route % count], fields, route))
        return appends

    def route_of(self, record: R) -> int:
        """The hash ``record`` is routed by (its partition is this modulo the count)."""
        return self.hasher(self._key_of(record))

    def _adopt(self, spec: StreamSpec) -> None:
        """Route with ``spec``'s partition count: the stream was found grown (see
        :mod:`runnel.domain.resize`)."""
        self.spec = dataclasses.replace(spec, keys=self.keys, decode=self.spec.decode)
        self.partition_count = spec.partition_count
        self._partition_keys = self.spec.partition_keys

    async def append_encoded(self, appends: Sequence[Append]) -> list[bytes]:
        """Append pre-encoded entries under the stream's cap policy (see :meth:`send`).

        Raises:
            runnel.errors.BackpressureError: the cap refused the batch (nothing sent).
        """
        return await self.app._store(self.name).append(appends)

    # ------------------------------------------------------------------ the store

    @property
    def store(self) -> StreamStore:
        """The stream's store on the App's backend (built on first use)."""
        return self.app._store(self.name)

    def is_prepared(self) -> bool:
        """Whether metadata and groups were checked/created on the App's current backend."""
        store = self.app._built_store(self.name)
        return store is not None and store.prepared

    async def prepare(self) -> None:
        """Record/check metadata and create every declared processor's group (once)."""
        await self.store.prepare()

    async def check_store(self) -> bool:
        """Whether the backend lost this stream's data since it was prepared.

        See :meth:`runnel.runtime.store.StreamStore.check`.
        """
        return await self.store.check()

    @property
    def generation(self) -> bytes | None:
        """The store generation recorded when the stream was prepared on this backend."""
        store = self.app._built_store(self.name)
        return store.generation if store is not None else None

    async def lost(self) -> int:
        """How many unprocessed entries a lossy cap has trimmed from this stream."""
        return await self.store.lost()
