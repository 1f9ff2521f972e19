"""The exceptions runnel raises.

::

    RunnelError
    ├── Misconfigured (also ValueError)   bad settings or registration, raised before any I/O
    │   └── UnknownProcessor              a processor name the App does not have
    ├── MetadataMismatch                  a stream's stored metadata disagrees with this App
    ├── DecodeError                       an entry cannot be turned back into a Record
    │   ├── CodecMismatch                 stored with another serializer or compressor
    │   └── LimitExceeded                 over max_field_count, max_field_size or
    │                                     max_decompressed_size (refused before decoding)
    ├── DeadLetterFailed                  a failed event could not be dead-lettered (kept)
    ├── PermissionDenied                  the Redis user may not run a command or touch a key
    ├── BackendError
    │   ├── BackendUnavailable            connection and timeout problems
    │   │   ├── AuthenticationFailed      Redis refused the user name or password
    │   │   └── BackendFull               a write refused for lack of memory (not written)
    │   ├── NotReplicated                 a write fewer replicas confirmed than required
    │   ├── OutcomeUnknown                a send went out and no answer came back: it may
    │   │                                 or may not have been written
    │   ├── BackendProtocolError          Redis refused, or answered in an unexpected shape
    │   │   └── GroupMissing              a consumer group (or its stream) does not exist
    │   ├── Fenced                        a stale owner's read or ack was refused
    │   │   └── LeaseExpired              ensure_owned(): this worker may no longer own
    │   │                                 the partition (its local lease deadline passed)
    │   ├── BackpressureError             a lossless cap refused an append
    │   └── StreamResized                 an append routed with an old partition count
    │                                     was refused (nothing written to that partition)
    └── RebalanceError                    partition ownership could not be established

Exceptions raised by user processors are never wrapped: the processor's
:class:`~runnel.constants.ExceptionPolicy` decides what happens to them.
"""

from __future__ import annotations


class RunnelError(Exception):
    """Base class of every error runnel raises itself."""


class Misconfigured(RunnelError, ValueError):
    """A setting, stream or processor definition is invalid (raised before any I/O)."""


class UnknownProcessor(Misconfigured):
    """A processor was asked for by a name the App has not registered."""


class MetadataMismatch(RunnelError):
    """The metadata recorded for a stream disagrees with this App's definition."""


class DecodeError(RunnelError):
    """A stored entry cannot be decoded into the stream's record type."""


class CodecMismatch(DecodeError):
    """An entry was written with a different serializer or compressor than the reader's."""


class LimitExceeded(DecodeError, ValueError):
    """An entry is over a decoding limit; it was refused before the work was done.

    ``send`` raises it too (and sends nothing) for a record the workers would refuse.

    Attributes:
        limit: the setting that refused it (``max_field_count``, ``max_field_size`` or
            ``max_decompressed_size``).
    """

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class DeadLetterFailed(RunnelError):
    """A failed event could not be written to its dead-letter stream; it stays pending."""


class PermissionDenied(RunnelError):
    """The Redis user may not run a command, or touch a key, that runnel needs (NOPERM).

    Not a :class:`BackendError`: retrying cannot help, so the loops that retry backend
    errors let it through, and a worker halts with it instead of running idle. The message
    names the command and the key where they are known; ``docs/security.md`` lists the
    ACL a worker and a sender need.

    Attributes:
        command: the refused command (lower case), or the script that ran it.
        key: the key concerned, when known.
    """

    def __init__(self, message: str, command: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.command = command
        self.key = key


class BackendError(RunnelError):
    """The backend (Redis or the in-memory broker) failed."""


class BackendUnavailable(BackendError):
    """The backend could not be reached, or did not answer in time.

    Raised by ``send`` it means that nothing was written: the request never left (no
    connection, or the connection failed before it was written), so sending again is safe.
    A send whose request did leave raises :class:`OutcomeUnknown` instead.
    """


class BackendFull(BackendUnavailable):
    """The backend refused a write because it is out of memory; nothing was written.

    Redis answers ``OOM`` when ``maxmemory`` is reached under the ``noeviction`` policy.
    Sending again is safe once memory is freed (consumers trim, an operator raises the
    limit); a retry loop on :class:`BackendUnavailable` retries it.
    """


class OutcomeUnknown(BackendError):
    """A send's request reached the connection, and no answer came back.

    The connection was closed, or the reply did not come in time, after the request was
    written: the backend may have written the events or not. Sending again can write them
    twice; not sending can lose them. Not a :class:`BackendUnavailable`, so a retry loop
    written for that error does not resend these without deciding to.

    Attributes:
        cause: the connection or timeout error, in words.
    """

    def __init__(self, message: str, cause: str = "") -> None:
        super().__init__(message)
        self.cause = cause


class AuthenticationFailed(BackendUnavailable):
    """Redis refused the credentials (wrong password or user name, or none given)."""


class NotReplicated(BackendError):
    """A write reached the primary, but fewer replicas than ``redis_wait_replicas``
    confirmed it in time: a failover now could lose it. Sending it again may duplicate it."""

    def __init__(self, message: str, replicas: int = 0) -> None:
        super().__init__(message)
        self.replicas = replicas
        """How many replicas did confirm the write."""


class BackendProtocolError(BackendError):
    """The backend refused a command, or answered in an unexpected shape."""


class GroupMissing(BackendProtocolError):
    """A consumer group, or the stream it belongs to, does not exist (Redis: NOGROUP)."""


class Fenced(BackendError):
    """A partition operation was refused because the caller's lease is no longer current."""


class LeaseExpired(Fenced):
    """Raised by :meth:`runnel.Events.ensure_owned`: the partition may have a new owner.

    The local lease deadline (measured on the monotonic clock) has passed, or the lease
    is known to be gone: another worker may already be processing this partition. Do not
    perform the side effect you were about to; let the exception propagate. The processor
    stops on that partition without any exception policy applying, nothing is
    acknowledged, and the new owner processes the event.

    Attributes:
        partition: ``stream.number`` of the partition.
        epoch: the epoch of the lease that was lost.
    """

    def __init__(self, message: str, partition: str = "", epoch: int = 0) -> None:
        super().__init__(message)
        self.partition = partition
        self.epoch = epoch


class BackpressureError(BackendError):
    """An append was refused because it would trim entries a consumer group has not acked."""


class StreamResized(BackendError):
    """An append was routed with a partition count the stream no longer has.

    The stream grew (``runnel stream resize``) after the sender read its partition count:
    the partition refused the entries, so no event lands where its key no longer routes.
    Sends handle it themselves (they read the new count, route again and retry); it
    reaches callers only when the count keeps changing under them.

    Attributes:
        key: the partition that refused.
        count: the partition count it routes with now (0 when unknown).
        ids: per entry of the append, its id if it was written (on Redis Cluster a batch
            is atomic per partition), else ``b""``.
    """

    def __init__(self, message: str, key: str = "", count: int = 0) -> None:
        super().__init__(message)
        self.key = key
        self.count = count
        self.ids: list[bytes] = []


class RebalanceError(RunnelError):
    """Partition ownership could not be established or kept."""
