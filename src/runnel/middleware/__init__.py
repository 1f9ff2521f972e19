"""Middleware: the base class and the built-in dead-letter middleware.

Example:
    >>> from runnel.middleware import DeadLetterMiddleware, Middleware
"""

from runnel.interfaces import Middleware
from runnel.middleware.dead_letter import DeadLetterMiddleware, UndecodableLetter

__all__ = ["DeadLetterMiddleware", "Middleware", "UndecodableLetter"]
