"""The ``runnel`` command line: worker, send, sendmany, processor reset, quarantine.

Each command parses its arguments, loads the object it names, calls runnel's Python API
(:meth:`runnel.App.run_worker`, :mod:`runnel.sending`, the App's administration methods)
and prints what happened. No decision is made here.

Example:
    $ runnel worker example:app
    $ runnel send example:orders '{"order_id": 1, "amount": 9.5}'
    $ runnel sendmany example:orders orders.jsonl
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click

from runnel._redact import scrub, url_secrets
from runnel._version import __version__
from runnel.entrypoints.loading import (
    load_processor,
    load_reference,
    reconfigured,
    split_names,
)
from runnel.entrypoints.logs import configure
from runnel.errors import RunnelError, UnknownProcessor

# The App, pydantic, redis-py and dependency-injector are imported by the commands that use
# them, so `runnel --help` and `runnel --version` start in a fraction of the time.
if TYPE_CHECKING:
    from runnel.app import App
    from runnel.stream import Stream, StreamHome

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

T = TypeVar("T")

SECRETS: set[str] = set()
"""Every secret this command has seen (URLs, passwords): masked in what it prints."""

F = TypeVar("F", bound=Callable[..., Any])


class _Masking(click.Group):
    """The ``runnel`` group: no error message it prints shows a secret it has seen."""

    def invoke(self, ctx: click.Context) -> Any:
        SECRETS.clear()  # this command's own (in-process runs share the module)
        password = os.environ.get("RUNNEL_REDIS_PASSWORD")
        url = os.environ.get("RUNNEL_REDIS_URL", "")
        SECRETS.update(url_secrets(url, user_is_public=bool(password)))
        if password:
            SECRETS.add(password)
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            # click declares `message` final; masking it in place keeps the error's kind
            # (usage errors print the usage and exit 2).
            setattr(exc, "message", scrub(exc.message, SECRETS))  # noqa: B010
            raise


def backend_options(func: F) -> F:
    """``--redis-url`` and ``--redis-password-file``, for every command that uses Redis."""
    func = click.option(
        "--redis-password-file",
        default=None,
        envvar="RUNNEL_REDIS_PASSWORD_FILE",
        type=click.Path(exists=True, dir_okay=False, readable=True),
        help="Read the Redis password from this file (RUNNEL_REDIS_PASSWORD_FILE), so it is "
        "not on the command line; or set RUNNEL_REDIS_PASSWORD.",
    )(func)
    return click.option(
        "--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL)."
    )(func)


def read_password(path: str | None) -> str | None:
    """The password in the file at ``path`` (its trailing line break removed).

    Raises:
        click.ClickException: the file cannot be read, or holds no password.
    """
    if path is None:
        return None
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise click.ClickException(
            f"cannot read the Redis password file {path!r}: {reason}"
        ) from None
    password = text.rstrip("\r\n")
    if not password:
        raise click.ClickException(f"the Redis password file {path!r} is empty")
    SECRETS.add(password)
    return password


@click.group(cls=_Masking, context_settings=CONTEXT)
@click.version_option(version=__version__, prog_name="runnel")
def cli() -> None:
    """Runnel: ordered, partitioned event processing on Redis Streams."""


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="runnel")


def _run_uvloop(coro: Any) -> Any:
    try:
        import uvloop  # the `fast` extra
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _on_backend(app: StreamHome, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` (which uses the App's backend), then close the backend's connections."""

    async def run() -> T:
        try:
            return await call()
        finally:
            await app.close()

    return asyncio.run(run())


# ---------------------------------------------------------------------- worker

# The values of Settings.log_level (a test keeps the two equal).
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@cli.command()
@click.argument("app_ref", metavar="APP")
@click.option("--processors", default=None, help="Comma-separated processor names (default: all).")
@backend_options
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="RUNNEL_LOG_LEVEL.",
)
@click.option(
    "--log-format", default=None, type=click.Choice(["console", "json"]), help="RUNNEL_LOG_FORMAT."
)
@click.option(
    "--http",
    "http_address",
    default=None,
    metavar="HOST:PORT",
    help="Serve /metrics, /healthz and /readyz there (RUNNEL_HTTP_ADDRESS; off by default).",
)
def worker(
    app_ref: str,
    processors: str | None,
    redis_url: str | None,
    redis_password_file: str | None,
    log_level: str | None,
    log_format: str | None,
    http_address: str | None,
) -> None:
    """Run a worker for APP (module.path:attribute) until SIGTERM/SIGINT."""
    from runnel.app import App

    _line_buffered_output()
    app = reconfigured(
        load_reference(app_ref, App, "a runnel App"),
        SECRETS,
        redis_url=redis_url,
        redis_password=read_password(redis_password_file),
        log_level=log_level,
        log_format=log_format,
        http_address=http_address,
    )
    configure(app.settings.log_format, app.settings.log_level, secrets=SECRETS)
    app.discover()
    names = split_names(processors)
    try:
        app.processor_specs(names)
    except UnknownProcessor as exc:
        raise click.BadParameter(str(exc), param_hint="--processors") from exc
    from runnel.runtime.worker import disarm_exit_guards

    try:
        code = _run_uvloop(_run_worker(app, names))
    except RunnelError as exc:
        # A worker that cannot start (Redis unreachable or refusing the password, a stream
        # whose stored metadata disagrees, ...) says why in one line, in the log's own format
        # too, instead of dumping a traceback through asyncio and click into a JSON log.
        logging.getLogger("runnel.worker").critical(
            "worker failed: %s: %s", type(exc).__name__, exc
        )
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    finally:
        disarm_exit_guards()  # the loop closed in time: nothing left to force
    sys.exit(code)


def _line_buffered_output() -> None:
    """Write stdout and stderr a line at a time, even to a pipe or a file.

    Under Docker, systemd or a process manager, Python buffers stdout in blocks, so a
    processor's ``print()`` would show only when the worker stops. Lines are what log
    collectors read, so a worker flushes each one.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(line_buffering=True)


async def _run_worker(app: App, names: list[str] | None) -> int:
    from runnel.runtime.worker import exit_guard_wanted

    exit_guard_wanted.set(True)  # this process is the worker's: bound its exit
    try:
        return await app.run_worker(names)
    finally:
        await app.close()


# ---------------------------------------------------------------------- send


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("data", metavar="JSON")
@backend_options
def send(
    stream_ref: str, data: str, redis_url: str | None, redis_password_file: str | None
) -> None:
    """Send one event, given as a JSON object, to STREAM (module.path:attribute)."""
    from runnel import sending

    stream = _load_stream(stream_ref, redis_url, redis_password_file)
    try:
        event = sending.prepare(stream, data)
    except sending.InvalidInput as exc:
        raise click.ClickException(f"invalid {stream.record.__name__}: {exc}") from exc
    try:
        (entry_id,) = _on_backend(stream.app, lambda: sending.send_prepared(stream, [event]))
    except RunnelError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    where = f"{stream.app.name}.{stream.name} partition {event.partition}"
    click.echo(f"sent 1 event to {where} as {entry_id.decode()}")


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("source", metavar="FILE", type=click.File("rb"))
@click.option("--chunk-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@backend_options
def sendmany(
    stream_ref: str,
    source: IO[bytes],
    chunk_size: int,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Send every line of FILE (JSON Lines in UTF-8; '-' for stdin) to STREAM.

    Every line is checked first (UTF-8, JSON, the record's fields, its partition): if
    any is bad, each bad line is reported and nothing is sent.

    Events are sent in chunks of --chunk-size, each written whole or not at all. If the
    backend refuses a chunk (say, a partition full under its lossless cap), the chunks
    before it stay sent, and the error says how many events were sent and the first
    line that was not. Sending the whole file again would send those events twice:
    resume from that line instead (tail -n +LINE FILE | runnel sendmany STREAM -).
    """
    from runnel import sending

    stream = _load_stream(stream_ref, redis_url, redis_password_file)
    events, errors = sending.prepare_lines(stream, source)
    if errors:
        for message in errors[:100]:
            click.echo(message, err=True)
        if len(errors) > 100:
            click.echo(f"... and {len(errors) - 100} more bad lines", err=True)
        raise click.ClickException(f"{len(errors)} invalid line(s); nothing was sent")
    with contextlib.ExitStack() as stack:
        bar = None
        if sys.stderr.isatty():
            progress = click.progressbar(length=len(events), label="sending", file=sys.stderr)
            bar = stack.enter_context(progress)
        try:
            _on_backend(
                stream.app,
                lambda: sending.send_prepared(
                    stream, events, chunk_size, None if bar is None else bar.update
                ),
            )
        except sending.SendFailed as exc:  # says what was sent, and where to resume
            raise click.ClickException(str(exc)) from exc
        except RunnelError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    partitions = {event.partition for event in events}
    click.echo(
        f"sent {len(events)} event(s) to {len(partitions)} partition(s) of "
        f"{stream.app.name}.{stream.name}"
    )


def _load_stream(ref: str, redis_url: str | None, password_file: str | None) -> Stream[Any]:
    from runnel.stream import Stream

    stream = load_reference(ref, Stream, "a runnel Stream")
    password = read_password(password_file)
    reconfigured(stream.app, SECRETS, redis_url=redis_url, redis_password=password)
    return stream


# ---------------------------------------------------------------------- admin


@cli.command()
@click.argument("app_name", metavar="APP_NAME")
@click.option(
    "--role",
    default="worker",
    show_default=True,
    type=click.Choice(["sender", "worker", "admin"]),
    help="sender: send events; worker: run workers; admin: a worker that may also reset "
    "processors.",
)
@click.option("--user", default=None, help="User name (default: APP_NAME-ROLE).")
def acl(app_name: str, role: str, user: str | None) -> None:
    """Print the least-privilege Redis ACL of APP_NAME's ROLE (an ACL SETUSER line).

    The user may touch only APP_NAME's keys (not another app's, not even APP_NAME2's) and
    run only what runnel sends. Replace <password>, or add the password as a hash (#...).
    See docs/security.md.
    """
    from runnel.adapters.redis.acl import Role, setuser_command

    if not app_name or any(c in app_name for c in " .:{}*?[]"):
        raise click.BadParameter(f"{app_name!r} is not an app name", param_hint="APP_NAME")
    chosen = cast("Role", role)
    click.echo(setuser_command(app_name, chosen, user or f"{app_name}-{role}"))


@cli.group()
def processor() -> None:
    """Administer a processor's consumer groups."""


@processor.command("reset")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.option(
    "--start",
    default="0",
    show_default=True,
    help="Entry id to restart after ('0' = all retained, '$' = only new).",
)
@click.option(
    "--force", is_flag=True, help="Reset even while workers hold the processor's partitions."
)
@backend_options
def reset(
    processor_ref: str,
    start: str,
    force: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Reset PROCESSOR (module.path:function) to read every partition after --start."""
    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    try:
        count = _on_backend(app, lambda: app.reset_processor(name, start.encode(), force=force))
    except RunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"reset processor {name} on {count} partition(s) to start after {start}")


@cli.group()
def quarantine() -> None:
    """Inspect and clear quarantined partitions."""


@quarantine.command("list")
@click.argument("processor_ref", metavar="PROCESSOR")
@backend_options
def quarantine_list(
    processor_ref: str, redis_url: str | None, redis_password_file: str | None
) -> None:
    """List PROCESSOR's quarantined partitions as JSON lines."""
    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    for info in _admin(app, lambda: app.quarantined(name)).values():
        click.echo(json.dumps(info))


@quarantine.command("clear")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.argument("partition", type=int)
@backend_options
def quarantine_clear(
    processor_ref: str, partition: int, redis_url: str | None, redis_password_file: str | None
) -> None:
    """Lift the quarantine of PARTITION of PROCESSOR (it is processed again)."""
    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    if not _admin(app, lambda: app.clear_quarantine(name, partition)):
        raise click.ClickException(f"partition {partition} of {name} is not quarantined")
    click.echo(f"cleared the quarantine of {name} partition {partition}")


def _admin(app: StreamHome, call: Callable[[], Awaitable[T]]) -> T:
    """Run an administration call on the App's backend; a runnel error is one line."""
    try:
        return _on_backend(app, call)
    except RunnelError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _load_processor(ref: str, redis_url: str | None, password_file: str | None) -> tuple[App, str]:
    app, name = load_processor(ref)
    password = read_password(password_file)
    return reconfigured(app, SECRETS, redis_url=redis_url, redis_password=password), name
