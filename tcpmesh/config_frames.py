"""How the accepted config crosses to the translation worker: per Config field, frames that rebuild the new tuple
from the one the worker holds, by resource identity (runs of unchanged resources by index, the others pickled
RESOURCES_PER_FRAME to a frame), so an edit sends the resources it changed and no frame holds the GIL long."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from typing import Any

__all__ = ["RESOURCES_PER_FRAME", "config_frames"]

RESOURCES_PER_FRAME = 200
"""Config resources per pickled frame (~10 ms to pickle): the parent's event loop waits at most that long."""


def config_frames(name: str, old: tuple[Any, ...], new: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
    """Frames that rebuild `new` from `old`: runs of `old` by index, and the other resources themselves."""
    if len(old) == len(new):
        # An edit in place (the usual one: a resource changed, none came or went): the positions holding another
        # object are found in C, not by a Python walk of 10 000.
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
