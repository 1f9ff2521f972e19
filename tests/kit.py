"""Small things several test modules share: unique names, records, a user serializer.

Example:
    >>> unique().startswith("t") and len(unique()) == 9
    True
    >>> ReversedJSON().dumps({"a": 1})
    b'}1:"a"{'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar
from uuid import uuid4

import pytest

from runnel import Record, Serializer
from runnel.adapters.serializers import JSONSerializer

USER_MODULE = """
from runnel import App, Record

app = App(name="{name}", redis_url="memory://{name}")


class Action(Record):
    user_id: int
    type: str


actions = app.stream("actions", record=Action, partition_by="user_id", partition_count=4)


@app.processor(actions)
async def count(events):
    async for _ in events:
        pass


@app.processor(actions, name="audit")
async def audit_trail(events):
    async for _ in events:
        pass


class Tagged(Record):
    user_id: int
    tags: list[str] = []


# One partition of five entries, and a processor: the sixth unprocessed entry is refused.
capped = app.stream("capped", record=Action, partition_by="user_id", partition_count=1,
                    partition_size=5)
by_tags = app.stream("by_tags", record=Tagged, partition_by="tags", partition_count=2)
by_ratio = app.stream(
    "by_ratio", record=Action, partition_by=lambda a: 100 // a.user_id, partition_count=2
)


@app.processor(capped)
async def billing(events):
    async for _ in events:
        pass


not_a_stream = 42
"""
"""A user's module, as the command-line tests load it: an App called ``{name}`` on the
broker ``memory://{name}`` (a command's ``--redis-url`` moves it), the stream ``actions``
read by the processors ``count`` and ``audit``, and streams that exercise the edges:
``capped`` (one partition of five entries, read by ``billing``), ``by_tags`` (an
unhashable partition key) and ``by_ratio`` (a partition function that can fail)."""


def write_user_module(directory: Path, name: str) -> str:
    """Write :data:`USER_MODULE` for the App ``name`` into ``directory``; its module name."""
    module = f"cliapp_{name}"
    (directory / f"{module}.py").write_text(USER_MODULE.format(name=name))
    return module


def unique() -> str:
    """A fresh app (or broker) name, so a test's keys are its own."""
    return f"t{uuid4().hex[:8]}"


class Click(Record, primitive=True):
    """A primitive record with one field of each primitive type."""

    user_id: int
    clicked: bool
    score: float
    page: str
    token: bytes


class ReversedJSON(Serializer):
    """A user serializer: JSON with its bytes reversed (reversible, and not JSON)."""

    name: ClassVar[str] = "reversed-json"

    def dumps(self, value: Any) -> bytes:
        return JSONSerializer().dumps(value)[::-1]

    def loads(self, data: bytes) -> Any:
        return JSONSerializer().loads(data[::-1])


def _async_client_takes_key_passwords() -> bool:
    from runnel.adapters.redis._url import known_options

    return {"ssl_password", "ssl_ca_path"} <= known_options("rediss")


needs_tls_key_password = pytest.mark.skipif(
    not _async_client_takes_key_passwords(),
    reason="the installed redis-py's asyncio client takes no ssl_password or ssl_ca_path "
    "(a newer redis-py does); runnel refuses those URL options with a one-line error there",
)
"""For tests whose URLs carry ``ssl_password`` or ``ssl_ca_path``."""
