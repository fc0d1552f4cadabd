"""Pickling for the model's frozen slots dataclasses that costs a slot store per field.

The store keeps each record's parsed resources pickled (store/parsed.py), and a 10 000-service start unpickles
~280 000 model objects. The `__setstate__` that dataclasses give a frozen slots class looks its fields up with
`fields()` for every object: 0.82 s of those 280 000, against 0.53 s with the names and slot descriptors
resolved once per class (bench/start.py). The state is the same list of field values, in field order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

__all__ = ["FieldLines", "pickled_by_slots"]

T = TypeVar("T", bound=type)


def pickled_by_slots(cls: T) -> T:
    """Give a frozen `slots=True` dataclass a `__getstate__`/`__setstate__` that read and write its slots
    directly. Apply it above the `@dataclass` decorator (it needs the fields and the slots made)."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    # A slot's member descriptor sets the value without the frozen class's __setattr__ (which refuses).
    setters = tuple(vars(_owner(cls, name))[name].__set__ for name in names)

    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, name) for name in names]

    setattr(cls, "__getstate__", __getstate__)  # noqa: B010 (mypy refuses a method assigned to a class)
    setattr(cls, "__setstate__", _setstate(setters))  # noqa: B010
    return cls


def _setstate(setters: tuple[Callable[[Any, Any], None], ...]) -> Callable[[Any, list[Any]], None]:
    """`__setstate__` with one slot store per field written out, as dataclasses write `__init__`: a third faster
    than a loop over the setters (280 000 objects at a 10 000-service start). A state of another length (another
    version of the class) fails to load, and the store parses the record's YAML instead."""
    n = len(setters)
    stores = "".join(f"    _{i}(self, state[{i}])\n" for i in range(n))
    message = f"f'{{len(state)}} values for {n} fields: another version'"
    check = f"    if len(state) != {n}:\n        raise ValueError({message})\n"
    source = f"def __setstate__(self, state):\n{check}{stores}"
    scope: dict[str, Any] = {f"_{i}": setter for i, setter in enumerate(setters)}
    exec(source, scope)
    made: Callable[[Any, list[Any]], None] = scope["__setstate__"]
    made.__qualname__ = "pickled_by_slots.<locals>.__setstate__"
    return made


def _owner(cls: type, name: str) -> type:
    """The class in `cls`'s MRO whose slot `name` is (a subclass's fields may be its base's slots)."""
    for klass in cls.__mro__:
        if name in vars(klass).get("__slots__", ()):
            return klass
    raise TypeError(f"{cls.__qualname__}.{name} is not a slot: pickled_by_slots needs @dataclass(slots=True)")


class FieldLines(Mapping[str, int]):
    """The line of each field path of a resource (`Meta.field_lines`), pickled as one string.

    A resource records ~40 paths, and only an error message reads them; as a dict they were half the bytes of
    the store's parsed cache and a quarter of its unpickling time at a 10 000-service start. The mapping given
    is held, not copied: the parser keeps adding the spec's paths after the Meta is made.
    """

    __slots__ = ("_lines", "_packed")

    def __init__(self, lines: dict[str, int] | None = None, packed: str = "") -> None:
        self._lines = lines
        self._packed = packed
        """`path\0line\0path\0line…`: NUL is not a character YAML can hold, so no path contains it."""

    def _dict(self) -> dict[str, int]:
        if self._lines is None:
            parts = iter(self._packed.split("\0")) if self._packed else iter(())
            self._lines, self._packed = dict(zip(parts, map(int, parts), strict=True)), ""
        return self._lines

    def __getitem__(self, path: str) -> int:
        return self._dict()[path]

    def __contains__(self, path: object) -> bool:
        return path in self._dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __repr__(self) -> str:
        return f"FieldLines({self._dict()!r})"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        lines = self._dict()
        if any("\0" in path for path in lines):  # not from YAML: as the dict it is
            return FieldLines, (dict(lines),)
        return FieldLines, (None, "\0".join(f"{path}\0{line}" for path, line in lines.items()))
