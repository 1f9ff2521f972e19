"""Lazy package attributes (PEP 562): a public name is imported from its home on first use.

Example:
    >>> getattr_, dir_ = exports("pkg", {"sqrt": "math"}, ["sqrt"], {})
    >>> getattr_("sqrt")(9.0), dir_()
    (3.0, ['sqrt'])
"""

from collections.abc import Callable
from importlib import import_module
from typing import Any


def exports(
    package: str, homes: dict[str, str], public: list[str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose names live in ``homes``.

    Args:
        package: the package's name, for the error of an unknown attribute.
        homes: each public name's module.
        public: the package's ``__all__``.
        namespace: the package's globals; a name is cached there once imported.
    """

    def getattr_(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(public))

    return getattr_, dir_
