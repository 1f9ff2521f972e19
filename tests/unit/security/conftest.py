"""Fixtures shared with the CLI tests."""

from ..test_cli import keep_root_logging, user_module  # noqa: F401 - fixtures
