"""What each entry point imports: the cheap ones must not load runnel's heavy dependencies.

These check which modules are loaded, not how long it takes (timings are measured by hand,
with ``python -X importtime``, and recorded in the changelog).
"""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import pytest

from runnel.entrypoints.cli import LOG_LEVELS
from runnel.settings import Settings

HEAVY = ("redis", "pydantic", "pydantic_settings", "dependency_injector", "croniter")


def _loaded_after(code: str) -> set[str]:
    probe = (
        f"{code}\n"
        "import sys\n"
        f"print('LOADED=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    line = run.stdout.strip().splitlines()[-1]
    assert line.startswith("LOADED="), run.stdout
    return set(filter(None, line.removeprefix("LOADED=").split(",")))


def test_import_runnel_loads_no_dependency() -> None:
    assert _loaded_after("import runnel; runnel.__version__") == set()


def test_the_pytest_plugin_loads_no_dependency() -> None:
    assert _loaded_after("import runnel.testing.pytest_plugin") == set()


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["worker", "--help"]])
def test_cli_help_and_version_load_no_backend_or_model_library(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from runnel.entrypoints.cli import cli\n"
        f"try:\n    cli.main({args!r}, prog_name='runnel')\n"
        "except SystemExit:\n    pass\n"
    )
    assert _loaded_after(code) == set()


def test_an_app_on_the_memory_backend_does_not_import_redis() -> None:
    loaded = _loaded_after(
        "from runnel import App\nApp(name='startup', redis_url='memory://startup')"
    )
    assert "redis" not in loaded
    assert "pydantic" in loaded  # records are pydantic models: the check itself works


def test_runnel_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    import runnel

    assert runnel.__version__ == version("runnel")


def test_the_cli_log_levels_are_the_settings_log_levels() -> None:
    assert get_args(Settings.model_fields["log_level"].annotation) == LOG_LEVELS
