"""Every example in runnel's docstrings runs, and passes.

A ``>>>`` in ``src/runnel`` is a real example: each module's doctests run here, with the
suite. A sketch that cannot run on its own (it needs a worker, or a harness) is written as
prose, as an indented code block without prompts, never as commented-out prompts.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import runnel

MODULES = sorted(info.name for info in pkgutil.walk_packages(runnel.__path__, prefix="runnel."))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
SOURCE = Path(runnel.__file__).parent


@pytest.mark.parametrize("name", ["runnel", *MODULES])
def test_the_examples_of_each_module_pass(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test)
    results = runner.summarize(verbose=False)

    assert results.failed == 0, f"{results.failed} example(s) of {name} failed (see the output)"


def test_there_are_examples_to_run() -> None:
    attempted = 0
    for name in MODULES:
        for test in doctest.DocTestFinder().find(importlib.import_module(name)):
            attempted += len(test.examples)
    assert attempted > 150


@pytest.mark.parametrize(
    "path", sorted(SOURCE.rglob("*.py")), ids=lambda p: str(p.relative_to(SOURCE))
)
def test_no_prompt_is_a_placeholder_or_skipped(path: Path) -> None:
    text = path.read_text()
    assert not re.search(r">>> +#", text), "a commented-out prompt: run it, or make it prose"
    assert "doctest: +SKIP" not in text, "a skipped example: run it, or make it prose"
