"""The ``runnel`` command line: worker, send, sendmany, processor reset, quarantine, state.

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
from runnel.errors import Misconfigured, RunnelError, UnknownProcessor

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
            if VERBOSE and exc.__cause__ is not None:
                _print_traceback(exc.__cause__)
            if isinstance(exc, click.BadParameter) and not isinstance(exc, click.MissingParameter):
                # A name that does not resolve (no such module, App, stream, processor)
                # is one line, not a usage message; it still exits 2.
                raise _OneLine(scrub(one_line(exc.format_message()), SECRETS)) from exc
            setattr(exc, "message", scrub(exc.message, SECRETS))  # noqa: B010
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # The reader went away (`runnel deadletter list | head`): stop quietly, and
            # keep Python from complaining while it flushes the closed pipe at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except Exception as exc:
            # Anything else (an unexpected error of a library, a bug) is one line too;
            # -v shows where it came from.
            if VERBOSE:
                _print_traceback(exc)
            raise click.ClickException(scrub(describe_error(exc), SECRETS)) from exc


class _OneLine(click.ClickException):
    """A bad value named on the command line: one line, exit code 2."""

    exit_code = 2


VERBOSE = False
"""Whether -v was given: errors then show their traceback too."""


def _print_traceback(exc: BaseException) -> None:
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    click.echo(scrub(text, SECRETS), err=True)


def one_line(message: str) -> str:
    """``message`` on one line (an error is one line on stderr)."""
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, naming the kind of failure an operator acts on.

    Example:
        >>> from runnel.errors import AuthenticationFailed
        >>> describe_error(AuthenticationFailed("WRONGPASS invalid username-password pair"))
        'authentication failed: WRONGPASS invalid username-password pair'
    """
    from runnel.errors import (
        AuthenticationFailed,
        BackendUnavailable,
        PermissionDenied,
    )

    if isinstance(exc, AuthenticationFailed):
        text = f"authentication failed: {exc}"
    elif isinstance(exc, BackendUnavailable):
        text = f"Redis unreachable: {exc}"
    elif isinstance(exc, PermissionDenied):
        text = f"permission denied: {exc}"
    elif isinstance(exc, RunnelError):
        text = f"{type(exc).__name__}: {exc}"
    elif type(exc).__module__.startswith("redis"):
        text = f"invalid Redis connection settings ({type(exc).__name__}): {exc}"
    elif isinstance(exc, (ValueError, TypeError)) and "url" in str(exc).lower():
        text = f"invalid Redis URL or URL option: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return one_line(text)


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
@click.option("-v", "--verbose", is_flag=True, help="Show the traceback of an error.")
def cli(verbose: bool) -> None:
    """Runnel: ordered, partitioned event processing on Redis Streams."""
    global VERBOSE
    VERBOSE = verbose


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


_IDEMPOTENCY = click.option(
    "--idempotency-key",
    default=None,
    metavar="KEY",
    help="Make the send safe to repeat: line N goes with the idempotency key KEY:N, and a "
    "repeat within the app's idempotency_window adds nothing.",
)


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("data", metavar="JSON")
@_IDEMPOTENCY
@backend_options
def send(
    stream_ref: str,
    data: str,
    idempotency_key: str | None,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Send one event, given as a JSON object, to STREAM (module.path:attribute)."""
    from runnel import sending

    stream = _load_stream(stream_ref, redis_url, redis_password_file)
    try:
        event = sending.prepare(stream, data)
    except sending.InvalidInput as exc:
        raise click.ClickException(f"invalid {stream.record.__name__}: {exc}") from exc
    try:
        (entry_id,) = _on_backend(
            stream.app,
            lambda: sending.send_prepared(stream, [event], idempotency_key=idempotency_key),
        )
    except RunnelError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    where = f"{stream.app.name}.{stream.name} partition {event.partition}"
    click.echo(f"sent 1 event to {where} as {entry_id.decode()}")


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("source", metavar="FILE", type=click.File("rb"))
@click.option("--chunk-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@_IDEMPOTENCY
@backend_options
def sendmany(
    stream_ref: str,
    source: IO[bytes],
    chunk_size: int,
    idempotency_key: str | None,
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
    resume from that line instead (tail -n +LINE FILE | runnel sendmany STREAM -), or
    send with --idempotency-key KEY, and the whole file again with the same KEY.
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
                    stream,
                    events,
                    chunk_size,
                    None if bar is None else bar.update,
                    idempotency_key,
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
@click.option(
    "--cluster",
    is_flag=True,
    default=False,
    help="Rules for Redis Cluster (its key layout and the cluster client's commands); "
    "implied by a redis+cluster:// --redis-url or RUNNEL_REDIS_URL.",
)
@click.option(
    "--redis-url",
    default=None,
    help="The URL the app will use (only its scheme is read; nothing is connected).",
)
def acl(app_name: str, role: str, user: str | None, cluster: bool, redis_url: str | None) -> None:
    """Print the least-privilege Redis ACL of APP_NAME's ROLE (an ACL SETUSER line).

    The user may touch only APP_NAME's keys (not another app's, not even APP_NAME2's) and
    run only what runnel sends. Replace <password>, or add the password as a hash (#...).
    On Redis Cluster, run the line on every primary and every replica: each node keeps
    its own users. See docs/security.md.
    """
    from runnel.adapters.redis.acl import Role, setuser_command
    from runnel.container import key_layout

    if not app_name or any(c in app_name for c in " .:{}*?[]"):
        raise click.BadParameter(f"{app_name!r} is not an app name", param_hint="APP_NAME")
    url = redis_url if redis_url is not None else os.environ.get("RUNNEL_REDIS_URL", "")
    on_cluster = cluster or key_layout(url) == "cluster"
    chosen = cast("Role", role)
    line = setuser_command(app_name, chosen, user or f"{app_name}-{role}", cluster=on_cluster)
    click.echo(line)
    if on_cluster:
        click.echo(
            "# Redis Cluster: run this line on every primary and every replica (ACL users "
            "are not replicated)",
            err=True,
        )


@cli.group()
def processor() -> None:
    """Administer a processor's consumer groups."""


@processor.command("reset")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.option(
    "--to",
    "target",
    default=None,
    help="earliest | latest | ENTRY_ID (the first entry to process) | ISO_TIME (UTC unless "
    "it names a zone).",
)
@click.option(
    "--start",
    default=None,
    help="Entry id to restart after ('0' = all retained, '$' = only new); prefer --to.",
)
@click.option(
    "--partition",
    "partitions",
    multiple=True,
    type=int,
    help="A partition to reset (repeat it; default: every partition).",
)
@click.option("--dry-run", is_flag=True, help="Print what would move, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--force",
    is_flag=True,
    help="Reset partitions live workers hold: they are fenced out and resume at the new position.",
)
@backend_options
def reset(
    processor_ref: str,
    target: str | None,
    start: str | None,
    partitions: tuple[int, ...],
    dry_run: bool,
    as_json: bool,
    force: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Move PROCESSOR (module.path:name) on its partitions to --to (default: earliest).

    Everything is checked before anything changes; --dry-run prints, per partition, the
    position before and after and how many entries will be re-read or skipped.
    """
    from runnel.admin import Admin

    if target is not None and start is not None:
        raise click.UsageError("give --to or --start, not both")
    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    if start is not None:
        if start == "$":
            target = "latest"
        elif start == "0":
            target = "earliest"
        else:
            from runnel.domain.ids import StreamId

            try:
                target = str(StreamId.parse(start).next())
            except ValueError:
                raise click.BadParameter(
                    f"{start!r} is not an entry id, '0' or '$'", param_hint="--start"
                ) from None
    admin = Admin(app)
    report = _admin(
        app,
        lambda: admin.reset(
            name, target or "earliest", list(partitions) or None, dry_run=dry_run, force=force
        ),
    )
    if as_json:
        click.echo(report.model_dump_json())
        return
    verb = "would move" if dry_run else "moved"
    for move in report.partitions:
        held = f" (held by {move.held_by})" if move.held_by else ""
        click.echo(
            f"partition {move.partition}: {verb} from {move.before or '(no group)'} to after "
            f"{move.after}: {move.reread} to re-read, {move.skipped} skipped, "
            f"{move.pending_forgotten} pending forgotten{held}"
        )
    if dry_run:
        click.echo(f"dry run: nothing changed ({len(report.partitions)} partition(s))")
    else:
        click.echo(
            f"reset processor {name} on {len(report.partitions)} partition(s) to {report.target}"
        )


@cli.group()
def stream() -> None:
    """Administer a stream's partitions."""


@stream.command("resize")
@click.argument("app_ref", metavar="APP")
@click.argument("stream_name", metavar="STREAM")
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    required=True,
    help="The partition count to grow to (growing only).",
)
@click.option("--dry-run", is_flag=True, help="Print what would change, change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@backend_options
def stream_resize(
    app_ref: str,
    stream_name: str,
    partitions: int,
    dry_run: bool,
    yes: bool,
    as_json: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Grow STREAM of APP (module.path[:attribute]) to --partitions, online.

    Every key keeps its order: each processor finishes every old partition up to the
    switch point before it processes anything sent after it. Senders and workers that
    still have the old count pick up the new one by themselves. Shrinking is refused.
    """
    from runnel.admin import Admin

    app = _load_app(app_ref, redis_url, redis_password_file)
    admin = Admin(app)
    try:
        admin.stream(stream_name)
    except Misconfigured as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> Any:
        plan = await admin.resize_stream(stream_name, partitions, dry_run=True)
        if dry_run or plan.after == plan.before:
            return plan
        if not yes:
            question = f"grow stream {stream_name} from {plan.before} to {plan.after} partitions?"
            if not sys.stdin.isatty():
                raise click.ClickException(f"{question} add --yes to confirm")
            if not click.confirm(question, default=False):
                raise click.Abort()
        return await admin.resize_stream(stream_name, partitions)

    report = _admin(app, run)
    if as_json:
        click.echo(report.model_dump_json())
        return
    if report.after == report.before:
        click.echo(f"stream {report.stream} already has {report.after} partitions: nothing to do")
        return
    new = ", ".join(map(str, report.new_partitions))
    groups = ", ".join(report.groups) or "(none)"
    if report.dry_run:
        click.echo(
            f"would grow stream {report.stream} from {report.before} to {report.after} "
            f"partitions: new partitions {new} with groups {groups}; the old partitions "
            "get switch points"
        )
        click.echo("dry run: nothing changed")
        return
    click.echo(
        f"grew stream {report.stream} from {report.before} to {report.after} partitions "
        f"(history {' -> '.join(map(str, report.history))}); groups {groups}"
    )
    for number, point in sorted(report.switch_points.items()):
        click.echo(f"partition {number}: switch point {point}")
    click.echo(
        "each processor processes the old partitions up to their switch points before "
        "anything newer (runnel status shows what it waits for)"
    )


@processor.command("skip")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.argument("partition", type=int)
@click.argument("entry_id")
@click.option("--force", is_flag=True, help="Skip it even if it is not the next entry.")
@backend_options
def skip(
    processor_ref: str,
    partition: int,
    entry_id: str,
    force: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Acknowledge ENTRY_ID of PARTITION without processing it (a poison pill's way out).

    Only the entry the partition processes next can be skipped (unless --force); who
    skipped it and when is recorded, and the partition's quarantine is lifted.
    """
    from runnel.admin import Admin

    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    admin = Admin(app)
    done = _admin(app, lambda: admin.skip(name, partition, entry_id, force=force))
    extra = "; its quarantine was lifted" if done.quarantine_cleared else ""
    click.echo(
        f"skipped {name} partition {done.partition} entry {done.entry_id} ({done.was}), "
        f"recorded as {done.by} at {done.time}{extra}"
    )


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


@cli.command("state")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.option("--partition", type=int, default=None, help="Only this partition.")
@backend_options
def state(
    processor_ref: str,
    partition: int | None,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Show the committed keyed state of an effectively-once PROCESSOR, one JSON line per
    key: {"partition": N, "key": ..., "value": ...}."""
    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    for number, values in _admin(app, lambda: app.state(name, partition)).items():
        for key, value in values.items():
            shown = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
            click.echo(json.dumps({"partition": number, "key": key, "value": shown}))


def _admin(app: StreamHome, call: Callable[[], Awaitable[T]]) -> T:
    """Run an administration call on the App's backend; any failure is one line."""
    try:
        return _on_backend(app, call)
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(describe_error(exc)) from exc


def _load_processor(ref: str, redis_url: str | None, password_file: str | None) -> tuple[App, str]:
    app, name = load_processor(ref)
    password = read_password(password_file)
    return reconfigured(app, SECRETS, redis_url=redis_url, redis_password=password), name


# ---------------------------------------------------------------------- operations


def _load_app(ref: str, redis_url: str | None, password_file: str | None) -> App:
    from runnel.entrypoints.loading import load_app

    app = load_app(ref)
    return reconfigured(
        app, SECRETS, redis_url=redis_url, redis_password=read_password(password_file)
    )


@cli.command()
@click.argument("app_ref", metavar="APP")
@click.option("--processor", "processor_name", default=None, help="Only this processor.")
@click.option("--json", "as_json", is_flag=True, help="Print stable JSON instead of a table.")
@click.option(
    "--watch",
    "watch",
    default=None,
    type=click.FloatRange(min=0.5),
    is_flag=False,
    flag_value=2.0,
    metavar="[SECONDS]",
    help="Print again every SECONDS (2 when none given) until interrupted.",
)
@backend_options
def status(
    app_ref: str,
    processor_name: str | None,
    as_json: bool,
    watch: float | None,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Show APP (module.path[:attribute]): per processor and partition, the owner, lease,
    position, lag, pending entries and their age, quarantines and dead letters; the
    members with their heartbeats; the leader. Read-only."""
    from runnel.admin import Admin
    from runnel.entrypoints.status_view import render_status

    app = _load_app(app_ref, redis_url, redis_password_file)
    admin = Admin(app)
    colour = sys.stdout.isatty() and not as_json

    async def once() -> str:
        report = await admin.status(processor_name)
        return report.model_dump_json() if as_json else render_status(report, colour)

    async def loop() -> None:
        try:
            while True:
                text = await once()
                if colour:
                    click.clear()
                click.echo(text)
                if watch is None:
                    return
                await asyncio.sleep(watch)
        finally:
            await app.close()

    try:
        asyncio.run(loop())
    except KeyboardInterrupt:
        return
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(describe_error(exc)) from exc


@cli.group()
def deadletter() -> None:
    """List, show, replay and purge a processor's dead letters."""


def _letter_filters(func: F) -> F:
    for option in reversed(
        [
            click.option("--partition", type=int, default=None, help="Source partition."),
            click.option("--error-type", default=None, help="Exception class name."),
            click.option("--since", type=click.DateTime(), default=None, help="UTC time."),
            click.option("--until", type=click.DateTime(), default=None, help="UTC time."),
            click.option("--limit", type=click.IntRange(1), default=100, show_default=True),
            click.option("--id", "ids", multiple=True, help="Only this dead letter (repeat)."),
        ]
    ):
        func = option(func)
    return func


async def _select_letters(
    admin: Any,
    name: str,
    partition: int | None,
    error_type: str | None,
    since: Any,
    until: Any,
    limit: int,
    ids: tuple[str, ...],
) -> list[Any]:
    from runnel.admin import utc

    if ids:
        return [await admin.dead_letter(name, letter_id) for letter_id in ids]
    return list(
        await admin.dead_letters(
            name,
            partition=partition,
            error_type=error_type,
            since=None if since is None else utc(since),
            until=None if until is None else utc(until),
            limit=limit,
        )
    )


@deadletter.command("list")
@click.argument("processor_ref", metavar="PROCESSOR")
@_letter_filters
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@backend_options
def deadletter_list(
    processor_ref: str,
    partition: int | None,
    error_type: str | None,
    since: Any,
    until: Any,
    limit: int,
    ids: tuple[str, ...],
    as_json: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """List PROCESSOR's dead letters, oldest first."""
    from runnel.admin import Admin

    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    admin = Admin(app)
    letters = _admin(
        app,
        lambda: _select_letters(admin, name, partition, error_type, since, until, limit, ids),
    )
    for letter in letters:
        if as_json:
            click.echo(letter.model_dump_json())
            continue
        replayed = f" replayed as {letter.replayed_as}" if letter.replayed_as else ""
        click.echo(
            f"{letter.id}  {letter.stream}.{letter.source_partition} {letter.source_id}  "
            f"{letter.error_type}: {one_line(letter.error_message)[:80]}  {letter.time}{replayed}"
        )
    if not as_json:
        click.echo(f"{len(letters)} dead letter(s)", err=True)


@deadletter.command("show")
@click.argument("processor_ref", metavar="PROCESSOR")
@click.argument("letter_id", metavar="ID")
@backend_options
def deadletter_show(
    processor_ref: str, letter_id: str, redis_url: str | None, redis_password_file: str | None
) -> None:
    """Show one dead letter: the original record (raw fields when it does not decode),
    the error, the source partition and entry, and when it failed; as JSON."""
    from runnel.admin import Admin

    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    admin = Admin(app)
    letter = _admin(app, lambda: admin.dead_letter(name, letter_id))
    click.echo(json.dumps(letter.model_dump(mode="json"), indent=2))


def _confirmed(action: str, count: int, yes: bool) -> bool:
    if yes or count == 0:
        return True
    if not sys.stdin.isatty():
        raise click.ClickException(f"{action} {count} dead letter(s)? add --yes to confirm")
    return click.confirm(f"{action} {count} dead letter(s)?", default=False)


@deadletter.command("replay")
@click.argument("processor_ref", metavar="PROCESSOR")
@_letter_filters
@backend_options
def deadletter_replay(
    processor_ref: str,
    partition: int | None,
    error_type: str | None,
    since: Any,
    until: Any,
    limit: int,
    ids: tuple[str, ...],
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Send the selected dead letters back to their source partitions, each at most once.

    A replayed entry goes to the end of its partition: it is processed after every event
    sent since it failed, later events of the same key included.
    """
    from runnel.admin import Admin

    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    admin = Admin(app)

    async def run() -> Any:
        letters = await _select_letters(
            admin, name, partition, error_type, since, until, limit, ids
        )
        return await admin.replay(name, letters)

    report = _admin(app, run)
    for letter, new_id in zip(report.replayed, report.new_ids, strict=True):
        click.echo(f"replayed {letter.id} to {letter.stream}.{letter.source_partition} as {new_id}")
    for letter_id in report.already_replayed:
        click.echo(f"{letter_id} was replayed before: not sent again")
    click.echo(f"{len(report.replayed)} replayed; {report.ordering}")


@deadletter.command("purge")
@click.argument("processor_ref", metavar="PROCESSOR")
@_letter_filters
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@backend_options
def deadletter_purge(
    processor_ref: str,
    partition: int | None,
    error_type: str | None,
    since: Any,
    until: Any,
    limit: int,
    ids: tuple[str, ...],
    yes: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Delete the selected dead letters (asks first, unless --yes)."""
    from runnel.admin import Admin

    app, name = _load_processor(processor_ref, redis_url, redis_password_file)
    admin = Admin(app)

    async def run() -> int:
        letters = await _select_letters(
            admin, name, partition, error_type, since, until, limit, ids
        )
        if not _confirmed("purge", len(letters), yes):
            raise click.Abort()
        return int(await admin.purge(name, letters))

    click.echo(f"purged {_admin(app, run)} dead letter(s)")


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.option("--partition", "partitions", multiple=True, type=int, help="Repeat; default all.")
@click.option(
    "--from",
    "start",
    default=None,
    help="Entry id or ISO time to start at, or 'earliest' (default: only new entries).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@backend_options
def tail(
    stream_ref: str,
    partitions: tuple[int, ...],
    start: str | None,
    follow: bool,
    as_json: bool,
    redis_url: str | None,
    redis_password_file: str | None,
) -> None:
    """Print STREAM's entries (module.path:attribute), decoded, without joining any group."""
    from runnel.admin import Admin

    stream = _load_stream(stream_ref, redis_url, redis_password_file)
    app = cast("App", stream.app)
    admin = Admin(app)

    async def run() -> None:
        try:
            async for item in admin.tail(stream.name, list(partitions) or None, start, follow):
                if as_json:
                    click.echo(item.model_dump_json())
                elif item.record is not None:
                    click.echo(f"{item.partition} {item.id} {json.dumps(item.record)}")
                else:
                    click.echo(f"{item.partition} {item.id} UNDECODABLE {item.decode_error}")
        finally:
            await app.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        return
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(describe_error(exc)) from exc
