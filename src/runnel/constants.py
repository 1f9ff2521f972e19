"""Public constants.

Example:
    >>> from runnel.constants import ExceptionPolicy
    >>> ExceptionPolicy.HALT.value
    'halt'
"""

from runnel.domain.policy import ExceptionPolicy

__all__ = ["ExceptionPolicy"]
