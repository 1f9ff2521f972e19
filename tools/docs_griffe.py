"""A griffe extension for the API reference: reads runnel's docstrings as they are written.

runnel's docstrings follow the Google style with two habits the reference must honour:

* ``Example:`` (singular) heads the doctests. Google-style parsers know only ``Examples:``
  as a section and would render the prompts as prose; it is read as ``Examples:``.
* Sphinx roles (``:class:`Harness```, ``:func:`~runnel.sending.prepare```) name code; they
  become inline code (the last dotted part, with ``~``).

mkdocs.yml loads it through the ``extensions`` option of the mkdocstrings Python handler.
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension

_EXAMPLE = re.compile(r"^Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(
    r":(?:class|func|meth|attr|data|mod|exc|obj|const):`(?P<tilde>~?)(?P<name>[^`]+)`"
)


def _role(match: re.Match[str]) -> str:
    name = match["name"]
    return f"`{name.rsplit('.', 1)[-1] if match['tilde'] else name}`"


def rewrite(text: str) -> str:
    """The docstring ``text`` with ``Example:`` read as ``Examples:`` and roles as code.

    Example:
        >>> rewrite("Example:\\n    >>> 1\\n    1")
        'Examples:\\n    >>> 1\\n    1'
        >>> rewrite("See :class:`~runnel.testing.Harness`.")
        'See `Harness`.'
    """
    return _ROLE.sub(_role, _EXAMPLE.sub("Examples:", text))


class RunnelDocstrings(Extension):
    """Rewrites each docstring when its object is made, before it is parsed."""

    def on_instance(self, *, node: Any, obj: Any, agent: Any, **kwargs: Any) -> None:
        """Rewrite ``obj``'s docstring, if it has one."""
        docstring = getattr(obj, "docstring", None)
        if docstring is not None:
            docstring.value = rewrite(docstring.value)
