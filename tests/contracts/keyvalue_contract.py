"""The KeyValue contract: strings with expiry, compare-and-set and hashes.

Bind it with a ``Test*`` subclass providing ``make_kv``, ``make_log`` and ``advance``.

Example:
    >>> KeyValueContract.__name__
    'KeyValueContract'
"""

from __future__ import annotations

from runnel.ports import Append
from tests.contracts import Advance, MakeKV, MakeLog, key_space


class KeyValueContract:
    """Behaviour shared by every KeyValue adapter."""

    async def test_set_then_get(self, make_kv: MakeKV) -> None:
        kv, k = await make_kv(), key_space()
        assert await kv.get(k("a")) is None
        await kv.set(k("a"), b"1")
        await kv.set(k("a"), b"2")
        assert await kv.get(k("a")) == b"2"

    async def test_a_value_with_a_ttl_expires(self, make_kv: MakeKV, advance: Advance) -> None:
        kv, k = await make_kv(), key_space()
        await kv.set(k("short"), b"x", ttl=0.2)
        await kv.set(k("long"), b"y", ttl=30.0)
        await kv.set(k("reset"), b"z", ttl=0.2)
        await kv.set(k("reset"), b"z")
        assert await kv.get(k("short")) == b"x"
        await advance(0.35)
        assert await kv.get(k("short")) is None
        assert await kv.exists([k("short"), k("long"), k("reset")]) == [False, True, True]
        assert await kv.compare_and_set(k("short"), None, b"new") is True

    async def test_compare_and_set(self, make_kv: MakeKV) -> None:
        kv, k = await make_kv(), key_space()
        assert await kv.compare_and_set(k("a"), None, b"1") is True
        assert await kv.compare_and_set(k("a"), None, b"2") is False
        assert await kv.compare_and_set(k("a"), b"9", b"2") is False
        assert await kv.get(k("a")) == b"1"
        assert await kv.compare_and_set(k("a"), b"1", b"2") is True
        assert await kv.get(k("a")) == b"2"
        assert await kv.compare_and_set(k("b"), b"1", b"2") is False
        assert await kv.get(k("b")) is None

    async def test_exists_answers_per_key(self, make_kv: MakeKV) -> None:
        kv, k = await make_kv(), key_space()
        await kv.set(k("a"), b"1")
        await kv.hash_set(k("h"), {b"f": b"v"})
        assert await kv.exists([k("a"), k("missing"), k("h")]) == [True, False, True]
        assert await kv.exists([]) == []

    async def test_hash_set_get_and_delete(self, make_kv: MakeKV) -> None:
        kv, k = await make_kv(), key_space()
        assert await kv.hash_get_all(k("h")) == {}
        await kv.hash_set(k("h"), {b"a": b"1", b"b": b"2"})
        await kv.hash_set(k("h"), {b"b": b"3"})
        assert await kv.hash_get_all(k("h")) == {b"a": b"1", b"b": b"3"}
        assert await kv.hash_delete(k("h"), b"a", b"missing") == 1
        assert await kv.hash_get_all(k("h")) == {b"b": b"3"}
        assert await kv.hash_delete(k("h"), b"b") == 1
        assert await kv.exists([k("h")]) == [False]

    async def test_hash_set_missing_keeps_existing_fields(self, make_kv: MakeKV) -> None:
        kv, k = await make_kv(), key_space()
        first = await kv.hash_set_missing(k("h"), {b"a": b"1", b"b": b"2"})
        assert first == {b"a": b"1", b"b": b"2"}
        second = await kv.hash_set_missing(k("h"), {b"b": b"changed", b"c": b"3"})
        assert second == {b"a": b"1", b"b": b"2", b"c": b"3"}
        assert await kv.hash_get_all(k("h")) == second

    async def test_delete_counts_existing_keys_of_any_type(
        self, make_kv: MakeKV, make_log: MakeLog
    ) -> None:
        kv, log, k = await make_kv(), await make_log(), key_space()
        await kv.set(k("a"), b"1")
        await kv.hash_set(k("h"), {b"f": b"v"})
        await log.append([Append(k("s"), {b"n": b"1"})])
        assert await kv.delete(k("a"), k("h"), k("s"), k("missing")) == 3
        assert await kv.exists([k("a"), k("h"), k("s")]) == [False, False, False]
        assert await kv.delete() == 0
