"""The translation worker process runs without the automatic garbage collector (its passes over a 10 000-service
config were half of a full translation) and collects reference cycles once its pipe is idle."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tcpmesh.model.config import Config
from tcpmesh.publish_worker import ProcessWorker
from tcpmesh.store import import_paths, open_store
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.translator.incremental import IncrementalTranslator
from tcpmesh.translator.translate import EnvoyResources
from tcpmesh.worker_process import SWEEP_WHEN_IDLE

ROOT = Path(__file__).resolve().parents[2]
GROUP = ("gateway", "istio-system", ())


class _Cycle:
    """Half of a reference cycle that says, by a file, when the collector freed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.other: Any = None

    def __del__(self) -> None:
        self.marker.touch()


class CycleTranslator:
    """IncrementalTranslator that leaves one reference cycle of garbage per update (pickles by reference)."""

    def __init__(self, proxy: Proxy, options: TranslateOptions, *, marker: Path) -> None:
        self._inner = IncrementalTranslator(proxy, options)
        self._marker = marker

    def update(self, config: Config) -> EnvoyResources:
        a, b = _Cycle(self._marker), _Cycle(self._marker)
        a.other, b.other = b, a
        del a, b
        return self._inner.update(config)  # a full translation: far more allocations than a collector threshold

    def serialized(self) -> Any:
        return self._inner.serialized()


def _factory(marker: Path) -> Any:
    import functools

    return functools.partial(CycleTranslator, marker=marker)


def test_cycles_wait_for_an_idle_pipe_then_are_collected(tmp_path: Path) -> None:
    store = open_store(None, tmp_path / "state")
    assert import_paths(store, [ROOT / "samples" / "tcp-echo"]).ok
    config, problems = store.load()
    store.close()
    assert not [p for p in problems if p.is_error]
    marker = tmp_path / "collected"
    worker = ProcessWorker(TranslateOptions(), _factory(marker), "test")
    try:
        assert not worker.publish(config).problems
        started = time.monotonic()
        outcome = worker.add(GROUP, Proxy(role="gateway", namespace="istio-system"))
        assert not outcome.problems
        assert GROUP in outcome.snapshots
        answered = time.monotonic()
        # The translation allocated far past the collector's thresholds and left its cycle: with the automatic
        # collector on, it would be gone by the answer.
        assert not marker.exists() or time.monotonic() - started >= SWEEP_WHEN_IDLE
        deadline = answered + SWEEP_WHEN_IDLE + 30
        while not marker.exists():
            assert time.monotonic() < deadline, "the idle worker did not collect the cycle"
            time.sleep(0.05)
        # Not before the pipe was idle (with room for this thread being descheduled after the answer).
        assert time.monotonic() - answered >= SWEEP_WHEN_IDLE * 0.5
    finally:
        worker.close()
