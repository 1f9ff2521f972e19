"""The pytest plugin, in a pytest run of its own (as in a project that installed runnel)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

TESTS = """
import asyncio

import pytest

from runnel import App, Events, Record

pytestmark = pytest.mark.asyncio

app = App(name="plugin-check", redis_url="redis://127.0.0.1:1/0", default_partition_count=2)


class Tick(Record):
    key: str


ticks = app.stream("ticks", record=Tick, partition_by="key")
seen = []


@app.processor(ticks)
async def proc(events: Events) -> None:
    async for tick in events.records():
        await asyncio.sleep(600)
        seen.append(tick.key)


async def test_uses_the_fixture(runnel_harness):
    async with runnel_harness(app, timeout=2000) as h:
        await h.start()
        await ticks.send(Tick(key="a"), Tick(key="b"))
        await h.run_until_idle()
    assert sorted(seen) == ["a", "b"]


async def test_leaves_a_harness_open(runnel_harness):
    await runnel_harness(app).__aenter__()


async def test_runs_after_the_leak_on_a_restored_app(runnel_harness):
    assert app.settings.redis_url == "redis://127.0.0.1:1/0"
    async with runnel_harness(app) as h:
        await h.start()


def test_does_not_use_it():
    assert asyncio.sleep.__module__ == "asyncio.tasks"
"""


def test_the_fixture_works_with_pytest_asyncio_and_fails_a_test_that_leaves_one_open(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_plugin_use.py").write_text(textwrap.dedent(TESTS))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout
    assert "PASSED test_plugin_use.py::test_uses_the_fixture" in out, out
    assert "ERROR at teardown of test_leaves_a_harness_open" in out, out
    assert "were left open by the test" in out, out
    assert "PASSED test_plugin_use.py::test_runs_after_the_leak_on_a_restored_app" in out, out
    assert "PASSED test_plugin_use.py::test_does_not_use_it" in out, out


def test_the_plugin_is_registered_as_the_pytest11_entry_point_runnel() -> None:
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "runnel"]
    assert plugin.value == "runnel.testing.pytest_plugin"


BROKEN_CRONITER = '''
"""Stands in for a croniter older than runnel supports: it lacks CroniterError."""


class croniter:  # noqa: N801
    pass


class CroniterBadDateError(Exception):
    pass
'''

USER_TESTS = """
def test_plain():
    assert 1 + 1 == 2


def test_asks_for_runnel(runnel_harness):
    raise AssertionError("never reached: the fixture fails first")
"""


def test_a_broken_dependency_fails_only_the_tests_that_use_the_fixture(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "croniter.py").write_text(BROKEN_CRONITER)
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(shadow)},
    )
    out = run.stdout + run.stderr
    assert "Error while loading plugin" not in out, out
    assert "PASSED test_user.py::test_plain" in out, out
    assert "ERROR test_user.py::test_asks_for_runnel" in out, out
    assert "the runnel_harness fixture could not load runnel's test kit" in out, out
    assert "CroniterError" in out, out
