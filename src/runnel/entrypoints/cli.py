"""The ``runnel`` command line: worker, send, sendmany, processor reset, quarantine.

Example:
    $ runnel worker example:app
    $ runnel send example:orders '{"order_id": 1, "amount": 9.5}'
    $ runnel sendmany example:orders orders.jsonl
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from typing import IO, Any

import click
from pydantic import ValidationError

from runnel.app import App
from runnel.entrypoints.loading import load_reference
from runnel.entrypoints.logs import configure
from runnel.errors import RunnelError
from runnel.record import Record
from runnel.stream import Stream

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="runnel")
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


@cli.command()
@click.argument("app_ref", metavar="APP")
@click.option("--processors", default=None, help="Comma-separated processor names (default: all).")
@click.option("--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL).")
@click.option("--log-level", default=None, help="debug, info, warning, error (RUNNEL_LOG_LEVEL).")
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
    app = load_reference(app_ref, App, "a runnel App")
    updates = {
        k: v
        for k, v in {
            "redis_url": redis_url,
            "log_level": log_level,
            "log_format": log_format,
        }.items()
        if v
    }
    if updates:
        app.reconfigure(**updates)
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


async def _run_worker(app: App, names: Sequence[str] | None) -> int:
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
    stream = _load_stream(stream_ref, redis_url)
    try:
        record = stream.record.model_validate_json(data)
    except ValidationError as exc:
        raise click.ClickException(f"invalid {stream.record.__name__}: {_reason(exc)}") from exc
    (entry_id,) = asyncio.run(_send(stream, [record]))
    where = f"{stream.app.name}.{stream.name} partition {stream.partition_for(record)}"
    click.echo(f"sent 1 event to {where} as {entry_id.decode()}")


@cli.command()
@click.argument("stream_ref", metavar="STREAM")
@click.argument("source", metavar="FILE", type=click.File("r", encoding="utf-8"))
@click.option("--chunk-size", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--redis-url", default=None, help="Backend URL (overrides RUNNEL_REDIS_URL).")
def sendmany(stream_ref: str, source: IO[str], chunk_size: int, redis_url: str | None) -> None:
    """Send every line of FILE (JSON Lines; '-' for stdin) to STREAM.

    Every line is validated first: if any is bad, each bad line is reported and nothing
    is sent.
    """
    stream = _load_stream(stream_ref, redis_url)
    records: list[Record] = []
    errors: list[str] = []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            records.append(stream.record.model_validate_json(line))
        except ValidationError as exc:
            errors.append(f"line {number}: {_reason(exc)}")
    if errors:
        for message in errors[:100]:
            click.echo(message, err=True)
        if len(errors) > 100:
            click.echo(f"... and {len(errors) - 100} more bad lines", err=True)
        raise click.ClickException(f"{len(errors)} invalid line(s); nothing was sent")
    partitions = Counter(stream.partition_for(r) for r in records)
    asyncio.run(_send(stream, records, chunk_size, progress=sys.stderr.isatty()))
    click.echo(
        f"sent {len(records)} event(s) to {len(partitions)} partition(s) of "
        f"{stream.app.name}.{stream.name}"
    )


def _load_stream(ref: str, redis_url: str | None) -> Stream[Any]:
    stream = load_reference(ref, Stream, "a runnel Stream")
    if redis_url:
        stream.app.reconfigure(redis_url=redis_url)
    return stream


async def _send(
    stream: Stream[Any], records: Sequence[Record], chunk_size: int = 1000, progress: bool = False
) -> list[bytes]:
    ids: list[bytes] = []
    try:
        if progress:
            with click.progressbar(length=len(records), label="sending", file=sys.stderr) as bar:
                for i in range(0, len(records), chunk_size):
                    chunk = records[i : i + chunk_size]
                    ids += await stream.send(*chunk)
                    bar.update(len(chunk))
        else:
            for i in range(0, len(records), chunk_size):
                ids += await stream.send(*records[i : i + chunk_size])
    except RunnelError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    finally:
        await stream.app.close()
    return ids


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
    func = load_reference(ref, object, "a processor function")
    module = sys.modules[ref.partition(":")[0]]
    for value in vars(module).values():
        if isinstance(value, App):
            for spec in value.processors.values():
                if spec.func is func or spec.name == ref.partition(":")[2]:
                    if redis_url:
                        value.reconfigure(redis_url=redis_url)
                    return value, spec.name
    raise click.BadParameter(f"{ref!r} is not a processor registered on an App in its module")
