"""A table of shared values by key: equal resources of several groups (and snapshots) are one Entry.

A WeakValueDictionary did this at ~1.2 µs per insertion (a weak reference with a callback, made in Python):
0.09 s of the 70 000 entries of a 10 000-service snapshot, paid in the translation worker and again in the
serving process. This is a plain dict, swept of the values nothing else holds once it has grown to twice what
the last sweep kept, so the sweeps cost O(1) amortised per value put. The price: a value everyone else has
dropped stays in the table until the next sweep, so the table may hold as many dead values as live ones.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Hashable, Iterator
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
        self._batches = 0
        self._batch_puts = 0

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, value: V) -> None:
        values = self._values
        values[key] = value
        if self._batches:
            self._batch_puts += 1
        elif len(values) >= self._sweep_at:
            self.sweep()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Puts without sweeps until the end, then at most one, and none when the batch put most of the table:
        its caller holds what it just put, so a sweep would find at most the rest unused, which is then fewer
        than the live values (the bound a sweep keeps). A first snapshot of 10 000 services swept the growing
        table seven times (0.05 s, twice at a start: the translation worker builds it, the server mirrors it)
        and found nothing to drop."""
        if not self._batches:
            self._batch_puts = 0
        self._batches += 1
        try:
            yield
        finally:
            self._batches -= 1
            values = self._values
            if not self._batches and len(values) >= self._sweep_at:
                if 2 * self._batch_puts >= len(values):
                    self._sweep_at = max(SWEEP_MIN, 2 * len(values))
                else:
                    self.sweep()

    def sweep(self) -> None:
        """Drop the values only the table holds."""
        values = self._values
        # getrefcount counts the table's reference and its own argument's: 2 is "nobody else".
        self._values = {k: values[k] for k in list(values) if sys.getrefcount(values[k]) > 2}
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._values))

    def __len__(self) -> int:
        return len(self._values)
