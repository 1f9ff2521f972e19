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

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from runnel.adapters.hashers import Hasher
from runnel.codec import RecordCodec
from runnel.domain.hashing import HASH_VERSION
from runnel.domain.keys import Keys
from runnel.domain.model import Partition
from runnel.errors import BackpressureError, MetadataMismatch, Misconfigured
from runnel.ports import Append, Cap, Compressor, Serializer
from runnel.record import Record
from runnel.settings import TrimMode

if TYPE_CHECKING:
    from runnel.app import App

R = TypeVar("R", bound=Record)

PartitionBy = str | Callable[[Any], object]


class Stream(Generic[R]):
    """A stream of ``record`` events, hashed by ``partition_by`` into partitions.

    Create streams with :meth:`runnel.App.stream`, not directly.

    Example:
        >>> # await orders.send(Order(order_id=1), Order(order_id=2))
    """

    def __init__(
        self,
        app: App,
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
        self.keys = Keys(app.name, name)
        self.codec: RecordCodec[R] = RecordCodec(
            record, serializer, compressor, app.settings.decode_limits()
        )
        self._partition_keys = [self.keys.stream(n) for n in range(partition_count)]
        self._prepared = False
        self._prepare_lock: asyncio.Lock | None = None
        self.generation: bytes | None = None
        """The store generation recorded in the metadata hash when this process prepared
        the stream; a different one later means the backend lost its data meanwhile."""

    def __repr__(self) -> str:
        return f"<Stream {self.app.name}.{self.name} partitions={self.partition_count}>"

    # ------------------------------------------------------------------ routing

    def partition_key(self, record: R) -> object:
        """The value ``record`` is partitioned by."""
        return self._key_of(record)

    def partition_for(self, record: R) -> int:
        """The partition number ``record`` is sent to."""
        return self.hasher(self._key_of(record)) % self.partition_count

    def partitions(self) -> list[Partition]:
        """Every partition of the stream."""
        return [Partition(self.name, n) for n in range(self.partition_count)]

    def partition_key_name(self, number: int) -> str:
        """The backend key of partition ``number``."""
        return self._partition_keys[number]

    @property
    def metadata(self) -> dict[bytes, bytes]:
        """What is recorded in the backend on first use, and checked by every later App."""
        return {
            b"partition_count": str(self.partition_count).encode(),
            b"hash": self.hasher_name.encode(),
            b"codec": self.codec.name.encode(),
        }

    # ------------------------------------------------------------------ sending

    async def send(self, *records: R) -> list[bytes]:
        """Append records to their partitions in one round trip; return their entry ids.

        Every record is checked to be this stream's record type before anything is
        written. Records for the same partition keep the order given.

        Raises:
            TypeError: a record of another type (nothing is sent).
            runnel.errors.BackpressureError: a lossless cap refused the batch (nothing
                sent); in ``wait`` mode, after ``default_send_wait_timeout``, or at once
                when the batch holds more events for one partition than ``partition_size``.
            runnel.errors.MetadataMismatch: the stream exists with other settings.
            runnel.errors.BackendError: the backend failed (message from Redis).

        Example:
            >>> # ids = await orders.send(Order(order_id=1))
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
        return await self.append_encoded(appends)

    def encode_batch(self, records: Sequence[R]) -> list[Append]:
        """Route and encode records into appends (no I/O)."""
        keys = self._partition_keys
        count = self.partition_count
        hasher, key_of, encode = self.hasher, self._key_of, self.codec.encode
        return [Append(keys[hasher(key_of(r)) % count], encode(r)) for r in records]

    async def append_encoded(self, appends: Sequence[Append]) -> list[bytes]:
        """Append pre-encoded entries under the stream's cap policy.

        In ``wait`` mode a batch the lossless cap refuses is retried, with a growing
        pause on the app's clock, until processors acknowledge enough entries to make
        room or ``default_send_wait_timeout`` runs out. A batch with more entries for one
        partition than ``partition_size`` could never fit, so it fails at once.

        Raises:
            runnel.errors.BackpressureError: the cap refused the batch (nothing sent).
        """
        await self.prepare()
        backend = self.app.backend
        cap = Cap(
            self.partition_size,
            "lossy" if self.trim_mode == "lossy" else "lossless",
            self.keys.lost(),
        )
        if self.trim_mode != "wait":
            return await backend.log.append(appends, cap)
        clock = backend.clock
        timeout = self.app.settings.default_send_wait_timeout
        deadline = clock.now() + timeout
        delay = 0.01
        while True:
            try:
                return await backend.log.append(appends, cap)
            except BackpressureError as exc:
                oversized = self._oversized(appends)
                if oversized is not None:
                    raise BackpressureError(oversized) from exc
                left = deadline - clock.now()
                if left <= 0:
                    raise BackpressureError(
                        f"stream {self.app.name}.{self.name}: still no room for the batch "
                        f"after waiting {timeout:g}s (default_send_wait_timeout) for its "
                        f"processors to acknowledge entries; nothing was sent: {exc}"
                    ) from exc
                await clock.sleep(min(delay, left))
                delay = min(delay * 2, 0.5)

    def _oversized(self, appends: Sequence[Append]) -> str | None:
        """Why the batch can never fit under the lossless cap, if it cannot."""
        numbers = {key: n for n, key in enumerate(self._partition_keys)}
        for key, count in Counter(item.key for item in appends).items():
            if count > self.partition_size:
                return (
                    f"stream {self.app.name}.{self.name}: the batch has {count} events for "
                    f"partition {numbers.get(key, key)}, more than its partition_size of "
                    f"{self.partition_size}, so it can never fit under the lossless cap; "
                    "nothing was sent (send fewer events at a time)"
                )
        return None

    def is_prepared(self) -> bool:
        """Whether metadata and groups were checked/created by this process."""
        return self._prepared

    async def prepare(self) -> None:
        """Record/check metadata and create every declared processor's group (once)."""
        if self._prepared:
            return
        async with self._lock():
            if self.is_prepared():  # another task finished it while we waited
                return
            await self._check_metadata()
            await self._create_groups()
            self._prepared = True

    async def check_store(self) -> bool:
        """Whether the backend lost this stream's data since this process prepared it.

        The metadata hash holds a random ``generation``, written with the rest of the
        metadata by whichever process prepared the stream first. If the hash is gone (Redis
        restarted without persistence, was flushed, or failed over to an empty replica),
        this records the metadata again with a new generation, creates every processor's
        group again at 0, and returns True; so does a generation that another process
        already re-recorded. Returns False when nothing changed (a consumer group deleted
        by hand, for example), and to every later caller of the same reset: calls are
        serialised, so one reset is reported once in a process.

        Raises:
            MetadataMismatch: the stream was re-created meanwhile by an App that defines
                it differently.
        """
        async with self._lock():
            known = self.generation
            await self._check_metadata()
            if known is None or self.generation == known:
                return False
            await self._create_groups()
            return True

    def _lock(self) -> asyncio.Lock:
        """The lock serialising preparation and store checks (made in the running loop)."""
        if self._prepare_lock is None:
            self._prepare_lock = asyncio.Lock()
        return self._prepare_lock

    async def _create_groups(self) -> None:
        """Every declared processor's group on every partition, at 0 (kept if present)."""
        for group in self.app.groups_of(self):
            for key in self._partition_keys:
                await self.app.backend.log.ensure_group(key, group, b"0")

    async def _check_metadata(self) -> None:
        wanted = self.metadata
        stored = await self.app.backend.kv.hash_set_missing(
            self.keys.meta(), {**wanted, GENERATION: os.urandom(8).hex().encode()}
        )
        for field, value in wanted.items():
            found = stored.get(field)
            if found is not None and found != value:
                raise MetadataMismatch(
                    f"stream {self.app.name}.{self.name}: {field.decode()} is "
                    f"{found.decode()!r} in the backend but {value.decode()!r} in this App; "
                    "refusing to re-route events (migrate the stream or fix the definition)"
                )
        self.generation = stored.get(GENERATION)

    async def lost(self) -> int:
        """How many unprocessed entries a lossy cap has trimmed from this stream."""
        raw = await self.app.backend.kv.get(self.keys.lost())
        return int(raw) if raw else 0


GENERATION = b"generation"
"""Metadata field holding a random id of the store's life (see :meth:`Stream.check_store`)."""

HASH_NAME = HASH_VERSION
