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
import sys
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

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


@click.group(context_settings=CONTEXT)
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
@click.option("--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL).")
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="RUNNEL_LOG_LEVEL.",
)
@click.option(
    "--log-format", default=None, type=click.Choice(["console", "json"]), help="RUNNEL_LOG_FORMAT."
)
def worker(
    app_ref: str,
    processors: str | None,
    redis_url: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run a worker for APP (module.path:attribute) until SIGTERM/SIGINT."""
    from runnel.app import App

    _line_buffered_output()
    app = reconfigured(
        load_reference(app_ref, App, "a runnel App"),
        redis_url=redis_url,
        log_level=log_level,
        log_format=log_format,
    )
    configure(app.settings.log_format, app.settings.log_level)
    app.discover()
    names = split_names(processors)
    try:
        app.processor_specs(names)
    except UnknownProcessor as exc:
        raise click.BadParameter(str(exc), param_hint="--processors") from exc
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
    try:
        return await app.run_worker(names)
    finally:
        await app.close()


# ---------------------------------------------------------------------- send


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("data", metavar="JSON")
@click.option("--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL).")
def send(stream_ref: str, data: str, redis_url: str | None) -> None:
    """Send one event, given as a JSON object, to STREAM (module.path:attribute)."""
    from runnel import sending

    stream = _load_stream(stream_ref, redis_url)
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
@click.option("--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL).")
def sendmany(stream_ref: str, source: IO[bytes], chunk_size: int, redis_url: str | None) -> None:
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

    stream = _load_stream(stream_ref, redis_url)
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


def _load_stream(ref: str, redis_url: str | None) -> Stream[Any]:
    from runnel.stream import Stream

    stream = load_reference(ref, Stream, "a runnel Stream")
    reconfigured(stream.app, redis_url=redis_url)
    return stream


# ---------------------------------------------------------------------- admin


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
@click.option("--redis-url", default=None)
def reset(processor_ref: str, start: str, force: bool, redis_url: str | None) -> None:
    """Reset PROCESSOR (module.path:function) to read every partition after --start."""
    app, name = _load_processor(processor_ref, redis_url)
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
@click.option("--redis-url", default=None)
def quarantine_list(processor_ref: str, redis_url: str | None) -> None:
    """List PROCESSOR's quarantined partitions as JSON lines."""
    app, name = _load_processor(processor_ref, redis_url)
    for info in _on_backend(app, lambda: app.quarantined(name)).values():
        click.echo(json.dumps(info))


@quarantine.command("clear")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.argument("partition", type=int)
@click.option("--redis-url", default=None)
def quarantine_clear(processor_ref: str, partition: int, redis_url: str | None) -> None:
    """Lift the quarantine of PARTITION of PROCESSOR (it is processed again)."""
    app, name = _load_processor(processor_ref, redis_url)
    if not _on_backend(app, lambda: app.clear_quarantine(name, partition)):
        raise click.ClickException(f"partition {partition} of {name} is not quarantined")
    click.echo(f"cleared the quarantine of {name} partition {partition}")


def _load_processor(ref: str, redis_url: str | None) -> tuple[App, str]:
    app, name = load_processor(ref)
    return reconfigured(app, redis_url=redis_url), name
