"""Running an unmodified App under the harness: sending, ordering, idleness, restoring."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
from dependency_injector import providers

from runnel import Events, ExceptionPolicy
from runnel.adapters.system_clock import SystemClock
from runnel.errors import Misconfigured
from runnel.testing import Harness, SimulationTimeout

from .apps import UNREACHABLE, Tick, counting_app, new_app, ticks


async def test_an_app_configured_for_redis_runs_without_a_server() -> None:
    app, stream, seen = counting_app()
    async with Harness(app) as h:
        assert app.settings.redis_url.startswith("memory://")
        await h.start("w1")
        ids = await stream.send(*ticks(8))
        await h.run_until_idle()
    assert len(ids) == 8
    assert len(seen.handled) == 8
    assert app.settings.redis_url == UNREACHABLE


async def test_each_partition_reaches_its_processor_in_stream_order() -> None:
    app, stream, seen = counting_app(default_prefetch_count=3)
    async with Harness(app) as h:
        await h.start("w1")
        for chunk in range(5):
            await stream.send(*ticks(40)[chunk * 8 : chunk * 8 + 8])
        await h.run_until_idle()
        stored = h.entries(stream)
        for number, events in stored.items():
            handed = [d.entry_id for d in h.deliveries("proc", partition=number)]
            assert handed == [e.entry_id for e in events]
        assert seen.by_key() == {f"k{k}": list(range(10)) for k in range(4)}
        assert sum(len(v) for v in h.processed("proc").values()) == 40


async def test_idle_means_every_sent_event_is_acknowledged() -> None:
    app, stream, _ = counting_app(work=3.0)
    async with Harness(app) as h:
        await h.start("w1")
        await stream.send(*ticks(6, keys=2))
        await h.advance(1.0)
        assert not h.is_idle()
        assert h.pending("proc")  # fetched and in flight, not yet acknowledged
        await h.run_until_idle()
        assert h.is_idle()
        assert h.pending("proc") == {}
        assert h.undelivered("proc") == {}
        assert sum(len(ids) for ids in h.acknowledged("proc").values()) == 6


async def test_events_sent_before_any_worker_runs_wait_for_one() -> None:
    app, stream, seen = counting_app()
    async with Harness(app) as h:
        await stream.send(*ticks(5))
        assert sum(len(ids) for ids in h.undelivered("proc").values()) == 5
        await h.start("w1")
        await h.run_until_idle()
    assert len(seen.handled) == 5


async def test_run_until_idle_fails_fast_when_no_running_worker_can_finish() -> None:
    app, stream, _ = counting_app()
    async with Harness(app) as h:
        w1 = await h.start("w1")
        await w1.kill()
        await stream.send(Tick(key="a", seq=0))
        with pytest.raises(SimulationTimeout, match="no running worker runs proc") as caught:
            await h.run_until_idle()
    assert "proc partition" in str(caught.value)
    assert "1 undelivered" in str(caught.value)


async def test_run_until_gives_up_after_its_timeout_with_a_description() -> None:
    app, stream, _ = counting_app(work=100.0)
    async with Harness(app) as h:
        await h.start("w1")
        await stream.send(Tick(key="a", seq=0), Tick(key="a", seq=1))
        started = h.now
        with pytest.raises(SimulationTimeout, match="within 30 simulated seconds") as caught:
            await h.run_until_idle(timeout=30)
        assert h.now == pytest.approx(started + 30)
    assert "2 pending, 0 undelivered, owner w1" in str(caught.value)  # both were fetched


async def test_a_quarantined_partition_counts_as_idle() -> None:
    app = new_app()
    stream = app.stream("ticks", record=Tick, partition_by="key")

    @app.processor(stream, exception_policy=ExceptionPolicy.QUARANTINE)
    async def picky(events: Events) -> None:
        async for tick in events.records():
            if tick.seq == 1:
                raise ValueError(f"cannot take {tick.key}#{tick.seq}")

    async with Harness(app) as h:
        await h.start("w1")
        await stream.send(*[Tick(key="a", seq=i) for i in range(4)], Tick(key="b", seq=0))
        await h.run_until_idle()
        number = stream.partition_for(Tick(key="a", seq=0))
        quarantined = h.quarantined("picky")
        assert list(quarantined) == [number]
        assert quarantined[number]["error"] == "cannot take a#1"
        assert quarantined == await app.quarantined("picky")
        failed = next(d for d in h.deliveries("picky") if d.outcome == "failed")
        assert failed.record == Tick(key="a", seq=1)
        assert h.pending("picky")[number][0] == failed.entry_id  # it stays pending
        assert [r.seq for r in h.processed("picky")[number] if r.key == "a"] == [0]


async def test_the_app_is_restored_when_the_harness_closes() -> None:
    app, stream, _ = counting_app()

    @app.timer(interval=10)
    async def tick() -> None:
        pass

    settings, specs, tasks = app.settings, dict(app.processors), dict(app.tasks)
    async with Harness(app) as h:
        await h.start("w1")
        await stream.send(*ticks(3))
        await h.run_until_idle()
        assert app.processors["proc"] is not specs["proc"]
    assert app.settings is settings
    assert app.processors == specs
    assert app.tasks == tasks
    assert isinstance(app.container.clock(), SystemClock)
    assert app.container.kind() == "redis"
    assert not stream.is_prepared()


async def test_one_app_runs_under_one_harness_after_another() -> None:
    app, stream, seen = counting_app()
    for round_ in range(3):
        async with Harness(app) as h:
            assert h.pending("proc") == {}  # every harness starts on an empty broker
            await h.start("w1")
            await stream.send(Tick(key="k", seq=round_))
            await h.run_until_idle()
            assert sum(len(v) for v in h.acknowledged("proc").values()) == 1
    assert [seq for _, _, seq in seen.handled] == [0, 1, 2]


async def test_an_app_whose_backend_was_used_is_refused_and_left_alone() -> None:
    app, _, _ = counting_app()
    app.reconfigure(redis_url=f"memory://{app.name}")
    used = app.backend
    settings = app.settings
    with pytest.raises(Misconfigured, match="was already used"):
        async with Harness(app):
            pass
    assert app.backend is used
    assert app.settings is settings
    await app.close()
    async with Harness(app) as h:  # detached: now it can run under a harness
        await h.start("w1")


async def test_an_app_with_its_own_clock_override_gets_it_back() -> None:
    app, _, _ = counting_app()
    mine = SystemClock()
    app.container.clock.override(providers.Object(mine))
    async with Harness(app) as h:
        during: object = app.container.clock()
        assert during is h.clock
    assert app.container.clock() is mine


async def test_a_harness_opens_only_once() -> None:
    app, _, _ = counting_app()
    harness = Harness(app)
    async with harness:
        pass
    with pytest.raises(RuntimeError, match="opened once"):
        async with harness:
            pass
    with pytest.raises(RuntimeError, match="not open"):
        await harness.start()


async def test_run_until_idle_with_no_worker_started_reports_the_waiting_events() -> None:
    app, stream, _ = counting_app()
    async with Harness(app) as h:
        assert h.is_idle()
        await stream.send(Tick(key="a", seq=0))
        assert not h.is_idle()
        with pytest.raises(SimulationTimeout, match="no running worker runs proc"):
            await h.run_until_idle()


async def test_processors_in_autodiscover_modules_are_found_when_the_harness_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = new_app(autodiscover="discovered_procs/*.py")
    stream = app.stream("ticks", record=Tick, partition_by="key")
    home = types.ModuleType("discovery_home")
    home.__dict__.update(app=app, stream=stream, seen=[])
    monkeypatch.setitem(sys.modules, "discovery_home", home)
    (tmp_path / "discovered_procs").mkdir()
    (tmp_path / "discovered_procs" / "found.py").write_text(
        "from discovery_home import app, seen, stream\n\n"
        "@app.processor(stream)\n"
        "async def found(events):\n"
        "    async for tick in events.records():\n"
        "        seen.append(tick.seq)\n"
    )
    monkeypatch.chdir(tmp_path)
    try:
        async with Harness(app) as h:
            await h.start("w1")
            await stream.send(Tick(key="a", seq=7))
            await h.run_until_idle()
            assert [d.record.seq for d in h.deliveries("found")] == [7]
    finally:
        sys.modules.pop("discovered_procs.found", None)
    assert home.seen == [7]
