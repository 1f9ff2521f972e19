"""Registering processors: per-processor settings are checked like the app-wide ones."""

from __future__ import annotations

from typing import Any

import pytest

from runnel import App, Events, Record
from runnel.errors import Misconfigured


class Tick(Record):
    key: str


def app_and_stream() -> tuple[App, Any]:
    app = App(name="reg", redis_url="memory://reg")
    return app, app.stream("ticks", record=Tick, partition_by="key")


async def noop(events: Events) -> None:
    async for _ in events:
        pass


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"prefetch_count": 0}, "invalid prefetch_count=0 (Input should be greater than or equal"),
        ({"prefetch_max": 0}, "invalid prefetch_max=0 (Input should be greater than or equal"),
        ({"lock_expiry": -1}, "invalid lock_expiry=-1 (Input should be greater than 0)"),
        ({"grace_period": "soon"}, "invalid grace_period='soon' (Input should be a valid number"),
        ({"read_timeout": 0}, "invalid read_timeout=0"),
        ({"heartbeat_interval": 0}, "invalid heartbeat_interval=0"),
    ],
)
def test_an_out_of_range_override_is_refused_naming_processor_and_setting(
    override: dict[str, Any], message: str
) -> None:
    app, ticks = app_and_stream()
    with pytest.raises(Misconfigured, match="processor 'proc': ") as info:
        app.processor(ticks, name="proc", **override)(noop)
    assert message in str(info.value)
    assert "proc" not in app.processors


def test_valid_overrides_are_converted_and_kept() -> None:
    app, ticks = app_and_stream()
    app.processor(ticks, name="proc", prefetch_count="5", grace_period=0, lock_expiry=3)(noop)
    spec = app.processors["proc"]
    assert (spec.prefetch_count, spec.grace_period, spec.lock_expiry) == (5, 0.0, 3.0)


def test_an_unknown_override_lists_the_known_ones() -> None:
    app, ticks = app_and_stream()
    with pytest.raises(Misconfigured, match=r"unknown processor settings \['prefetch'\]"):
        app.processor(ticks, name="proc", prefetch=4)(noop)


async def test_a_reconfigured_app_prepares_its_streams_again_on_the_new_backend() -> None:
    app = App(name="reprep", redis_url="memory://reprep-a")
    ticks = app.stream("ticks", record=Tick, partition_by="key")
    app.processor(ticks, name="proc")(noop)
    await ticks.send(Tick(key="k"))
    await app.close()
    app.reconfigure(redis_url="memory://reprep-b")
    await ticks.send(Tick(key="k"))
    groups = await app.backend.log.groups(ticks.keys.stream(ticks.partition_for(Tick(key="k"))))
    assert [g.name for g in groups] == ["proc"]
    assert await app.backend.kv.hash_get_all(ticks.keys.meta())
