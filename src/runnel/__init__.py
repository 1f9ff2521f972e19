"""Runnel: ordered, partitioned event processing on Redis Streams.

The public names are imported on first use (PEP 562), so ``import runnel`` stays cheap
and a tool that only needs ``runnel.__version__`` or the pytest plugin pays for nothing
else.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from runnel import _lazy
from runnel._version import __version__

if _TYPE_CHECKING:
    from runnel.app import App
    from runnel.domain.model import Event, Partition
    from runnel.domain.policy import ExceptionPolicy
    from runnel.interfaces import Compressor, Middleware, Serializer
    from runnel.record import Record
    from runnel.runtime.events import Events
    from runnel.stream import Stream

_HOMES = {
    "App": "runnel.app",
    "Compressor": "runnel.interfaces",
    "Event": "runnel.domain.model",
    "Events": "runnel.runtime.events",
    "ExceptionPolicy": "runnel.domain.policy",
    "Middleware": "runnel.interfaces",
    "Partition": "runnel.domain.model",
    "Record": "runnel.record",
    "Serializer": "runnel.interfaces",
    "Stream": "runnel.stream",
}

__all__ = [
    "App",
    "Compressor",
    "Event",
    "Events",
    "ExceptionPolicy",
    "Middleware",
    "Partition",
    "Record",
    "Serializer",
    "Stream",
    "__version__",
]


__getattr__, __dir__ = _lazy.exports(__name__, _HOMES, __all__, globals())
