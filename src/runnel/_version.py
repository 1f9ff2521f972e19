"""The version of runnel: the only place it is written (packaging reads it from here)."""

__version__ = "0.2.0"
