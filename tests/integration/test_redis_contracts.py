"""The port contracts, bound to the Redis adapters on a real server.

Each test gets its own client; the suites name their keys per test, so nothing is flushed.
``advance`` really sleeps: Redis expires keys and measures idle time on its own clock.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from tests.contracts import Advance
from tests.contracts.bindings import Adapters, Bound, redis_adapters
from tests.contracts.keyvalue_contract import KeyValueContract
from tests.contracts.locks_contract import LocksContract
from tests.contracts.membership_contract import MembershipContract
from tests.contracts.streamadmin_contract import StreamAdminContract
from tests.contracts.streamlog_contract import StreamLogContract
from tests.contracts.transactions_contract import TransactionsContract


@pytest.fixture
def adapters(redis_client: Redis) -> Adapters:
    return redis_adapters(redis_client)


@pytest.fixture
def advance() -> Advance:
    return asyncio.sleep


class TestRedisStreamLog(Bound, StreamLogContract):
    """StreamLog contract on Redis."""


class TestRedisTransactions(Bound, TransactionsContract):
    """Idempotent appends and effectively-once commits on the redis backend."""


class TestRedisPartitionLocks(Bound, LocksContract):
    """PartitionLocks contract on Redis."""


class TestRedisKeyValue(Bound, KeyValueContract):
    """KeyValue contract on Redis."""


class TestRedisMembership(Bound, MembershipContract):
    """Membership contract on Redis."""


class TestRedisStreamAdmin(Bound, StreamAdminContract):
    """StreamAdmin contract on Redis."""


class TestRedisStreamLogScriptedRounds(Bound, StreamLogContract):
    """StreamLog contract on Redis, every fetch round through ``exchange.lua``.

    A round that reads goes as a watched transaction, and falls back to the script only
    when that transaction keeps being disturbed: here the transaction always gives up, so
    reads, acknowledgements and fences (a stale epoch refused and counted) are checked on
    the fallback too.
    """

    @pytest.fixture(autouse=True)
    def scripted_rounds(self, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        from runnel.adapters.redis import streams

        gave_up: list[int] = []

        async def always_disturbed(*_: object) -> None:
            gave_up.append(1)
            return None

        monkeypatch.setattr(streams, "exchange_watched", always_disturbed)
        return gave_up

    async def test_the_fallback_was_taken(
        self, adapters: Adapters, scripted_rounds: list[int]
    ) -> None:
        from runnel.ports import ReadRequest
        from tests.contracts import key_space

        log, key = adapters.log(), key_space()("s")
        await log.ensure_group(key, "g")
        await log.exchange([], [ReadRequest(key, "g", "c", 1)])
        assert scripted_rounds == [1]
