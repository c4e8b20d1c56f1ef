"""Evidence dataclasses ↔ JSON-ready data, driven by their type hints.

Recorded fixtures, the JSON attachment and a Re-run's previous run all travel as plain data; this
turns them back into the frozen dataclasses the rules read. Written here rather than taken from a
library: dacite (tried) does not rebuild tuples nested in tuples, which these types use, and the
whole job is the two small functions below.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any, TypeVar

T = TypeVar("T")


def to_plain(value: Any) -> Any:
    """Dataclasses, tuples and enums → dicts, lists and strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, Enum):
        return value.value
    return value


def _build(hint: Any, data: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        wanted = [a for a in args if a is not type(None)]
        return _build(wanted[0], data) if len(wanted) == 1 else data
    if origin is tuple:
        items = list(data or ())
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v) for v in items)
        return tuple(_build(a, v) for a, v in zip(args, items, strict=True))
    if origin is dict:
        return {k: _build(args[1], v) for k, v in (data or {}).items()}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return from_plain(hint, data)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if hint is float and isinstance(data, int):
        return float(data)
    return data


def from_plain(cls: type[T], data: dict[str, Any]) -> T:
    """Inverse of :func:`to_plain` for a dataclass; unknown keys are ignored, missing ones defaulted."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _build(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if f.init and f.name in data
    }
    return cls(**kwargs)
