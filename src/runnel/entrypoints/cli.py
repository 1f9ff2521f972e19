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
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click

from runnel._redact import scrub, url_secrets
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
    from runnel.stream import Stream

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

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
def worker(
    app_ref: str,
    processors: str | None,
    redis_url: str | None,
    redis_password_file: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run a worker for APP (module.path:attribute) until SIGTERM/SIGINT."""
    from runnel.app import App

    _line_buffered_output()

    app = load_reference(app_ref, App, "a runnel App")
    _reconfigure(
        app,
        redis_url=redis_url,
        redis_password=read_password(redis_password_file),
        log_level=log_level,
        log_format=log_format,
    )
    configure(app.settings.log_format, app.settings.log_level, secrets=SECRETS)
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


def _reconfigure(app: App, **options: str | None) -> None:
    """Apply the command-line options that were given; a bad value is one clear line."""
    updates = {name: value for name, value in options.items() if value}
    try:
        if updates:
            app.reconfigure(**updates)
    except Misconfigured as exc:
        SECRETS.update(url_secrets(updates.get("redis_url") or ""))  # all it might hold
        given = {name: f"--{name.replace('_', '-')}" for name in updates}
        given["redis_password"] = "--redis-password-file"
        problem = settings_problem(exc, given) or str(exc)
        raise click.ClickException(f"invalid settings for app {app.name!r}: {problem}") from exc
    SECRETS.update(app.settings.secret_values())


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
@backend_options
def send(
    stream_ref: str, data: str, redis_url: str | None, redis_password_file: str | None
) -> None:
    """Send one event, given as a JSON object, to STREAM (module.path:attribute)."""
    stream = _load_stream(stream_ref, redis_url, redis_password_file)
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
    stream = _load_stream(stream_ref, redis_url, redis_password_file)
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


def _load_stream(ref: str, redis_url: str | None, password_file: str | None) -> Stream[Any]:
    from runnel.stream import Stream

    stream = load_reference(ref, Stream, "a runnel Stream")
    _reconfigure(stream.app, redis_url=redis_url, redis_password=read_password(password_file))
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
@backend_options
def quarantine_list(
    processor_ref: str, redis_url: str | None, redis_password_file: str | None
) -> None:
    """List PROCESSOR's quarantined partitions as JSON lines."""
    app, name = _load_processor(processor_ref, redis_url, redis_password_file)

    async def run() -> dict[int, dict[str, Any]]:
        try:
            return await app.quarantined(name)
        finally:
            await app.close()

    for _, info in sorted(_run_admin(run()).items()):
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

    async def run() -> bool:
        try:
            return await app.clear_quarantine(name, partition)
        finally:
            await app.close()

    if not _run_admin(run()):
        raise click.ClickException(f"partition {partition} of {name} is not quarantined")
    click.echo(f"cleared the quarantine of {name} partition {partition}")


T = TypeVar("T")


def _run_admin(coro: Coroutine[Any, Any, T]) -> T:
    """Run an admin command's coroutine; a runnel error is one line, not a traceback."""
    try:
        return asyncio.run(coro)
    except RunnelError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def _load_processor(ref: str, redis_url: str | None, password_file: str | None) -> tuple[App, str]:
    from runnel.app import App

    func = load_reference(ref, object, "a processor function")
    module = sys.modules[ref.partition(":")[0]]
    for value in vars(module).values():
        if isinstance(value, App):
            for spec in value.processors.values():
                if spec.func is func or spec.name == ref.partition(":")[2]:
                    _reconfigure(
                        value, redis_url=redis_url, redis_password=read_password(password_file)
                    )
                    return value, spec.name
    raise click.BadParameter(f"{ref!r} is not a processor registered on an App in its module")
