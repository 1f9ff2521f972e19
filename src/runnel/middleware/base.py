"""The Middleware base class.

Example:
    >>> class Printer(Middleware):
    ...     async def handler(self, parent, **kwargs):
    ...         async for x in parent:
    ...             print(x)
    ...             yield x
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any


class Middleware:
    """A reusable step between the stream and a processor.

    ``handler`` is an async generator over ``parent`` (the previous step), which yields
    :class:`~runnel.Event` objects, or lists of them when the processor uses
    ``events.take(...)``. Middleware listed first sees events first. Code after ``yield``
    in a ``finally`` clause runs once the processor finished with the item (before it is
    acknowledged); if the processor fails, ``GeneratorExit`` is raised at the ``yield``.
    Keyword arguments: ``processor`` (name), ``partition`` (:class:`~runnel.Partition`),
    ``events`` (the :class:`~runnel.Events`).

    Example:
        >>> class Noop(Middleware):
        ...     async def handler(self, parent, **kwargs):
        ...         async for x in parent:
        ...             yield x
    """

    def handler(self, parent: AsyncIterator[Any], **kwargs: Any) -> AsyncIterator[Any]:
        """Return an async generator over ``parent``; override in subclasses."""
        return parent

    def bind(self, app: Any, processor: str) -> None:
        """Called once when registered on a processor (no I/O); override if needed."""
