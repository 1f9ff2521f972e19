"""Backend key names (the layout of the architecture document).

Every key starts with a double-underscore tag and names the app, the stream and, where it
belongs to one, the processor and partition. ``docs/architecture.md`` lists them all.

Example:
    >>> Keys("myapp", "orders").stream(7)
    '__strm:myapp.orders.7'
    >>> Keys("myapp", "orders").lock("printer", 7)
    '__lock:myapp.orders.printer.7'
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names for one stream of one app."""

    app: str
    stream_name: str

    @property
    def _base(self) -> str:
        return f"{self.app}.{self.stream_name}"

    def stream(self, partition: int) -> str:
        """The partition's stream: ``__strm:{app}.{stream}.{n}``."""
        return f"__strm:{self._base}.{partition}"

    def meta(self) -> str:
        """The stream's metadata hash: ``__meta:{app}.{stream}``."""
        return f"__meta:{self._base}"

    def lost(self) -> str:
        """Counter of entries a lossy cap trimmed unprocessed: ``__lost:{app}.{stream}``."""
        return f"__lost:{self._base}"

    def membership(self, processor: str) -> str:
        """Executors and their partitions: ``__memb:{app}.{stream}.{processor}``."""
        return f"__memb:{self._base}.{processor}"

    def membership_version(self, processor: str) -> str:
        """The membership's version counter: ``__mver:{app}.{stream}.{processor}``."""
        return f"__mver:{self._base}.{processor}"

    def control(self, processor: str) -> str:
        """Control stream of join/leave announcements: ``__ctrl:{app}.{stream}.{processor}``."""
        return f"__ctrl:{self._base}.{processor}"

    def lock(self, processor: str, partition: int) -> str:
        """A partition's lease: ``__lock:{app}.{stream}.{processor}.{n}``."""
        return f"__lock:{self._base}.{processor}.{partition}"

    def epoch(self, processor: str, partition: int) -> str:
        """A partition's fencing epoch counter: ``__epoch:{app}.{stream}.{processor}.{n}``."""
        return f"__epoch:{self._base}.{processor}.{partition}"

    def beat(self, processor: str, executor_id: str) -> str:
        """An executor's heartbeat: ``__beat:{app}.{stream}.{processor}.{executor_id}``."""
        return f"__beat:{self._base}.{processor}.{executor_id}"

    def quarantine(self, processor: str) -> str:
        """Quarantined partitions (hash of n -> JSON): ``__quar:{app}.{stream}.{processor}``."""
        return f"__quar:{self._base}.{processor}"

    def idempotency(self, key: str) -> str:
        """What an idempotency key of a send remembers: ``__idem:{app}.{stream}.{key}``."""
        return f"__idem:{self._base}.{key}"

    def state(self, processor: str, partition: int) -> str:
        """A partition's keyed state (hash): ``__state:{app}.{stream}.{processor}.{n}``."""
        return f"__state:{self._base}.{processor}.{partition}"

    def halts(self, processor: str) -> str:
        """Partitions that halted a worker (n -> JSON): ``__halt:{app}.{stream}.{processor}``."""
        return f"__halt:{self._base}.{processor}"

    def skips(self, processor: str) -> str:
        """Entries operators skipped (``n:id`` -> JSON): ``__skip:{app}.{stream}.{processor}``."""
        return f"__skip:{self._base}.{processor}"

    def fenced(self, processor: str) -> str:
        """Counter of stale-owner operations refused: ``__fenc:{app}.{stream}.{processor}``."""
        return f"__fenc:{self._base}.{processor}"


def leader_key(app: str) -> str:
    """The leader's name: ``__lead:{app}``.

    Example:
        >>> leader_key("myapp")
        '__lead:myapp'
    """
    return f"__lead:{app}"


def leader_epoch_key(app: str) -> str:
    """The leader election's epoch counter: ``__lepoch:{app}``."""
    return f"__lepoch:{app}"


def schedule_key(app: str, task: str) -> str:
    """Last fired slot of a leader-only timer or crontab: ``__sched:{app}.{task}``."""
    return f"__sched:{app}.{task}"
