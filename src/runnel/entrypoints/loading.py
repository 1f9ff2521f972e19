"""Resolving ``module.path:attribute`` references given on the command line."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, TypeVar

import click

T = TypeVar("T")


def load_reference(ref: str, kind: type[T], what: str) -> T:
    """Import ``module:attr`` and check it is a ``kind``; raise a clear ClickException."""
    if ":" not in ref:
        raise click.BadParameter(f"{ref!r} is not of the form module.path:attribute")
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise click.BadParameter(f"{ref!r} is not of the form module.path:attribute")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise click.BadParameter(
                f"cannot import module {module_name!r}: no such module"
            ) from exc
        raise click.BadParameter(f"importing module {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise click.BadParameter(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise click.BadParameter(f"module {module_name!r} has no attribute {attr!r}") from exc
    if not isinstance(obj, kind):
        raise click.BadParameter(f"{ref!r} is a {type(obj).__name__}, expected {what}")
    return obj
