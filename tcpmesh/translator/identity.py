"""Finding what changed between two configs by identity: the incremental translator's diff helpers.

Resources that did not change are the very same objects from one Config to the next (the store's view keeps
them), so a change is found by `is` in C, or read from the Config's lineage, never by comparing 10 000
resources field by field in Python.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from tcpmesh.model.resources import Resource

__all__ = ["ByIdentity", "Positions", "changed_pairs", "position_of"]

R = TypeVar("R", bound=Resource)
T = TypeVar("T")
S = TypeVar("S", bound=Sequence[Any])
Obj = TypeVar("Obj")
V = TypeVar("V")


class ByIdentity(Generic[Obj, V]):
    """A value computed from an object, kept by the object's identity (with the object, so its id stays its
    own); bounded: past `kept` objects it starts over (the objects of configs long gone)."""

    def __init__(self, kept: int = 256) -> None:
        self._kept = kept
        self._found: dict[int, tuple[Obj, V]] = {}

    def of(self, obj: Obj, compute: Callable[[Obj], V]) -> V:
        hit = self._found.get(id(obj))
        if hit is None or hit[0] is not obj:
            if len(self._found) >= self._kept:
                self._found.clear()
            hit = self._found[id(obj)] = (obj, compute(obj))
        return hit[1]


def position_of(items: list[R], item: R) -> int:
    """Where `item` is: by identity, found in C (list.index would call the dataclass __eq__ on every resource
    before it, ~10 ms at 10 000), else by equality (the index may hold an equal object from an earlier Config)."""
    found = next(itertools.compress(itertools.count(), map(operator.is_, items, itertools.repeat(item))), None)
    return found if found is not None else items.index(item)


def changed_pairs(
    old: Sequence[R], new: Sequence[R], moved: Sequence[int] | None = None
) -> list[tuple[R | None, R | None]]:
    """(old, new) per resource that differs; None on one side for an addition or removal. `moved`: the positions
    where `new` holds another object than `old`, when known (Config.moved)."""
    if old is new:
        return []
    if len(old) == len(new):
        out: list[tuple[R | None, R | None]] = []
        aligned = True
        # Only the positions that hold another object are looked at: known from the config's lineage, or found
        # in C (either way an edit of 10 000 is O(1) in Python here).
        if moved is None:
            moved = list(itertools.compress(range(len(new)), map(operator.is_not, old, new)))
        for i in moved:
            a, b = old[i], new[i]
            if a.meta.name != b.meta.name or a.meta.namespace != b.meta.namespace:
                aligned = False
                break
            if a != b:
                out.append((a, b))
        if aligned:
            return out
    before = {(r.meta.namespace, r.meta.name): r for r in old}
    after = {(r.meta.namespace, r.meta.name): r for r in new}
    pairs: list[tuple[R | None, R | None]] = []
    for key, gone in before.items():
        now = after.get(key)
        if now is None:
            pairs.append((gone, None))
        elif now is not gone and now != gone:
            pairs.append((gone, now))
    pairs.extend((None, b) for key, b in after.items() if key not in before)
    return pairs


class Positions:
    """Position of each item in a big list or tuple by key, remembered per container (by identity).

    Replacing one item keeps every position, so the map moves to the new container instead of being rebuilt.
    """

    def __init__(self) -> None:
        self._maps: dict[int, tuple[Sequence[Any], dict[Hashable, int]]] = {}

    def find(self, items: Sequence[T], key: Hashable, key_of: Callable[[T], Hashable]) -> int | None:
        found = self._maps.get(id(items))
        if found is None or found[0] is not items:
            positions: dict[Hashable, int] = {}
            for i, item in enumerate(items):
                positions.setdefault(key_of(item), i)
            if len(self._maps) > 64:
                self._maps.clear()
            found = self._maps[id(items)] = (items, positions)
        return found[1].get(key)

    def moved(self, old: Sequence[Any], new: S) -> S:
        found = self._maps.pop(id(old), None)
        if found is not None and found[0] is old:
            self._maps[id(new)] = (new, found[1])
        return new
