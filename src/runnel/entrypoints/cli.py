"""The ``runnel`` command line: worker, send, sendmany, processor reset, quarantine.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import click

from runnel._version import __version__
from runnel.entrypoints.loading import load_reference, settings_problem
from runnel.entrypoints.logs import configure
from runnel.errors import BackendUnavailable, Misconfigured, RunnelError

# The App, pydantic, redis-py and dependency-injector are imported by the commands that use
# them, so `runnel --help` and `runnel --version` start in a fraction of the time.
if TYPE_CHECKING:
    from pydantic import ValidationError

    from runnel.app import App
    from runnel.ports import Append
    from runnel.stream import Stream, StreamHome

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


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

    app = load_reference(app_ref, App, "a runnel App")
    _reconfigure(app, redis_url=redis_url, log_level=log_level, log_format=log_format)
    configure(app.settings.log_format, app.settings.log_level)
    app.discover()
    names = [p.strip() for p in processors.split(",") if p.strip()] if processors else None
    if names is not None:
        unknown = [n for n in names if n not in app.processors]
        if unknown:
            raise click.BadParameter(
                f"unknown processor(s) {', '.join(unknown)}; available: "
                f"{', '.join(sorted(app.processors)) or '(none)'}",
                param_hint="--processors",
            )
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


async def _run_worker(app: App, names: Sequence[str] | None) -> int:
    try:
        return await app.run_worker(names)
    finally:
        await app.close()


def _reconfigure(app: StreamHome, **options: str | None) -> None:
    """Apply the command-line options that were given; a bad value is one clear line."""
    updates = {name: value for name, value in options.items() if value}
    if not updates:
        return
    try:
        app.reconfigure(**updates)
    except Misconfigured as exc:
        given = {name: f"--{name.replace('_', '-')}" for name in updates}
        problem = settings_problem(exc, given) or str(exc)
        raise click.ClickException(f"invalid settings for app {app.name!r}: {problem}") from exc


# ---------------------------------------------------------------------- send


class _Invalid(Exception):
    """Why one input cannot become an event of the stream."""


@dataclass(frozen=True, slots=True)
class _Event:
    """One validated input, encoded and routed, ready to append."""

    line: int
    append: Append
    partition: int


def _prepare(stream: Stream[Any], text: str, line: int = 1) -> _Event:
    from pydantic import ValidationError

    from runnel.ports import Append

    """Parse, build, route and encode one JSON object, exactly as it will be sent."""
    try:
        record = stream.record.model_validate_json(text)
    except ValidationError as exc:
        raise _Invalid(_reason(exc)) from exc
    try:
        # A custom partition_by or hasher may raise anything; so may an unsupported key.
        partition = stream.partition_for(record)
    except Exception as exc:
        raise _Invalid(f"cannot compute its partition: {type(exc).__name__}: {exc}") from exc
    try:
        fields = stream.codec.encode(record)
    except Exception as exc:
        raise _Invalid(f"cannot encode it: {type(exc).__name__}: {exc}") from exc
    return _Event(line, Append(stream.partition_key_name(partition), fields), partition)


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("data", metavar="JSON")
@click.option("--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL).")
def send(stream_ref: str, data: str, redis_url: str | None) -> None:
    """Send one event, given as a JSON object, to STREAM (module.path:attribute)."""
    stream = _load_stream(stream_ref, redis_url)
    try:
        event = _prepare(stream, data)
    except _Invalid as exc:
        raise click.ClickException(f"invalid {stream.record.__name__}: {exc}") from exc
    (entry_id,) = asyncio.run(_send(stream, [event]))
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
    stream = _load_stream(stream_ref, redis_url)
    events: list[_Event] = []
    errors: list[str] = []
    for number, raw in enumerate(source, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(
                f"line {number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at "
                f"column {exc.start + 1})"
            )
            continue
        if not text.strip():
            continue
        try:
            events.append(_prepare(stream, text, number))
        except _Invalid as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        for message in errors[:100]:
            click.echo(message, err=True)
        if len(errors) > 100:
            click.echo(f"... and {len(errors) - 100} more bad lines", err=True)
        raise click.ClickException(f"{len(errors)} invalid line(s); nothing was sent")
    asyncio.run(_send(stream, events, chunk_size, progress=sys.stderr.isatty()))
    partitions = {event.partition for event in events}
    click.echo(
        f"sent {len(events)} event(s) to {len(partitions)} partition(s) of "
        f"{stream.app.name}.{stream.name}"
    )


def _load_stream(ref: str, redis_url: str | None) -> Stream[Any]:
    from runnel.stream import Stream

    stream = load_reference(ref, Stream, "a runnel Stream")
    _reconfigure(stream.app, redis_url=redis_url)
    return stream


async def _send(
    stream: Stream[Any], events: Sequence[_Event], chunk_size: int = 1000, progress: bool = False
) -> list[bytes]:
    """Append ``events`` chunk by chunk; a refusal says exactly what was sent before it."""
    ids: list[bytes] = []
    try:
        with contextlib.ExitStack() as stack:
            bar = (
                stack.enter_context(
                    click.progressbar(length=len(events), label="sending", file=sys.stderr)
                )
                if progress
                else None
            )
            for i in range(0, len(events), chunk_size):
                chunk = events[i : i + chunk_size]
                ids += await stream.append_encoded([event.append for event in chunk])
                if bar is not None:
                    bar.update(len(chunk))
    except RunnelError as exc:
        raise click.ClickException(_unsent(stream, events, len(ids), chunk_size, exc)) from exc
    finally:
        await stream.app.close()
    return ids


def _unsent(
    stream: Stream[Any], events: Sequence[_Event], sent: int, chunk_size: int, exc: RunnelError
) -> str:
    """The error of a failed send, with what it wrote before and what it did not."""
    error = f"{type(exc).__name__}: {exc}"
    if len(events) == 1:
        return error
    chunk = events[sent : sent + chunk_size]
    first = chunk[0].line
    # A refused chunk is written whole or not at all; a lost connection leaves it unknown.
    unknown = isinstance(exc, BackendUnavailable)
    fate = "may or may not have been written" if unknown else "was not written"
    where = f"{stream.app.name}.{stream.name}"
    if not sent:
        before = f"nothing was sent to {where}"
    else:
        partitions = len({event.partition for event in events[:sent]})
        before = (
            f"{sent} of {len(events)} event(s), up to line {events[sent - 1].line}, were "
            f"sent to {partitions} partition(s) of {where}"
        )
    advice = ""
    if sent:
        advice = (
            f" Sending the whole file again would send those {sent} event(s) twice: "
            f"resume from line {first} instead"
            + (", once you know whether that chunk arrived." if unknown else ".")
        )
    return (
        f"{error}\n{before} before the error; the chunk of {len(chunk)} event(s) from "
        f"line {first} {fate}, and nothing after it was sent.{advice}"
    )


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"])
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)


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
        count = asyncio.run(_reset(app, name, start.encode(), force))
    except RunnelError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"reset processor {name} on {count} partition(s) to start after {start}")


async def _reset(app: App, name: str, start: bytes, force: bool) -> int:
    try:
        return await app.reset_processor(name, start, force=force)
    finally:
        await app.close()


@cli.group()
def quarantine() -> None:
    """Inspect and clear quarantined partitions."""


@quarantine.command("list")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.option("--redis-url", default=None)
def quarantine_list(processor_ref: str, redis_url: str | None) -> None:
    """List PROCESSOR's quarantined partitions as JSON lines."""
    app, name = _load_processor(processor_ref, redis_url)

    async def run() -> dict[int, dict[str, Any]]:
        try:
            return await app.quarantined(name)
        finally:
            await app.close()

    for _, info in sorted(asyncio.run(run()).items()):
        click.echo(json.dumps(info))


@quarantine.command("clear")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.argument("partition", type=int)
@click.option("--redis-url", default=None)
def quarantine_clear(processor_ref: str, partition: int, redis_url: str | None) -> None:
    """Lift the quarantine of PARTITION of PROCESSOR (it is processed again)."""
    app, name = _load_processor(processor_ref, redis_url)

    async def run() -> bool:
        try:
            return await app.clear_quarantine(name, partition)
        finally:
            await app.close()

    if not asyncio.run(run()):
        raise click.ClickException(f"partition {partition} of {name} is not quarantined")
    click.echo(f"cleared the quarantine of {name} partition {partition}")


def _load_processor(ref: str, redis_url: str | None) -> tuple[App, str]:
    from runnel.app import App

    func = load_reference(ref, object, "a processor function")
    module = sys.modules[ref.partition(":")[0]]
    for value in vars(module).values():
        if isinstance(value, App):
            for spec in value.processors.values():
                if spec.func is func or spec.name == ref.partition(":")[2]:
                    _reconfigure(value, redis_url=redis_url)
                    return value, spec.name
    raise click.BadParameter(f"{ref!r} is not a processor registered on an App in its module")
