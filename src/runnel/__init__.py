"""Runnel: ordered, partitioned event processing on Redis Streams."""

from runnel.app import App
from runnel.domain.model import Event, Partition
from runnel.domain.policy import ExceptionPolicy
from runnel.middleware.base import Middleware
from runnel.ports import Compressor, Serializer
from runnel.record import Record
from runnel.runtime.events import Events
from runnel.stream import Stream

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
]
__version__ = "0.1.0"
