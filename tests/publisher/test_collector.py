"""Collector pauses and short GIL slices from several threads: the settings are back as they were once the
last pause ends, whatever the order in which overlapping pauses start and end."""

from __future__ import annotations

import gc
import sys
import threading

from tcpmesh.collector import SWITCH_INTERVAL, collector_paused, short_gil_slices


def test_overlapping_pauses_of_two_threads_restore_the_collector_and_slices() -> None:
    assert gc.isenabled()
    interval = sys.getswitchinterval()
    inside, release = threading.Event(), threading.Event()

    def other() -> None:
        with collector_paused(), short_gil_slices():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    with collector_paused(), short_gil_slices():
        thread.start()
        assert inside.wait(10)
    # This thread's pause ended first (it began first): the other's is still in.
    assert not gc.isenabled()
    assert sys.getswitchinterval() == min(interval, SWITCH_INTERVAL)
    release.set()
    thread.join(10)
    assert gc.isenabled()
    assert sys.getswitchinterval() == interval


def test_a_freeze_asked_for_by_an_inner_pause_happens_when_the_last_ends() -> None:
    before = gc.get_freeze_count()
    try:
        with collector_paused():
            with collector_paused() as inner:
                inner.freeze = True
            kept = [[n] for n in range(3)]  # containers the collector tracks, alive at the end
            assert gc.get_freeze_count() == before  # not yet: a pause is still in
        assert gc.get_freeze_count() >= before + len(kept)
        assert gc.isenabled()
    finally:
        gc.unfreeze()
