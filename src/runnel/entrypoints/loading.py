"""What the command line names: ``module.path:attribute`` references, option values."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from runnel.errors import Misconfigured

if TYPE_CHECKING:
    from runnel.app import App
    from runnel.stream import StreamHome

T = TypeVar("T")
A = TypeVar("A", bound="StreamHome")


def load_reference(ref: str, kind: type[T], what: str) -> T:
    """Import ``module:attr`` and check it is a ``kind``; raise a clear ClickException."""
    from pydantic import ValidationError

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
    except (Misconfigured, ValidationError) as exc:
        # The module builds an App (or Settings) at import, from RUNNEL_* variables: say
        # which setting is wrong rather than that the import failed.
        problem = settings_problem(exc)
        if problem is None:
            raise click.BadParameter(
                f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        raise click.ClickException(
            f"invalid runnel settings in module {module_name!r}: {problem}"
        ) from exc
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


def settings_problem(exc: BaseException, options: Mapping[str, str] | None = None) -> str | None:
    """One line naming each invalid setting and why, if ``exc`` comes from Settings.

    ``options`` names the command-line options the settings came from (``redis_url`` ->
    ``--redis-url``); without it, a setting also set in the environment says so, since
    that is where a value nobody passed comes from. Values are never shown: they may be
    URLs with passwords.

    Example:
        >>> from runnel.settings import Settings
        >>> try:
        ...     Settings(log_level="loud")
        ... except ValueError as exc:
        ...     print(settings_problem(exc))
        log_level: Input should be 'debug', 'info', 'warning', 'error' or 'critical'
    """
    from pydantic import ValidationError

    from runnel.settings import Settings

    error = exc if isinstance(exc, ValidationError) else exc.__cause__
    if not isinstance(error, ValidationError) or error.title != Settings.__name__:
        return None
    environment = {name.upper() for name in os.environ}
    parts = []
    for detail in error.errors():
        name = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        variable = f"RUNNEL_{name.upper()}"
        if not name:  # a check of several settings together
            parts.append(message)
        elif options is not None:
            parts.append(f"{options.get(name, name)}: {message}")
        elif variable in environment:
            parts.append(f"{name}: {message} ({variable} is set in the environment)")
        else:
            parts.append(f"{name}: {message}")
    return "; ".join(parts)


def load_processor(ref: str) -> tuple[App, str]:
    """The App that registered the processor ``module:name``, and the processor's name.

    ``name`` is a processor's registered name, or the name of a function in the module
    registered as exactly one processor of an App of the module. A function registered
    as several processors is ambiguous: the error lists their names.
    """
    from runnel.app import App

    if ":" not in ref:
        raise click.BadParameter(f"{ref!r} is not of the form module.path:processor")
    module_name, _, attr = ref.partition(":")
    module = load_reference(f"{module_name}:__name__", str, "a module")
    del module
    apps = [v for v in vars(sys.modules[module_name]).values() if isinstance(v, App)]
    apps = list({id(app): app for app in apps}.values())
    for app in apps:
        if attr in app.processors:
            return app, attr
    func = getattr(sys.modules[module_name], attr, None)
    found = [
        (app, spec.name)
        for app in apps
        for spec in app.processors.values()
        if func is not None and spec.func is func
    ]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        names = ", ".join(f"{module_name}:{name}" for _, name in found)
        raise click.BadParameter(
            f"{ref!r} is registered as {len(found)} processors; name one: {names}"
        )
    known = sorted(f"{module_name}:{name}" for app in apps for name in app.processors)
    raise click.BadParameter(
        f"{ref!r} is not a processor registered on an App in its module"
        + (f"; known: {', '.join(known)}" if known else " (it declares none)")
    )


def load_app(ref: str) -> App:
    """The App ``module:attribute``, or the only App of ``module`` when no attribute is given."""
    from runnel.app import App

    if ":" in ref:
        return load_reference(ref, App, "a runnel App")
    load_reference(f"{ref}:__name__", str, "a module")
    apps = list({id(v): v for v in vars(sys.modules[ref]).values() if isinstance(v, App)}.values())
    if len(apps) != 1:
        raise click.BadParameter(
            f"module {ref!r} holds {len(apps)} Apps: name one as {ref}:attribute"
        )
    return apps[0]


OPTION_NAMES = {"http_address": "--http"}
"""Settings whose command-line option is not ``--`` and the setting's name."""


def reconfigured(app: A, secrets: set[str], **options: str | None) -> A:
    """``app`` with the command-line options that were given applied to its settings.

    A bad value is one clear line naming the option. Every secret the settings hold (and,
    when they are refused, whatever the given URL might hold) is added to ``secrets``, which
    the command masks in everything it prints.
    """
    from runnel._redact import url_secrets

    updates = {name: value for name, value in options.items() if value}
    try:
        if updates:
            app.reconfigure(**updates)
    except Misconfigured as exc:
        secrets.update(url_secrets(updates.get("redis_url") or ""))  # all it might hold
        given = {name: OPTION_NAMES.get(name, f"--{name.replace('_', '-')}") for name in updates}
        given["redis_password"] = "--redis-password-file"
        problem = settings_problem(exc, given) or str(exc)
        raise click.ClickException(f"invalid settings for app {app.name!r}: {problem}") from exc
    secrets.update(app.settings.secret_values())
    return app


def split_names(option: str | None) -> list[str] | None:
    """The names of a comma-separated option (None when it was not given).

    Example:
        >>> split_names("billing, audit,"), split_names(None)
        (['billing', 'audit'], None)
    """
    if not option:
        return None
    return [name.strip() for name in option.split(",") if name.strip()]
