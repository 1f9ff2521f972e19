"""The public surface, pinned: exactly these names, from these modules.

A name added to or dropped from a public module is a change of the API, so it must show
up here first. The facade packages are also kept free of stray public names (imported
helpers, ``TYPE_CHECKING``) and are lazy: importing them loads nothing else of runnel.
"""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from types import ModuleType

import pytest

PUBLIC: dict[str, set[str]] = {
    "runnel": {
        "App",
        "Compressor",
        "Event",
        "Events",
        "ExceptionPolicy",
        "Middleware",
        "Partition",
        "Record",
        "Serializer",
        "Stream",
        "__version__",
    },
    "runnel.testing": {
        "DEFAULT_TIMEOUT",
        "KILLED",
        "DeadLetterEntry",
        "Delivery",
        "Harness",
        "HarnessFactory",
        "Outcome",
        "SimulatedClock",
        "SimulationTimeout",
        "TaskRun",
        "VirtualWorker",
        "WorkerState",
    },
    "runnel.middleware": {"DeadLetterMiddleware", "Middleware", "UndecodableLetter"},
    "runnel.interfaces": {"Compressor", "Middleware", "Serializer"},
    "runnel.settings": {"Settings", "TrimMode"},
    "runnel.constants": {"ExceptionPolicy"},
    "runnel.context": {
        "ensure_owned",
        "executor_id",
        "partition",
        "processor_name",
        "stream_name",
        "worker_id",
    },
}

FACADES = ["runnel", "runnel.testing", "runnel.middleware", "runnel.interfaces"]
"""Modules whose every public attribute is part of the API (no stray imports)."""

LAZY = {"runnel": "runnel.app", "runnel.testing": "runnel.testing.harness"}
"""Packages that import their names on first use, and a module they must not load."""

SAME_OBJECT = [
    ("runnel.Serializer", "runnel.interfaces.Serializer"),
    ("runnel.Compressor", "runnel.interfaces.Compressor"),
    ("runnel.Middleware", "runnel.interfaces.Middleware"),
    ("runnel.Middleware", "runnel.middleware.Middleware"),
    ("runnel.ExceptionPolicy", "runnel.constants.ExceptionPolicy"),
]


def _resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _public_attributes(module: ModuleType) -> set[str]:
    names = set()
    for name in dir(module):
        if name.startswith("_"):
            continue
        value = getattr(module, name)
        if inspect.ismodule(value):
            continue  # a subpackage, loaded by someone: not a name the package exports
        names.add(name)
    return names


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_each_public_module_exports_exactly_the_intended_names(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{module_name}.{name} does not resolve"


@pytest.mark.parametrize("module_name", FACADES)
def test_facades_have_no_other_public_attributes(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        getattr(module, name)  # a lazy package fills its globals on first use
    assert _public_attributes(module) == PUBLIC[module_name] - {"__version__"}


@pytest.mark.parametrize("module_name", sorted(LAZY))
def test_lazy_packages_resolve_every_name_from_their_homes_table(module_name: str) -> None:
    module = importlib.import_module(module_name)
    homes = module._HOMES
    assert set(homes) == PUBLIC[module_name] - {"__version__"}
    for name, home in homes.items():
        assert getattr(module, name) is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize(("package", "heavy"), sorted(LAZY.items()))
def test_importing_a_lazy_package_loads_nothing_else(package: str, heavy: str) -> None:
    code = f"import sys, {package}; print({heavy!r} in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(("one", "other"), SAME_OBJECT)
def test_reexported_names_are_the_same_objects(one: str, other: str) -> None:
    assert _resolve(one) is _resolve(other)
