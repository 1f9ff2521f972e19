"""Keyed state of one partition for an effectively-once processor.

The state of a partition is a hash beside it in the backend
(``__state:{app}.{stream}.{processor}.{n}``: key -> encoded value). The partition's owner
loads it whole when it starts consuming (its local cache), reads from that cache, and
stages every change; the changes of an iteration are written with the iteration's
outputs and acknowledgement in one fenced commit, and enter the cache only then. Only the
lease holder can commit, so the cache stays exactly what is committed for as long as the
lease lasts, and a new owner, which loads the hash after taking the lease, sees exactly
the committed state: nothing of an iteration that did not commit.

Example:
    Inside an effectively-once processor with ``state=int``::

        async for order in events.records():
            events.state.increment(order.customer, order.amount)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from runnel.domain.transactions import Staged
from runnel.runtime.specs import StateSpec

V = TypeVar("V")


class KeyedState(Generic[V]):
    """The keyed state of one partition, as its processor sees it (``events.state``).

    Reads see the committed state plus what the current iteration staged; changes are
    committed with the iteration's acknowledgement, or discarded if it fails.

    Example:
        >>> from runnel.domain.transactions import Staged
        >>> from runnel.runtime.specs import StateSpec
        >>> spec = StateSpec("int", int, lambda v: str(v).encode(), int, numeric=True)
        >>> state: KeyedState[int] = KeyedState(spec, "__state:a.s.p.0", Staged())
        >>> state.load({b"alice": b"2"})
        >>> state.increment("alice", 3), state.get("bob"), len(state)
        (5, None, 1)
    """

    def __init__(self, spec: StateSpec, key: str, staged: Staged[Any]) -> None:
        self.spec = spec
        self.key = key
        """The backend key of the partition's state hash."""
        self._staged = staged
        self._committed: dict[str, bytes] = {}
        self.loaded = False

    # ------------------------------------------------------------------ the runtime's side

    def load(self, stored: Mapping[bytes, bytes]) -> None:
        """Start from the committed state ``stored`` in the backend (the whole hash)."""
        self._committed = {k.decode("utf-8", "surrogateescape"): v for k, v in stored.items()}
        self.loaded = True

    def committed(self, changes: Mapping[str, bytes | None]) -> None:
        """``changes`` were committed: the cache takes them."""
        for key, value in changes.items():
            if value is None:
                self._committed.pop(key, None)
            else:
                self._committed[key] = value

    def snapshot(self) -> dict[str, V]:
        """The committed state, decoded (what a test or an operator inspects)."""
        decode = self.spec.decode
        return {k: decode(v) for k, v in sorted(self._committed.items())}

    # ------------------------------------------------------------------ the processor's side

    def _raw(self, key: str) -> bytes | None:
        staged = self._staged.state
        if key in staged:
            return staged[key]
        return self._committed.get(key)

    def get(self, key: str, default: V | None = None) -> V | None:
        """The value of ``key``, or ``default`` if it has none."""
        raw = self._raw(_checked(key))
        return default if raw is None else self.spec.decode(raw)

    def __getitem__(self, key: str) -> V:
        raw = self._raw(_checked(key))
        if raw is None:
            raise KeyError(key)
        value: V = self.spec.decode(raw)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._raw(key) is not None

    def set(self, key: str, value: V) -> None:
        """Set ``key`` to ``value`` (validated now; committed with the iteration).

        Raises:
            ValueError: ``value`` is not of the state's type.
        """
        checked = self.spec.validate(value)
        self._staged.set_state(_checked(key), self.spec.encode(checked))

    def __setitem__(self, key: str, value: V) -> None:
        self.set(key, value)

    def delete(self, key: str) -> bool:
        """Delete ``key`` (committed with the iteration); whether it had a value."""
        had = self._raw(_checked(key)) is not None
        self._staged.delete_state(key)
        return had

    def increment(self, key: str, amount: int | float = 1) -> V:
        """Add ``amount`` to the value of ``key`` (missing counts as 0); the new value.

        Raises:
            TypeError: the state's values are not numbers.
        """
        if not self.spec.numeric:
            raise TypeError(
                f"increment() needs a state of int or float values, not {self.spec.type_name}"
            )
        current: Any = self.get(key)
        value: Any = self.spec.validate((current if current is not None else 0) + amount)
        self.set(key, value)
        return value  # type: ignore[no-any-return]  # a V, as validated

    def keys(self) -> list[str]:
        """Every key that has a value, sorted."""
        staged = self._staged.state
        present = {k for k in self._committed if staged.get(k, b"") is not None}
        present.update(k for k, v in staged.items() if v is not None)
        return sorted(present)

    def items(self) -> Iterator[tuple[str, V]]:
        """``(key, value)`` for every key that has a value, sorted by key."""
        for key in self.keys():
            raw = self._raw(key)
            if raw is not None:
                yield key, self.spec.decode(raw)

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def __repr__(self) -> str:
        return f"<KeyedState {self.key} keys={len(self)}>"


def _checked(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"state keys are non-empty strings, got {key!r}")
    return key
