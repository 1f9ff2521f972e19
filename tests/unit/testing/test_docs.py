"""docs/testing.md: its example files are the ones in examples/, and its scripts print
what it says they print."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import subprocess
import sys
import unittest
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "testing.md"
EXAMPLES = ROOT / "examples"

_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def snippets() -> dict[str, tuple[str, str | None]]:
    """Each named Python block of the doc (``# name.py`` first), with the console after it."""
    blocks = _BLOCK.findall(DOC.read_text())
    named: dict[str, tuple[str, str | None]] = {}
    for i, (lang, body) in enumerate(blocks):
        first = body.splitlines()[0] if body else ""
        if lang != "python" or not re.fullmatch(r"# \w+\.py", first):
            continue
        after = blocks[i + 1] if i + 1 < len(blocks) else None
        console = after[1] if after is not None and after[0] == "console" else None
        named[first[2:]] = (body, console)
    return named


@pytest.fixture
def examples_importable() -> Iterator[None]:
    added = str(EXAMPLES) not in sys.path
    if added:
        sys.path.insert(0, str(EXAMPLES))
    import orders_app

    for table in (orders_app.totals, orders_app.warehouse, orders_app.reports):
        table.clear()
    yield
    if added:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize("name", ["orders_app.py", "test_orders_app.py"])
def test_the_worked_example_is_the_example_in_the_repository(name: str) -> None:
    body, _ = snippets()[name]
    assert body == f"# {name}\n" + (EXAMPLES / name).read_text()


@pytest.mark.parametrize("name", ["crontab_check.py", "pause_check.py", "check_orders.py"])
@pytest.mark.usefixtures("examples_importable")
def test_a_script_of_the_doc_prints_what_the_doc_shows(name: str) -> None:
    body, console = snippets()[name]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(body, name, "exec"), {"__name__": "__main__"})
    assert console is not None
    assert out.getvalue() == console


@pytest.mark.usefixtures("examples_importable")
def test_the_unittest_example_passes() -> None:
    body, _ = snippets()["test_orders_unittest.py"]
    namespace: dict[str, object] = {"__name__": "test_orders_unittest"}
    exec(compile(body, "test_orders_unittest.py", "exec"), namespace)
    case = namespace["RunningTotals"]
    assert isinstance(case, type)
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    assert result.wasSuccessful(), result.errors + result.failures
    assert result.testsRun == 1


def test_the_pytest_modules_of_the_doc_pass_in_a_project_of_their_own(tmp_path: Path) -> None:
    names = ["orders_app.py", "pyproject.toml", "test_orders_app.py", "test_fixture_style.py"]
    if importlib.util.find_spec("anyio") is not None:
        names.append("test_orders_anyio.py")
    files = snippets()
    toml = re.search(r"```toml\n# pyproject.toml\n(.*?)```", DOC.read_text(), re.S)
    assert toml is not None
    for name in names:
        text = toml.group(1) if name == "pyproject.toml" else files[name][0]
        (tmp_path / name).write_text(text)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    others = [n for n in names if n.startswith("test_") and n != "test_orders_app.py"]
    expected = 6 + len(others)  # the worked example's six tests, and one in each other module
    assert f"{expected} passed" in run.stdout, run.stdout + run.stderr
