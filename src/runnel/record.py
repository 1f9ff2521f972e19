"""Records: the typed events of a stream, on pydantic v2.

Example:
    >>> class Order(Record):
    ...     order_id: int
    ...     amount: float
    >>> Order(order_id=1, amount=9.5).order_id
    1
    >>> class Flag(Record, primitive=True):
    ...     user_id: int
    ...     on: bool
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from runnel.domain.encoding import PRIMITIVE_TYPES


class Record(BaseModel):
    """Base class of the events stored in a stream.

    Records nest arbitrarily and are stored as JSON under the single stream field ``data``
    (optionally compressed). ``class R(Record, primitive=True)`` stores each field as a
    native stream field instead; then only ``int``, ``float``, ``bool``, ``str`` and
    ``bytes`` fields are allowed, checked when the class is defined.

    Example:
        >>> from datetime import datetime
        >>> class Item(Record):
        ...     id: int
        >>> class Basket(Record):
        ...     items: list[Item]
        ...     at: datetime
    """

    # NaN and infinities are written as the JSON extensions NaN/Infinity (as Python's json
    # module does), so they come back as they were instead of as null, which no float
    # field would accept.
    model_config = ConfigDict(
        ser_json_bytes="base64", val_json_bytes="base64", ser_json_inf_nan="constants"
    )

    __primitive__: ClassVar[bool] = False
    __primitive_fields__: ClassVar[tuple[tuple[str, bytes, type], ...]] = ()

    def __init_subclass__(cls, primitive: bool | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if primitive is not None:
            cls.__primitive__ = primitive

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.__primitive__:
            return
        layout = []
        for name, info in cls.model_fields.items():
            kind = info.annotation
            if kind not in PRIMITIVE_TYPES:
                shown = getattr(kind, "__name__", None) or repr(kind)
                raise TypeError(
                    f"{cls.__name__}.{name}: a primitive record only allows int, float, bool, "
                    f"str and bytes fields, not {shown}"
                )
            assert isinstance(kind, type)
            layout.append((name, name.encode(), kind))
        cls.__primitive_fields__ = tuple(layout)
