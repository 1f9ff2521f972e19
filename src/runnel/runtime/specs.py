"""What the facade hands the runtime: frozen specs of streams, processors and tasks.

The App and its Streams are the user's objects; the runtime never sees them. When a
stream is declared the facade builds a :class:`StreamSpec` (names, keys, sizes, the trim
mode, the decoder, the metadata every App must agree on), and when a processor or a
background task is registered, a :class:`ProcessorSpec` or :class:`TaskSpec`. A worker is
started from a plan (:mod:`runnel.runtime.plan`) made of these.

Example:
    >>> from runnel.domain.keys import Keys
    >>> spec = StreamSpec(
    ...     app="shop", name="orders", keys=Keys("shop", "orders"), partition_count=2,
    ...     partition_size=100, trim_mode="lossless", metadata={b"partition_count": b"2"},
    ...     decode=dict)
    >>> spec.partition_keys
    ('__strm:shop.orders.0', '__strm:shop.orders.1')
    >>> spec.partitions()[1]
    Partition(stream='orders', number=1)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from runnel.domain.keys import Keys
from runnel.domain.model import Fields, Partition, TrimMode
from runnel.domain.policy import ExceptionPolicy
from runnel.domain.transactions import Guarantee

ProcessorFunc = Callable[[Any], Awaitable[None]]
TaskFunc = Callable[[], Awaitable[None]]


class Step(Protocol):
    """A middleware as the runtime uses it: a handler wrapped around the events."""

    def handler(self, parent: AsyncIterator[Any], **kwargs: Any) -> AsyncIterator[Any]:
        """An async iterator over ``parent``."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class StreamSpec:
    """A declared stream, as the runtime needs it.

    Attributes:
        app: the app's name.
        name: the stream's name.
        keys: its backend keys.
        partition_count: how many partitions it has.
        partition_size: the length cap of each partition.
        trim_mode: what a send to a full partition does.
        metadata: what is recorded in the backend on first use and checked by every
            later App (partition count, hash, codec).
        decode: turns an entry's fields into the stream's record.
        partition_keys: the backend key of each partition, by number.
    """

    app: str
    name: str
    keys: Keys
    partition_count: int
    partition_size: int
    trim_mode: TrimMode
    metadata: Mapping[bytes, bytes]
    decode: Callable[[Fields], Any]
    partition_keys: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        keys = tuple(self.keys.stream(n) for n in range(self.partition_count))
        object.__setattr__(self, "partition_keys", keys)

    def partitions(self) -> list[Partition]:
        """Every partition of the stream."""
        return [Partition(self.name, n) for n in range(self.partition_count)]


class Sink(Protocol):
    """Something that names a stream to write to (a :class:`runnel.Stream` does)."""

    @property
    def spec(self) -> StreamSpec:
        """The stream's spec."""
        ...


@dataclass(frozen=True, slots=True, eq=False)
class StateSpec:
    """A processor's keyed state, as the runtime needs it.

    Attributes:
        type_name: the values' type, for messages.
        validate: checks a value (raising ``ValueError`` on a bad one) and returns it.
        encode: a valid value to bytes (the stream's serializer and compressor).
        decode: bytes back to a value.
        numeric: whether ``increment`` applies (the values are ints or floats).
    """

    type_name: str
    validate: Callable[[Any], Any]
    encode: Callable[[Any], bytes]
    decode: Callable[[bytes], Any]
    numeric: bool = False


@dataclass(frozen=True, slots=True)
class ProcessorSpec:
    """A processor: its function, stream and every per-processor setting resolved.

    ``guarantee`` is ``at_least_once`` (acknowledge after processing) or
    ``effectively_once`` (commit outputs, state and acknowledgement together; see
    :mod:`runnel.domain.transactions`); ``state`` is its keyed state, if it has one.
    """

    name: str
    stream: StreamSpec
    func: ProcessorFunc
    exception_policy: ExceptionPolicy
    middleware: Sequence[Step]
    lock_expiry: float
    read_timeout: float  # seconds
    prefetch_count: int
    assignment_attempts: int
    assignment_sleep: float
    grace_period: float
    join_delay: float
    heartbeat_interval: float
    guarantee: Guarantee = "at_least_once"
    state: StateSpec | None = None
    prefetch_max: int = 0  # the read-ahead's ceiling (at most prefetch_count: fixed)


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A background task: run once, on a timer, or on a crontab schedule."""

    name: str
    func: TaskFunc
    kind: Literal["task", "timer", "crontab"]
    on_leader: bool = False
    interval: float = 0.0
    cron: str = ""
    timezone: str = "UTC"
