"""How the accepted config crosses to the translation worker: per Config field, frames that rebuild the new tuple
from the one the worker holds, by resource identity (runs of unchanged resources by index, the others pickled
RESOURCES_PER_FRAME to a frame), so an edit sends the resources it changed and no frame holds the GIL long.
The worker's `ConfigAssembly` applies them, and learns from them which positions an edit replaced in place
(the Config's lineage), so its translator need not compare 10 000 resources to find the changed one.

Frames: ("begin", field), ("old", field, start, stop), ("new", field, [resources]), ("end", field)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator, Sequence
from typing import Any

from tcpmesh.model.config import NO_LINEAGE, RESOURCE_FIELDS, Config

__all__ = ["FRAME_OPS", "RESOURCES_PER_FRAME", "ConfigAssembly", "config_frames"]

FRAME_OPS = frozenset({"begin", "old", "new", "end"})

RESOURCES_PER_FRAME = 200
"""Config resources per pickled frame (~10 ms to pickle): the parent's event loop waits at most that long."""


def config_frames(
    name: str, old: tuple[Any, ...], new: tuple[Any, ...], moved: Sequence[int] | None = None
) -> Iterator[tuple[Any, ...]]:
    """Frames that rebuild `new` from `old`: runs of `old` by index, and the other resources themselves.
    `moved`: the positions where `new` holds another object than `old`, when known (Config.moved)."""
    if len(old) == len(new):
        # An edit in place (the usual one: a resource changed, none came or went): the positions holding another
        # object are known from the config's lineage, or found in C, not by a Python walk of 10 000.
        if moved is None:
            moved = list(itertools.compress(range(len(new)), map(operator.is_not, old, new)))
        if len(moved) <= RESOURCES_PER_FRAME:
            start = 0
            for pos in moved:
                if start < pos:
                    yield ("old", name, start, pos)
                yield ("new", name, [new[pos]])
                start = pos + 1
            if start < len(new):
                yield ("old", name, start, len(new))
            return
    at = {id(r): i for i, r in enumerate(old)}
    fresh: list[Any] = []
    run: list[int] | None = None
    for resource in new:
        i = at.get(id(resource))
        if i is None:
            if run is not None:
                yield ("old", name, run[0], run[1])
                run = None
            fresh.append(resource)
            if len(fresh) >= RESOURCES_PER_FRAME:
                yield ("new", name, fresh)
                fresh = []
            continue
        if fresh:
            yield ("new", name, fresh)
            fresh = []
        if run is not None and run[1] == i:
            run[1] = i + 1
        else:
            if run is not None:
                yield ("old", name, run[0], run[1])
            run = [i, i + 1]
    if fresh:
        yield ("new", name, fresh)
    if run is not None:
        yield ("old", name, run[0], run[1])


class ConfigAssembly:
    """The worker's side: the Config the frames rebuild, field by field, with its lineage (the positions each
    field's frames replaced, when every run of old resources stayed in its place and the length held)."""

    def __init__(self, start: Config | None = None) -> None:
        self._fields: dict[str, tuple[Any, ...]] = {
            f: getattr(start, f) if start is not None else () for f in RESOURCE_FIELDS
        }
        self._lineage = NO_LINEAGE
        self._building: dict[str, list[Any]] = {}
        self._moved: dict[str, list[int] | None] = {}
        """Per field being rebuilt: the positions that came new (None: a run of old ones moved)."""
        self._start = start
        """`start` itself, until a frame changes anything: the very object a translator prepared for."""

    def take(self, frame: tuple[Any, ...]) -> None:
        self._start = None
        op, name = frame[0], frame[1]
        if op == "begin":
            self._building[name], self._moved[name] = [], []
        elif op == "old":
            items = self._building[name]
            start, stop = frame[2], frame[3]
            if start != len(items):
                self._moved[name] = None
            items.extend(self._fields[name][start:stop])
        elif op == "new":
            items, positions = self._building[name], self._moved[name]
            if positions is not None:
                positions.extend(range(len(items), len(items) + len(frame[2])))
            items.extend(frame[2])
        elif op == "end":
            old, new, positions = self._fields[name], tuple(self._building.pop(name)), self._moved.pop(name)
            if positions is not None and len(old) == len(new):
                self._lineage = self._lineage.then(name, old, new, positions)
            else:
                self._lineage = self._lineage.without(name)
            self._fields[name] = new
        else:
            raise ValueError(f"not a config frame: {op!r}")

    def config(self) -> Config:
        if self._start is not None:
            return self._start
        return Config(**self._fields, lineage=self._lineage)
