"""The PartitionLocks contract: expiring locks with fencing epochs.

Bind it with a ``Test*`` subclass providing ``make_locks``, ``make_kv`` and ``advance``.

Example:
    >>> LocksContract.__name__
    'LocksContract'
"""

from __future__ import annotations

from runnel.ports import Lease
from tests.contracts import Advance, MakeKV, MakeLocks, key_space


class LocksContract:
    """Behaviour shared by every PartitionLocks adapter."""

    async def test_acquire_takes_a_free_lock_with_an_epoch_token(
        self, make_locks: MakeLocks
    ) -> None:
        locks, k = await make_locks(), key_space()
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        assert lease is not None
        assert lease.key == k("lock")
        assert lease.token == f"w1:{lease.epoch}".encode()
        assert await locks.holder(k("lock")) == lease.token

    async def test_a_missing_epoch_is_seeded_from_wall_clock_milliseconds(
        self, make_locks: MakeLocks
    ) -> None:
        locks, k = await make_locks(), key_space()
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        assert lease is not None
        assert lease.epoch > 1_600_000_000_000

    async def test_a_held_lock_is_not_acquired_again(self, make_locks: MakeLocks) -> None:
        locks, k = await make_locks(), key_space()
        first = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        assert first is not None
        assert await locks.acquire(k("lock"), k("epoch"), "w2", 10.0) is None
        assert await locks.acquire(k("lock"), k("epoch"), "w1", 10.0) is None
        assert await locks.holder(k("lock")) == first.token

    async def test_each_acquisition_increments_the_epoch(
        self, make_locks: MakeLocks, make_kv: MakeKV
    ) -> None:
        locks, kv, k = await make_locks(), await make_kv(), key_space()
        first = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        assert first is not None
        assert await locks.release([first]) == [True]
        second = await locks.acquire(k("lock"), k("epoch"), "w2", 10.0)
        assert second is not None
        assert second.epoch == first.epoch + 1
        assert second.token == f"w2:{first.epoch + 1}".encode()
        await locks.release([second])
        await kv.set(k("epoch"), b"41")
        third = await locks.acquire(k("lock"), k("epoch"), "w3", 10.0)
        assert third == Lease(k("lock"), b"w3:42", 42)

    async def test_a_lock_expires_after_its_ttl(
        self, make_locks: MakeLocks, advance: Advance
    ) -> None:
        locks, k = await make_locks(), key_space()
        first = await locks.acquire(k("lock"), k("epoch"), "w1", 0.2)
        assert first is not None
        await advance(0.35)
        assert await locks.holder(k("lock")) is None
        second = await locks.acquire(k("lock"), k("epoch"), "w2", 10.0)
        assert second is not None
        assert second.epoch > first.epoch

    async def test_extend_keeps_a_held_lock_alive(
        self, make_locks: MakeLocks, advance: Advance
    ) -> None:
        locks, k = await make_locks(), key_space()
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 0.5)
        assert lease is not None
        await advance(0.3)
        assert await locks.extend([lease], 0.5) == [True]
        await advance(0.3)
        assert await locks.holder(k("lock")) == lease.token

    async def test_extend_after_expiry_fails_and_does_not_reacquire(
        self, make_locks: MakeLocks, advance: Advance
    ) -> None:
        locks, k = await make_locks(), key_space()
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 0.2)
        assert lease is not None
        await advance(0.35)
        assert await locks.extend([lease], 10.0) == [False]
        assert await locks.holder(k("lock")) is None

    async def test_extend_of_a_lock_taken_over_fails_and_keeps_the_new_holder(
        self, make_locks: MakeLocks
    ) -> None:
        locks, k = await make_locks(), key_space()
        old = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        assert old is not None
        await locks.release([old])
        new = await locks.acquire(k("lock"), k("epoch"), "w2", 10.0)
        assert new is not None
        assert await locks.extend([old, new], 10.0) == [False, True]
        assert await locks.holder(k("lock")) == new.token

    async def test_release_needs_the_current_token(self, make_locks: MakeLocks) -> None:
        locks, k = await make_locks(), key_space()
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        other = await locks.acquire(k("other"), k("epoch2"), "w1", 10.0)
        assert lease is not None
        assert other is not None
        forged = Lease(k("lock"), b"w9:1", 1)
        assert await locks.release([forged]) == [False]
        assert await locks.holder(k("lock")) == lease.token
        assert await locks.release([lease, other]) == [True, True]
        assert await locks.holder(k("lock")) is None
        assert await locks.holder(k("other")) is None
        assert await locks.release([lease]) == [False]

    async def test_holder_of_a_missing_lock_is_none(self, make_locks: MakeLocks) -> None:
        locks, k = await make_locks(), key_space()
        assert await locks.holder(k("lock")) is None
        assert await locks.extend([], 1.0) == []
        assert await locks.release([]) == []

    async def test_expires_in_tells_how_long_a_held_lock_has_left(
        self, make_locks: MakeLocks
    ) -> None:
        locks, k = await make_locks(), key_space()
        assert await locks.expires_in(k("lock")) is None
        lease = await locks.acquire(k("lock"), k("epoch"), "w1", 10.0)
        assert lease is not None
        left = await locks.expires_in(k("lock"))
        assert left is not None
        assert 9.0 < left <= 10.0
        await locks.release([lease])
        assert await locks.expires_in(k("lock")) is None
