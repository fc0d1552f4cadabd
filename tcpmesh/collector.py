"""Pauses of the garbage collector and short GIL slices, counted across the threads of one process.

`gc.disable()` and `sys.setswitchinterval()` are process-wide. Two threads that each saved the setting, changed
it and restored what they saved could leave the collector off for good (the second saved "off" and restored it
after the first had restored "on") or switch it back on in the middle of the other's pause. The serving process
has several such threads (the store's reload, the translation worker's reader and the publisher's), so they
pause through these counts: the first pause in saves the settings, the last one out restores them.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Iterator

__all__ = ["SWITCH_INTERVAL", "Pause", "collector_paused", "short_gil_slices"]

SWITCH_INTERVAL = 0.001
"""GIL slice while a thread pickles or mirrors a large snapshot (CPython's default is 5 ms): an ADS answer takes
several hand-overs between the event loop and gRPC's threads, each of which may wait one slice."""


class _Setting:
    """A process-wide setting changed while any pause is in: what it was before the first, and how many are in."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.before: float | bool = False
        self.freeze = False
        """A pause that asked for `gc.freeze()` ended while others were still in: freeze when the last ends."""


# One of each per process, as the settings they guard are: state of the interpreter, not a cache.
_GC = _Setting()
_SLICES = _Setting()


class Pause:
    """One pause of the collector: set `freeze` to have what is alive frozen out of it when the pauses end."""

    __slots__ = ("freeze",)

    def __init__(self) -> None:
        self.freeze = False


@contextlib.contextmanager
def collector_paused() -> Iterator[Pause]:
    """No automatic collection until the last overlapping pause ends. A pause whose `freeze` is set by then has
    `gc.freeze()` run at that end: a full pass over a 10 000-service config and its snapshots takes ~0.4 s with
    the GIL held, and frozen objects are still freed by reference counting (only a reference cycle among them
    would stay; config values and snapshots hold none)."""
    pause = Pause()
    with _GC.lock:
        if _GC.depth == 0:
            _GC.before = gc.isenabled()
            gc.disable()
        _GC.depth += 1
    try:
        yield pause
    finally:
        with _GC.lock:
            _GC.depth -= 1
            _GC.freeze = _GC.freeze or pause.freeze
            if _GC.depth == 0:
                if _GC.freeze:
                    gc.freeze()
                    _GC.freeze = False
                if _GC.before:
                    gc.enable()


@contextlib.contextmanager
def short_gil_slices() -> Iterator[None]:
    """GIL slices of at most SWITCH_INTERVAL until the last overlapping use ends."""
    with _SLICES.lock:
        if _SLICES.depth == 0:
            _SLICES.before = sys.getswitchinterval()
            sys.setswitchinterval(min(_SLICES.before, SWITCH_INTERVAL))
        _SLICES.depth += 1
    try:
        yield
    finally:
        with _SLICES.lock:
            _SLICES.depth -= 1
            if _SLICES.depth == 0:
                sys.setswitchinterval(_SLICES.before)
