"""The Membership contract: a versioned record whose every change is announced.

Bind it with a ``Test*`` subclass providing ``make_membership`` and ``make_log`` (to read
the control stream back).

Example:
    >>> MembershipContract.__name__
    'MembershipContract'
"""

from __future__ import annotations

from collections.abc import Callable

from runnel.domain.ids import StreamId
from runnel.ports import MembershipKeys
from tests.contracts import MakeLog, MakeMembership, key_space


def _keys(k: Callable[[str], str]) -> MembershipKeys:
    return MembershipKeys(k("memb"), k("mver"), k("ctrl"))


class MembershipContract:
    """Behaviour shared by every Membership adapter."""

    async def test_a_record_never_written_has_version_zero_and_no_value(
        self, make_membership: MakeMembership
    ) -> None:
        membership, keys = await make_membership(), _keys(key_space())
        record = await membership.read(keys)
        assert (record.version, record.value) == (0, None)

    async def test_an_update_on_the_current_version_writes_bumps_and_announces(
        self, make_membership: MakeMembership, make_log: MakeLog
    ) -> None:
        membership, log, keys = await make_membership(), await make_log(), _keys(key_space())
        first = await membership.update(keys, 0, b'{"a":1}', {b"type": b"join"})
        assert first.written
        assert first.version == 1
        second = await membership.update(keys, 1, b'{"a":2}', {b"type": b"leave"})
        assert (second.written, second.version) == (True, 2)
        record = await membership.read(keys)
        assert (record.version, record.value) == (2, b'{"a":2}')
        notes = await log.range(keys.control)
        assert [n.id for n in notes] == [first.announced, second.announced]
        assert [n.fields for n in notes] == [
            {b"type": b"join", b"version": b"1"},
            {b"type": b"leave", b"version": b"2"},
        ]

    async def test_a_stale_update_writes_nothing_and_reports_the_current_version(
        self, make_membership: MakeMembership, make_log: MakeLog
    ) -> None:
        membership, log, keys = await make_membership(), await make_log(), _keys(key_space())
        await membership.update(keys, 0, b"v1", {b"type": b"join"})
        await membership.update(keys, 1, b"v2", {b"type": b"join"})
        stale = await membership.update(keys, 1, b"lost", {b"type": b"reap"})
        assert (stale.written, stale.version, stale.announced) == (False, 2, None)
        never = await membership.update(keys, 0, b"lost", {b"type": b"reap"})
        assert (never.written, never.version) == (False, 2)
        assert (await membership.read(keys)).value == b"v2"
        assert await log.length(keys.control) == 2

    async def test_an_announcement_is_stamped_with_the_current_version(
        self, make_membership: MakeMembership, make_log: MakeLog
    ) -> None:
        membership, log, keys = await make_membership(), await make_log(), _keys(key_space())
        before = await membership.announce(keys, {b"type": b"released", b"partitions": b"1,2"})
        await membership.update(keys, 0, b"v1", {b"type": b"join"})
        after = await membership.announce(keys, {b"type": b"released"})
        assert StreamId.parse(before) < StreamId.parse(after)
        notes = {n.id: n.fields for n in await log.range(keys.control)}
        assert notes[before] == {b"type": b"released", b"partitions": b"1,2", b"version": b"0"}
        assert notes[after][b"version"] == b"1"
        assert (await membership.read(keys)).version == 1  # announcing changes no version

    async def test_the_control_stream_stays_bounded(
        self, make_membership: MakeMembership, make_log: MakeLog
    ) -> None:
        membership, log, keys = await make_membership(), await make_log(), _keys(key_space())
        for _ in range(1_300):
            await membership.announce(keys, {b"type": b"released"})
        kept = await log.length(keys.control)
        assert 1_000 <= kept < 1_300
