"""Our Lua scripts: loaded once from ``lua/*.lua`` and run by SHA.

A single call (``await script(keys, args)``) is redis-py's ``AsyncScript``: EVALSHA, with a
SCRIPT LOAD and one retry if the server does not know the SHA (after a restart or a
``SCRIPT FLUSH``). A batch goes through :func:`run_batch`: one pipeline of EVALSHAs in one
round trip. redis-py's own pipeline support would first send ``SCRIPT EXISTS`` on every
execute (a second round trip), so instead we send EVALSHA straight away and, only for the
slots that came back ``NOSCRIPT`` (they ran nothing), load the scripts and re-run those.

Example:
    >>> script_text("extend").startswith("--")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TypeAlias

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

Arg: TypeAlias = bytes | str | int
"""One EVALSHA argument as redis-py encodes it."""


@cache
def script_text(name: str) -> str:
    """The source of ``lua/<name>.lua`` (read once per process).

    Example:
        >>> "XREADGROUP" in script_text("read_many")
        True
    """
    return (
        resources.files("runnel.adapters.redis")
        .joinpath("lua")
        .joinpath(f"{name}.lua")
        .read_text("utf-8")
    )


def register(client: Redis, name: str) -> AsyncScript:
    """Register ``lua/<name>.lua`` with ``client``; no I/O until the first call.

    Example:
        >>> from redis.asyncio import Redis
        >>> len(register(Redis(), "release").sha)
        40
    """
    return client.register_script(script_text(name))


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One EVALSHA of a batch: the script, its KEYS and its ARGV."""

    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[Arg]


async def run_batch(client: Redis, calls: Sequence[ScriptCall]) -> list[object]:
    """Run ``calls`` in one pipeline; return each slot's reply or error instance.

    Slots refused with ``NOSCRIPT`` did nothing on the server, so loading their scripts
    and re-running just those slots is safe (it costs two more round trips, once per
    script cache flush).

    Args:
        client: the client to pipeline on.
        calls: the script calls, in order.

    Returns:
        One entry per call: the raw reply, or the ``ResponseError`` Redis answered with.

    Raises:
        redis.exceptions.RedisError: connection problems (the caller translates them).
    """
    results = await _pipelined(client, calls)
    stale = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
    if stale:
        scripts = {id(calls[i].script): calls[i].script for i in stale}
        loader = client.pipeline(transaction=False)
        for script in scripts.values():
            loader.script_load(script.script)
        shas = await loader.execute()
        for script, sha in zip(scripts.values(), shas, strict=True):
            script.sha = sha
        retried = await _pipelined(client, [calls[i] for i in stale])
        for i, result in zip(stale, retried, strict=True):
            results[i] = result
    return results


async def _pipelined(client: Redis, calls: Sequence[ScriptCall]) -> list[object]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    return await pipe.execute(raise_on_error=False)
