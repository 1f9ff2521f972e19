"""pytest plugin: the ``runnel_harness`` fixture.

Installed with runnel (entry point ``pytest11``, name ``runnel``), so it needs no
``conftest.py``; disable it with ``-p no:runnel``. It only adds the fixture: tests that do
not ask for it are not affected, and runnel is imported only when a test uses it.

``runnel_harness(app, **options)`` makes a :class:`runnel.testing.Harness` (the options
are its keyword arguments). Use it with ``async with`` inside an async test, with
whichever plugin runs your async tests (pytest-asyncio, anyio). A harness left open by a
test is closed after it, and the test fails, so one test's workers never leak into the
next.

Loading the plugin imports nothing but pytest: a broken or missing dependency of runnel
can never break a test run that does not use runnel. If runnel cannot be loaded, the tests
that ask for ``runnel_harness`` fail, saying why, and the others run as usual.

Example::

    async def test_totals(runnel_harness):
        async with runnel_harness(app) as h:
            await h.start()
            await orders.send(Order(customer="ada", seq=1, amount=10.0))
            await h.run_until_idle()
        assert totals == {"ada": 10.0}
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from runnel.app import App
    from runnel.testing.harness import Harness, HarnessFactory


@pytest.fixture
def runnel_harness() -> Iterator[HarnessFactory]:
    """Make harnesses for your App: ``async with runnel_harness(app) as h:``.

    Example::

        async def test_order(runnel_harness):
            async with runnel_harness(app) as h:
                ...
    """
    try:
        from runnel.testing.harness import Harness
    except Exception as exc:  # any import-time failure of runnel or its dependencies
        pytest.fail(
            f"the runnel_harness fixture could not load runnel's test kit: "
            f"{type(exc).__name__}: {exc} (check that runnel's dependencies are installed "
            "at the versions it declares: pip check)",
            pytrace=False,
        )

    made: list[Harness] = []

    def make(app: App, **options: Any) -> Harness:
        harness = Harness(app, **options)
        made.append(harness)
        return harness

    yield make
    left_open = [h for h in made if h.is_open]
    for harness in left_open:
        harness.abandon()
    if left_open:
        pytest.fail(
            f"{len(left_open)} runnel harness(es) were left open by the test (use "
            "`async with runnel_harness(app) as h:`); they were closed and the app restored",
            pytrace=False,
        )
