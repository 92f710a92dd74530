"""A small stand-in for dataclasses on berth's hot path.

`import dataclasses` pulls in inspect, ast and dis (about 10 ms here), a noticeable share of a
`berth run`. Records declare fields as annotated class attributes, like a dataclass; a mutable
default is given as `Factory(list)`. `class X(Record, frozen=True)` is a frozen dataclass's
equivalent: its fields cannot be assigned after construction and it is hashable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Factory:
    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class Record:
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}

    def __init_subclass__(cls, frozen: bool = False) -> None:
        fields: list[str] = []
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):
                if name.startswith("_") or name in fields:
                    continue
                fields.append(name)
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields = tuple(fields)
        cls._defaults = defaults
        if frozen:
            cls.__setattr__ = _refuse_assignment  # type: ignore[method-assign,assignment]
            cls.__delattr__ = _refuse_assignment  # type: ignore[method-assign,assignment]
            cls.__hash__ = _hash_fields  # type: ignore[method-assign,assignment]

    def __init__(self, *args: Any, **kw: Any) -> None:
        if len(args) > len(self._fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(self._fields)} positional arguments")
        values = dict(zip(self._fields, args, strict=False))
        for k, v in kw.items():
            if k not in self._fields:
                raise TypeError(f"{type(self).__name__} has no field {k!r}")
            if k in values:
                raise TypeError(f"{type(self).__name__} got {k!r} twice")
            values[k] = v
        for name in self._fields:
            if name not in values:
                if name not in self._defaults:
                    raise TypeError(f"{type(self).__name__} needs {name!r}")
                d = self._defaults[name]
                values[name] = d.make() if isinstance(d, Factory) else d
            object.__setattr__(self, name, values[name])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__name__}({inner})"

    def to_dict(self) -> dict[str, Any]:
        return {n: _plain(getattr(self, n)) for n in self._fields}

    def replace(self, **kw: Any) -> Any:
        values = {n: getattr(self, n) for n in self._fields}
        values.update(kw)
        return type(self)(**values)


def _refuse_assignment(self: Record, name: str, *value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")


def _hash_fields(self: Record) -> int:
    return hash((type(self), *(getattr(self, n) for n in self._fields)))


def _plain(v: Any) -> Any:
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v
