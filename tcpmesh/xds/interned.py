"""A table of shared values by key: equal resources of several groups (and snapshots) are one Entry.

A WeakValueDictionary did this at ~1.2 µs per insertion (a weak reference with a callback, made in Python):
0.09 s of the 70 000 entries of a 10 000-service snapshot, paid in the translation worker and again in the
serving process. This is a plain dict, swept of the values nothing else holds once it has grown to twice what
the last sweep kept, so the sweeps cost O(1) amortised per value put. The price: a value everyone else has
dropped stays in the table until the next sweep, so the table may hold as many dead values as live ones.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["InternTable"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

SWEEP_MIN = 1024
"""No sweep below this many values."""


class InternTable(Generic[K, V]):
    """Values by key, kept while something besides the table holds them (until the next sweep otherwise)."""

    def __init__(self) -> None:
        self._values: dict[K, V] = {}
        self._sweep_at = SWEEP_MIN

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, value: V) -> None:
        values = self._values
        values[key] = value
        if len(values) >= self._sweep_at:
            self.sweep()

    def sweep(self) -> None:
        """Drop the values only the table holds."""
        values = self._values
        # getrefcount counts the table's reference and its own argument's: 2 is "nobody else".
        self._values = {k: values[k] for k in list(values) if sys.getrefcount(values[k]) > 2}
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._values))

    def __len__(self) -> int:
        return len(self._values)
