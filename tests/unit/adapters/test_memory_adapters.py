"""The memory adapters bound to the shared contracts, plus memory-only behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from runnel.adapters.memory._stream_state import parse_id
from runnel.adapters.memory.broker import MemoryBroker, get_broker, reset_brokers
from runnel.adapters.memory.clock import SimulatedClock
from runnel.adapters.memory.keyvalue import MemoryKeyValue
from runnel.adapters.memory.locks import MemoryPartitionLocks
from runnel.adapters.memory.streams import MemoryStreamLog
from runnel.adapters.system_clock import SystemClock
from runnel.errors import BackendProtocolError, BackpressureError, Misconfigured
from runnel.ports import (
    Append,
    Cap,
    ReadRequest,
)
from tests.contracts import Advance, read_slots
from tests.contracts.bindings import Adapters, Bound, memory_adapters
from tests.contracts.keyvalue_contract import KeyValueContract
from tests.contracts.locks_contract import LocksContract
from tests.contracts.membership_contract import MembershipContract
from tests.contracts.streamadmin_contract import StreamAdminContract
from tests.contracts.streamlog_contract import StreamLogContract
from tests.contracts.transactions_contract import TransactionsContract


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(autojump=True)


@pytest.fixture
def broker(clock: SimulatedClock) -> MemoryBroker:
    return MemoryBroker(clock)


@pytest.fixture
def adapters(broker: MemoryBroker) -> Adapters:
    return memory_adapters(broker)


@pytest.fixture
def advance(clock: SimulatedClock) -> Advance:
    return clock.advance


class TestMemoryStreamLog(Bound, StreamLogContract):
    """MemoryStreamLog honours the StreamLog contract."""


class TestMemoryTransactions(Bound, TransactionsContract):
    """Idempotent appends and effectively-once commits on the memory backend."""


class TestMemoryPartitionLocks(Bound, LocksContract):
    """MemoryPartitionLocks honours the PartitionLocks contract."""


class TestMemoryKeyValue(Bound, KeyValueContract):
    """MemoryKeyValue honours the KeyValue contract."""


class TestMemoryMembership(Bound, MembershipContract):
    """MemoryMembership honours the Membership contract."""


# --------------------------------------------------------------------------- memory only


@pytest.fixture
def _fresh_registry() -> Iterator[None]:
    reset_brokers()
    yield
    reset_brokers()


@pytest.mark.usefixtures("_fresh_registry")
def test_brokers_of_one_name_are_shared() -> None:
    clock = SimulatedClock()
    assert get_broker("a", clock) is get_broker("a", clock)
    assert get_broker("a", clock) is not get_broker("b", clock)
    assert get_broker("c", SystemClock()) is get_broker("c", SystemClock())
    with pytest.raises(Misconfigured, match="reset_brokers"):
        get_broker("a", SimulatedClock())
    reset_brokers()
    assert get_broker("a", SimulatedClock()) is not None


async def test_stream_ids_follow_the_wall_clock_and_never_repeat() -> None:
    clock = SimulatedClock()
    log = MemoryStreamLog(MemoryBroker(clock))
    first, second = await log.append([Append("s", {b"n": b"1"}), Append("s", {b"n": b"2"})])
    await clock.advance(0.0105)
    [third] = await log.append([Append("s", {b"n": b"3"})])
    assert first == b"1767225600000-0"
    assert second == b"1767225600000-1"
    assert third == b"1767225600010-0"


async def test_ids_stay_increasing_when_the_wall_clock_steps_back() -> None:
    clock = SimulatedClock(start=5.0)
    broker = MemoryBroker(clock)
    log = MemoryStreamLog(broker)
    [late] = await log.append([Append("s", {b"n": b"1"})])
    broker.clock = SimulatedClock(start=1.0)
    [early] = await log.append([Append("s", {b"n": b"2"})])
    assert parse_id(early) > parse_id(late)


def test_parse_id_rejects_garbage() -> None:
    assert parse_id(b"7", end=True)[1] == 2**64 - 1
    for raw in (b"", b"x", b"1-", b"-1", b"1-x", b"1-2-3", b" 1"):
        with pytest.raises(BackendProtocolError, match="Invalid stream ID"):
            parse_id(raw)


async def test_range_accepts_exclusive_end_and_partial_ids(broker: MemoryBroker) -> None:
    log = MemoryStreamLog(broker)
    ids = await log.append([Append("s", {b"n": str(n).encode()}) for n in range(3)])
    assert [e.id for e in await log.range("s", end=b"(" + ids[2])] == ids[:2]
    ms = ids[0].split(b"-")[0]
    assert [e.id for e in await log.range("s", ms, ms)] == ids
    assert await log.range("s", b"(" + ids[2]) == []
    assert await log.range("s", b"-", b"(0-0") == []


async def test_a_key_of_another_type_is_wrongtype(broker: MemoryBroker) -> None:
    log, kv = MemoryStreamLog(broker), MemoryKeyValue(broker)
    await kv.set("k", b"v")
    with pytest.raises(BackendProtocolError, match="WRONGTYPE"):
        await log.append([Append("k", {b"n": b"1"})])
    [slot] = await read_slots(log, [ReadRequest("k", "g", "c", 1)])
    assert isinstance(slot, BackendProtocolError)
    with pytest.raises(BackendProtocolError, match="WRONGTYPE"):
        await kv.hash_get_all("k")


async def test_an_entry_needs_fields(broker: MemoryBroker) -> None:
    with pytest.raises(BackendProtocolError):
        await MemoryStreamLog(broker).append([Append("s", {})])


async def test_lossless_cap_refuses_an_append_larger_than_the_cap(broker: MemoryBroker) -> None:
    log = MemoryStreamLog(broker)
    await log.ensure_group("s", "g")
    cap = Cap(1, "lossless", "lost")
    with pytest.raises(BackpressureError, match="exceeds"):
        await log.append([Append("s", {b"n": b"1"}), Append("s", {b"n": b"2"})], cap)
    assert await log.length("s") == 0


async def test_capped_appends_keep_the_newest_entries(broker: MemoryBroker) -> None:
    log = MemoryStreamLog(broker)
    cap = Cap(100, "lossy", "lost")
    for n in range(5000):
        await log.append([Append("s", {b"n": str(n).encode()})], cap)
    entries = await log.range("s")
    assert len(entries) == 100
    assert entries[0].fields == {b"n": b"4900"}
    assert await MemoryKeyValue(broker).get("lost") is None


async def test_wait_works_on_the_system_clock() -> None:
    log = MemoryStreamLog(MemoryBroker(SystemClock()))
    waiter = asyncio.ensure_future(log.wait({"s": b"0"}, timeout=5.0))
    await asyncio.sleep(0)
    await log.append([Append("s", {b"n": b"1"})])
    assert await asyncio.wait_for(waiter, 1.0) == {"s"}
    assert await log.wait({"s": b"$"}, timeout=0.0) == set()


async def test_wait_measures_its_timeout_on_the_simulated_clock() -> None:
    clock = SimulatedClock()
    log = MemoryStreamLog(MemoryBroker(clock))
    waiter = asyncio.ensure_future(log.wait({"s": b"0"}, timeout=2.0))
    await clock.advance(1.9)
    assert not waiter.done()
    await clock.advance(0.1)
    assert waiter.done()
    assert waiter.result() == set()


async def test_force_release_drops_a_lock(broker: MemoryBroker) -> None:
    locks = MemoryPartitionLocks(broker)
    lease = await locks.acquire("lock", "epoch", "w1", 10.0)
    assert lease is not None
    assert locks.force_release("lock") is True
    assert await locks.extend([lease], 10.0) == [False]
    assert locks.force_release("lock") is False


async def test_expired_strings_are_swept(clock: SimulatedClock, broker: MemoryBroker) -> None:
    kv = MemoryKeyValue(broker)
    for n in range(1100):
        await kv.set(f"beat{n}", b"x", ttl=1.0)
        if n == 10:
            await clock.advance(2.0)
    assert sum(await kv.exists([f"beat{n}" for n in range(1100)])) == 1089
    assert len(broker._keys) < 1100


class TestMemoryStreamAdmin(Bound, StreamAdminContract):
    """MemoryStreamLog honours the StreamAdmin contract."""
