"""Redis-specific behaviour of the Redis adapters, beyond the shared port contracts."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from runnel.adapters.redis import _errors, _lanes, _watched
from runnel.adapters.redis.client import make_client
from runnel.adapters.redis.keyvalue import CANNOT_CHECK, RedisKeyValue
from runnel.adapters.redis.locks import RedisPartitionLocks
from runnel.adapters.redis.streams import RedisStreamLog
from runnel.domain.model import Entry
from runnel.errors import BackendProtocolError, BackendUnavailable, BackpressureError, Fenced
from runnel.ports import AckRequest, Append, Cap, DeadLetter, Fence, ReadRequest
from tests.contracts import ack_slots, key_space, read_slots


def one(n: int) -> dict[bytes, bytes]:
    return {b"n": str(n).encode()}


async def eventually(condition: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail if it still does not after ``within`` seconds.

    The deadline only turns a hang into a failure: nothing is asserted about how long
    the condition took.
    """
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


async def blocked_clients(client: Redis) -> int:
    """How many clients wait in a blocking command on the server (INFO clients)."""
    return int((await client.info("clients"))["blocked_clients"])


async def xread_calls(client: Redis) -> int:
    """How many XREAD commands the server has run (INFO commandstats)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_xread", {}).get("calls", 0))


# --------------------------------------------------------------------------- fencing


async def test_each_refused_slot_counts_once_and_the_others_succeed(redis_client: Redis) -> None:
    log, locks, kv, k = (
        RedisStreamLog(redis_client),
        RedisPartitionLocks(redis_client),
        RedisKeyValue(redis_client),
        key_space(),
    )
    for p in ("p0", "p1"):
        await log.ensure_group(k(p), "g")
        await log.append([Append(k(p), one(1))])
    held = await locks.acquire(k("lock0"), k("epoch0"), "w1", 30.0)
    assert held is not None
    good = Fence(k("lock0"), held.token, k("fenced"))
    stale = Fence(k("lock1"), b"w1:1", k("fenced"))

    slots = await read_slots(
        log,
        [
            ReadRequest(k("p0"), "g", "p0", 10, fence=good),
            ReadRequest(k("p1"), "g", "p1", 10, fence=stale),
            ReadRequest(k("p1"), "g", "p1", 10, fence=stale),
        ],
    )

    assert [type(s).__name__ for s in slots] == ["list", "Fenced", "Fenced"]
    assert k("lock1") in str(slots[1])
    assert await kv.get(k("fenced")) == b"2"
    assert [g.pending for g in await log.groups(k("p1"))] == [0]
    assert isinstance(slots[0], list)
    [id0] = [e.id for e in slots[0]]
    acks = await ack_slots(
        log,
        [AckRequest(k("p0"), "g", [id0], fence=good), AckRequest(k("p1"), "g", [], fence=stale)],
    )
    assert acks[0] == 1
    assert isinstance(acks[1], Fenced)
    assert await kv.get(k("fenced")) == b"3"


async def test_a_lease_expired_on_the_server_fences_its_owner(redis_client: Redis) -> None:
    log, locks, k = RedisStreamLog(redis_client), RedisPartitionLocks(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    await log.append([Append(k("s"), one(1))])
    lease = await locks.acquire(k("lock"), k("epoch"), "w1", 0.05)
    assert lease is not None

    async def expired() -> bool:
        return await locks.holder(k("lock")) is None

    await eventually(expired)
    fence = Fence(k("lock"), lease.token, k("fenced"))
    [slot] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=fence)])
    assert isinstance(slot, Fenced)
    assert await locks.extend([lease], 30.0) == [False]
    assert await locks.holder(k("lock")) is None


# --------------------------------------------------------------------------- caps


async def test_backpressure_names_the_stream_the_first_unsafe_entry_and_the_group(
    redis_client: Redis,
) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    cap = Cap(3, "lossless", k("lost"))
    await log.ensure_group(k("s"), "billing")
    ids = await log.append([Append(k("s"), one(n)) for n in (1, 2, 3)], cap)
    await read_slots(log, [ReadRequest(k("s"), "billing", "c", 1)])
    await ack_slots(log, [AckRequest(k("s"), "billing", [ids[0]])])

    with pytest.raises(BackpressureError) as refused:
        await log.append([Append(k("s"), one(4)), Append(k("s"), one(5))], cap)

    assert str(refused.value) == (
        f"append to stream {k('s')} refused by its lossless cap: trimming would remove entry "
        f"{ids[1].decode()}, which consumer group 'billing' has not acknowledged; nothing was "
        f"written (Redis said: BACKPRESSURE {k('s')} {ids[1].decode()} billing)"
    )
    assert [e.id for e in await log.range(k("s"))] == ids


async def test_a_batch_longer_than_the_cap_is_refused_when_a_group_would_miss_it(
    redis_client: Redis,
) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    with pytest.raises(BackpressureError, match="an entry of this batch"):
        await log.append([Append(k("s"), one(n)) for n in range(3)], Cap(2, "lossless", k("l")))
    assert await log.length(k("s")) == 0


async def test_lossy_counts_exactly_across_keys_groups_and_calls(redis_client: Redis) -> None:
    log, kv, k = RedisStreamLog(redis_client), RedisKeyValue(redis_client), key_space()
    cap = Cap(2, "lossy", k("lost"))
    await log.ensure_group(k("a"), "g1")
    await log.ensure_group(k("a"), "g2")
    a = await log.append([Append(k("a"), one(n)) for n in (1, 2)], cap)
    await log.append([Append(k("b"), one(n)) for n in (1, 2)], cap)  # no group: never lost
    # g1 acks the first entry of a; g2 has everything pending.
    await read_slots(log, [ReadRequest(k("a"), "g1", "c", 1), ReadRequest(k("a"), "g2", "c", 10)])
    await ack_slots(log, [AckRequest(k("a"), "g1", [a[0]])])

    # a: 2 old + 3 new over a cap of 2: both old entries (pending in g2) and the first new
    # one (never delivered) go. b: its 2 old entries go, but no group wanted them.
    batch = [Append(k("a"), one(n)) for n in (3, 4, 5)] + [Append(k("b"), one(3))]
    ids = await log.append(batch, cap)

    assert await kv.get(k("lost")) == b"3"
    assert [e.id for e in await log.range(k("a"))] == ids[1:3]
    assert [e.fields for e in await log.range(k("b"))] == [one(2), one(3)]
    await log.append([Append(k("a"), one(6))], cap)
    assert await kv.get(k("lost")) == b"4"


async def test_a_failing_key_leaves_the_whole_batch_unwritten(redis_client: Redis) -> None:
    log, kv, k = RedisStreamLog(redis_client), RedisKeyValue(redis_client), key_space()
    await kv.set(k("not-a-stream"), b"x")
    with pytest.raises(BackendProtocolError, match="WRONGTYPE"):
        await log.append([Append(k("s"), one(1)), Append(k("not-a-stream"), one(2))])
    assert await log.length(k("s")) == 0
    with pytest.raises(BackendProtocolError, match="at least one field"):
        await log.append([Append(k("s"), one(1)), Append(k("s"), {})])


# --------------------------------------------------------------------------- history reads


async def test_history_reads_count_every_delivery_including_this_one(redis_client: Redis) -> None:
    """Redis 7.0 bumps the delivery count of entries re-read from the pending list."""
    log, k = RedisStreamLog(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    ids = await log.append([Append(k("s"), one(n)) for n in (1, 2, 3)])
    [first] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 2)])
    assert first == [Entry(ids[0], one(1), 1), Entry(ids[1], one(2), 1)]
    # A new owner of the partition (same partition-scoped consumer) re-reads its history.
    for expected in (2, 3):
        [history] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, start=b"0")])
        assert history == [Entry(ids[0], one(1), expected), Entry(ids[1], one(2), expected)]
    [fresh] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10)])
    assert fresh == [Entry(ids[2], one(3), 1)]
    assert [p.delivery_count for p in await log.pending(k("s"), "g")] == [3, 3, 1]


# --------------------------------------------------------------------------- wait


async def test_a_wait_with_nothing_appended_returns_an_empty_set(redis_client: Redis) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    [last] = await log.append([Append(k("s"), one(1))])

    # Neither the entry already there nor a key that does not exist wakes it.
    woken = log.wait({k("s"): last, k("t"): b"0"}, timeout=0.3)
    assert await asyncio.wait_for(woken, 10.0) == set()


async def test_a_blocking_wait_returns_the_key_once_an_entry_is_appended(
    redis_client: Redis,
) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    before = await blocked_clients(redis_client)
    waiter = asyncio.ensure_future(log.wait({k("s"): b"0", k("t"): b"0"}, timeout=30.0))

    async def blocked() -> bool:
        return await blocked_clients(redis_client) > before

    await eventually(blocked)
    assert not waiter.done()
    await log.append([Append(k("t"), one(1))])  # while the waiter's XREAD blocks

    assert await asyncio.wait_for(waiter, 10.0) == {k("t")}


async def test_wait_blocks_longer_than_the_socket_timeout(redis_url: str) -> None:
    # Slices of XREAD BLOCK shorter than the socket timeout: a long wait neither raises a
    # socket timeout nor returns early; it returns the key once an entry arrives.
    client = Redis.from_url(redis_url, socket_timeout=0.4)
    observer = Redis.from_url(redis_url)
    try:
        log, k = RedisStreamLog(client), key_space()
        assert await asyncio.wait_for(log.wait({k("s"): b"0"}, timeout=1.0), 10.0) == set()
        before = await xread_calls(observer)
        waiter = asyncio.ensure_future(log.wait({k("s"): b"0"}, timeout=30.0))

        async def past_one_socket_timeout() -> bool:
            # A second slice started: the first one ended, without an error, and the
            # wait went on.
            return await xread_calls(observer) >= before + 2

        await eventually(past_one_socket_timeout)
        assert not waiter.done()
        await RedisStreamLog(observer).append([Append(k("s"), one(1))])

        assert await asyncio.wait_for(waiter, 10.0) == {k("s")}
    finally:
        await client.aclose()
        await observer.aclose()


async def test_a_zero_timeout_still_answers_without_blocking_forever(redis_client: Redis) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    await log.append([Append(k("s"), one(1))])
    assert await asyncio.wait_for(log.wait({k("s"): b"0"}, timeout=0), 2.0) == {k("s")}
    assert await asyncio.wait_for(log.wait({k("t"): b"0"}, timeout=0), 2.0) == set()


# --------------------------------------------------------------------------- scripts and errors


async def test_batches_survive_a_script_cache_flush(
    redis_client: Redis, redis_is_throwaway: bool
) -> None:
    if not redis_is_throwaway:
        pytest.skip(
            "SCRIPT FLUSH empties the whole server's script cache: only on a server "
            "this session started, not on RUNNEL_TEST_REDIS_URL"
        )
    log, locks, k = RedisStreamLog(redis_client), RedisPartitionLocks(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    ids = await log.append([Append(k("s"), one(1))])
    await redis_client.script_flush()
    slots = await read_slots(
        log, [ReadRequest(k("s"), "g", "c", 10), ReadRequest(k("s"), "x", "c", 1)]
    )
    assert slots[0] == [Entry(ids[0], one(1), 1)]
    assert isinstance(slots[1], BackendProtocolError)
    await redis_client.script_flush()
    assert await ack_slots(log, [AckRequest(k("s"), "g", ids)]) == [1]
    await redis_client.script_flush()
    assert await locks.acquire(k("lock"), k("epoch"), "w", 1.0) is not None


async def test_durability_risks_say_what_a_restart_or_eviction_would_lose(
    redis_client: Redis, redis_is_throwaway: bool
) -> None:
    if not redis_is_throwaway:
        pytest.skip("CONFIG SET changes the whole server: only on a server this session started")
    kv = RedisKeyValue(redis_client)
    names = ("save", "appendonly", "maxmemory", "maxmemory-policy")
    before = await redis_client.config_get(*names)
    try:
        await redis_client.config_set("save", "3600 1")
        await redis_client.config_set("appendonly", "no")
        [risk] = await kv.durability_risks()
        assert "writes no append-only file (appendonly no)" in risk
        await redis_client.config_set("appendonly", "yes")
        assert await kv.durability_risks() == []
        await redis_client.config_set("maxmemory-policy", "allkeys-lru")
        assert await kv.durability_risks() == []  # no maxmemory: nothing is ever evicted
        await redis_client.config_set("maxmemory", "1gb")
        [risk] = await kv.durability_risks()
        assert "maxmemory-policy allkeys-lru" in risk
        await redis_client.config_set("maxmemory-policy", "noeviction")
        assert await kv.durability_risks() == []
    finally:
        for name in names:
            await redis_client.config_set(name, before[name] or "")


async def test_durability_risks_need_no_config_rights_and_say_when_they_cannot_check(
    redis_client: Redis, redis_url: str, redis_is_throwaway: bool
) -> None:
    # CONFIG GET also reads requirepass: the check works from INFO alone, and says so
    # when it cannot run at all.
    if not redis_is_throwaway:
        pytest.skip("ACL SETUSER changes the whole server: only on a server this session started")
    if (await redis_client.config_get("appendonly"))["appendonly"] != "no":
        pytest.skip("the session's server persists with an append-only file")
    stamp, password = time.monotonic_ns(), "secret"
    for user, refused in (
        (f"no-config-{stamp}", ["-config"]),
        (f"no-info-{stamp}", ["-config", "-info"]),
    ):
        await redis_client.acl_setuser(
            user,
            enabled=True,
            passwords=[f"+{password}"],
            categories=["+@all"],
            commands=refused,
            keys=["~*"],
        )
    no_config = make_client(
        redis_url.replace("redis://", f"redis://no-config-{stamp}:{password}@", 1), pool_size=1
    )
    no_info = make_client(
        redis_url.replace("redis://", f"redis://no-info-{stamp}:{password}@", 1), pool_size=1
    )
    try:
        [risk] = await RedisKeyValue(no_config).durability_risks()
        assert "writes no append-only file (appendonly no)" in risk
        assert await RedisKeyValue(no_info).durability_risks() == [CANNOT_CHECK]
        assert await RedisKeyValue(no_info).get("anything") is None  # the user works otherwise
    finally:
        await no_config.aclose()
        await no_info.aclose()
        await redis_client.acl_deluser(user)


async def test_an_unreachable_server_is_backend_unavailable() -> None:
    client = make_client("redis://127.0.0.1:1/0", pool_size=1)
    try:
        with pytest.raises(BackendUnavailable):
            await RedisKeyValue(client).get("anything")
        with pytest.raises(BackendUnavailable):
            await read_slots(RedisStreamLog(client), [ReadRequest("s", "g", "c", 1)])
    finally:
        await client.aclose()


async def test_make_client_speaks_bytes(redis_url: str) -> None:
    client = make_client(redis_url, pool_size=2)
    try:
        kv, k = RedisKeyValue(client), key_space()
        await kv.set(k("v"), b"\xff\x00", ttl=5.0)
        assert await kv.get(k("v")) == b"\xff\x00"
        assert 0 < await client.pttl(k("v")) <= 5000
    finally:
        await client.aclose()


async def test_cancelling_a_wait_leaves_the_client_usable(redis_client: Redis) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    before = await blocked_clients(redis_client)
    waiter = asyncio.ensure_future(log.wait({k("s"): b"0"}, timeout=30.0))

    async def blocked() -> bool:
        return await blocked_clients(redis_client) > before

    await eventually(blocked)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await log.append([Append(k("s"), one(1))])
    assert await log.wait({k("s"): b"0"}, timeout=1.0) == {k("s")}


async def _command_calls(client: Redis, *names: str) -> list[int]:
    stats = await client.info("commandstats")
    return [int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in names]


async def test_steady_state_rounds_load_no_script_and_read_without_lua(redis_client: Redis) -> None:
    """A read round is one WATCH+MGET and one MULTI/EXEC; acks alone are one EVALSHA."""
    log, k = RedisStreamLog(redis_client), key_space()
    keys = [k(f"p{n}") for n in range(4)]
    for key in keys:
        await log.ensure_group(key, "g")
    await log.append([Append(key, one(1)) for key in keys])  # loads the scripts if needed
    await read_slots(log, [ReadRequest(keys[0], "g", "c", 1, start=b"0")])
    await ack_slots(log, [AckRequest(keys[0], "g", [b"0-1"])])
    names = ("evalsha", "script", "exec", "watch")
    before = await _command_calls(redis_client, *names)

    await log.append([Append(key, one(2)) for key in keys])
    slots = await read_slots(log, [ReadRequest(key, "g", "c", 10) for key in keys])
    await ack_slots(
        log,
        [
            AckRequest(key, "g", [e.id for e in s])
            for key, s in zip(keys, slots, strict=True)
            if isinstance(s, list)
        ],
    )

    after = await _command_calls(redis_client, *names)
    assert [a - b for a, b in zip(after, before, strict=True)] == [1 + 1, 0, 1, 0]
    assert sum(len(s) for s in slots if isinstance(s, list)) == 8


MULTI = b"*1\r\n$5\r\nMULTI\r\n"


class Intruder:
    """Runs ``step`` against the server once, right before a round's MULTI is sent (so
    after the leases were checked, and before the transaction runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, step: Callable[[], Awaitable[None]]):
        self.times = 0
        write = _lanes.write

        async def intruded(conn: Any, payload: bytes, *args: Any, **kwargs: Any) -> None:
            if payload.startswith(MULTI) and self.times == 0:
                self.times += 1
                await step()
            await write(conn, payload, *args, **kwargs)

        monkeypatch.setattr(_watched, "write", intruded)


async def test_a_lock_taken_over_between_the_check_and_the_read_fences_the_read(
    redis_client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, locks, kv, k = (
        RedisStreamLog(redis_client),
        RedisPartitionLocks(redis_client),
        RedisKeyValue(redis_client),
        key_space(),
    )
    await log.ensure_group(k("s"), "g")
    await log.append([Append(k("s"), one(1))])
    lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
    assert lease is not None
    other = make_client(redis_url, 2)

    async def take_over() -> None:
        await other.set(k("lock"), b"w2:999", px=30_000)

    intruder = Intruder(monkeypatch, take_over)
    fence = Fence(k("lock"), lease.token, k("fenced"))
    try:
        [slot] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=fence)])
    finally:
        await other.aclose()
    assert intruder.times == 1
    assert isinstance(slot, Fenced)  # the transaction was aborted, then found stale
    assert [g.pending for g in await log.groups(k("s"))] == [0]  # nothing was delivered
    assert await kv.get(k("fenced")) == b"1"


async def test_a_renewal_during_a_round_only_makes_it_try_again(
    redis_client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, locks, k = RedisStreamLog(redis_client), RedisPartitionLocks(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    ids = await log.append([Append(k("s"), one(1))])
    lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
    assert lease is not None
    other = make_client(redis_url, 2)

    async def renew() -> None:
        assert await RedisPartitionLocks(other).extend([lease], 30.0) == [True]

    intruder = Intruder(monkeypatch, renew)
    fence = Fence(k("lock"), lease.token, k("fenced"))
    try:
        [slot] = await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=fence)])
    finally:
        await other.aclose()
    assert intruder.times == 1
    assert slot == [Entry(ids[0], one(1), 1)]


async def test_a_round_the_server_does_not_answer_in_time_fails_and_the_next_one_works(
    redis_url: str,
) -> None:
    # The watched transaction reads its replies under one deadline of socket_timeout: a
    # server that stops answering makes the round fail as unavailable, not hang, and the
    # connection it left half-read is not reused.
    client = Redis.from_url(redis_url, socket_timeout=0.3, protocol=2)
    admin = Redis.from_url(redis_url)
    try:
        log, k = RedisStreamLog(client), key_space()
        await log.append([Append(k("s"), one(1))])
        await log.ensure_group(k("s"), "g")
        await admin.client_pause(2000, all=True)
        try:
            with pytest.raises(BackendUnavailable):
                await asyncio.wait_for(log.exchange([], [ReadRequest(k("s"), "g", "p0", 10)]), 10.0)
        finally:
            await admin.client_unpause()
        _, [slot] = await log.exchange([], [ReadRequest(k("s"), "g", "p0", 10)])
        assert isinstance(slot, list)
        assert [e.fields for e in slot] == [one(1)]
    finally:
        await client.aclose()
        await admin.aclose()


# --------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("guard", ["counted", "shielded"])
async def test_a_loop_of_blocking_reads_always_ends_when_its_task_is_cancelled(
    redis_client: Redis, guard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py sometimes absorbs a cancellation that arrives as a blocking read returns; the
    adapter raises it again, so a loop around ``wait`` (the doorbell, the control stream)
    cannot outlive its cancellation and hang a graceful stop. ``counted`` is the guard of
    Python >= 3.11 (``Task.cancelling``), ``shielded`` the one Python 3.10 uses."""
    if guard == "counted" and not _errors.COUNTS_CANCELLATIONS:
        pytest.skip("needs Python >= 3.11 (Task.cancelling)")
    if guard == "shielded":
        monkeypatch.setattr(_errors, "COUNTS_CANCELLATIONS", False)
    log, k = RedisStreamLog(redis_client), key_space()
    rng = random.Random(7)

    async def doorbell() -> None:
        while True:  # what the fetcher's and the coordinator's loops do
            await log.wait({k("s"): b"0-0"}, 0.005)

    survivors = 0
    for _ in range(400):
        task = asyncio.create_task(doorbell())
        await asyncio.sleep(rng.uniform(0, 0.012))  # cancel at every point of the read
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5.0)  # a hang bound, not a timing
        if not done:
            survivors += 1
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        else:
            assert task.cancelled()
    assert survivors == 0


async def test_a_twenty_megabyte_field_is_dead_lettered_even_when_its_lease_is_renewed_meanwhile(
    redis_client: Redis, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dead letter is a watched transaction: a renewal of the lease between its WATCH
    # and its EXEC aborts that attempt, and the next one writes it, once. The renewal is
    # made to land there by wrapping the transaction's GET of the lock (redis-py offers no
    # hook between the two).
    log, locks, k = RedisStreamLog(redis_client), RedisPartitionLocks(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    [entry] = await log.append([Append(k("s"), {b"data": b"x"})])
    lease = await locks.acquire(k("lock"), k("epoch"), "w1", 30.0)
    assert lease is not None
    fence = Fence(k("lock"), lease.token, k("f"))
    await read_slots(log, [ReadRequest(k("s"), "g", "p0", 10, fence=fence)])
    other = make_client(redis_url, pool_size=1)
    keeper = RedisPartitionLocks(other)
    looks: list[object] = []
    original = Pipeline.get

    async def get_then_renew(self: Pipeline, name: str) -> object:
        value = await original(self, name)  # watching: it runs at once
        looks.append(value)
        if len(looks) == 1:
            assert await keeper.extend([lease], 30.0) == [True]
        return value

    monkeypatch.setattr(Pipeline, "get", get_then_renew)
    letter = {b"data": b"y" * (20 << 20), b"__error_type": b"LimitExceeded"}
    try:
        sink_id = await log.dead_letter(DeadLetter(k("s"), "g", entry, k("dlq"), letter, fence))
    finally:
        await other.aclose()
    assert looks == [lease.token, lease.token]  # the first attempt was aborted
    assert await log.range(k("dlq")) == [Entry(sink_id, letter)]
    assert await log.pending(k("s"), "g") == []


async def test_cancelling_a_wait_that_reads_reads_nothing_and_leaves_the_client_usable(
    redis_client: Redis,
) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    reads = [ReadRequest(k("s"), "g", "p0", 10)]
    before = await blocked_clients(redis_client)
    waiter = asyncio.ensure_future(log.wait_and_read({k("s"): b"0-0"}, 30.0, reads))

    async def blocked() -> bool:
        return await blocked_clients(redis_client) > before

    await eventually(blocked)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    async def unblocked() -> bool:
        return await blocked_clients(redis_client) == before

    await eventually(unblocked)  # the connection was dropped: its read never runs
    await log.append([Append(k("s"), one(1))])
    assert await log.pending(k("s"), "g") == []
    woken, results = await log.wait_and_read({k("s"): b"0-0"}, 1.0, reads)
    assert woken == {k("s")}
    assert results is not None
    [slot] = results
    assert isinstance(slot, list)
    assert [e.fields for e in slot] == [one(1)]


async def test_a_wait_that_reads_loads_its_script_when_the_server_lost_it(
    redis_client: Redis,
) -> None:
    log, k = RedisStreamLog(redis_client), key_space()
    await log.ensure_group(k("s"), "g")
    await log.append([Append(k("s"), one(1))])
    await redis_client.script_flush()
    woken, results = await log.wait_and_read(
        {k("s"): b"0-0"}, 1.0, [ReadRequest(k("s"), "g", "p0", 10)]
    )
    assert woken == {k("s")}
    assert results is not None
    [slot] = results
    assert isinstance(slot, list)
    assert [e.fields for e in slot] == [one(1)]
