"""The forkserver the translation worker process is made from (publish_worker.py): started before anything
else is imported, stopped with the last worker.

It is a clean interpreter that imports the translator once (its preload) and forks a worker from itself. A
`serve` process starts it first thing (`__main__`), so its ~0.3 s of imports run on the other core beside the
serving process's own instead of after them. This module imports nothing of tcpmesh for that reason.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from multiprocessing.context import ForkServerContext

__all__ = ["PRELOAD", "stop_forkserver", "worker_context"]

PRELOAD = ["tcpmesh.translation"]
"""What the forkserver imports before it forks a worker: the translator and what it needs."""


def worker_context(*, start: bool = False) -> ForkServerContext:
    """The context to make worker processes with; `start`: start its forkserver now (it starts on the first
    process otherwise)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    if start:
        multiprocessing.forkserver.ensure_running()
    return ctx


def stop_forkserver() -> None:
    """Stop multiprocessing's forkserver and wait for it, once none of the processes it made for this one is
    alive (each holds the pipe whose end tells it to stop, so waiting before would never end). Left alone it
    exits after this process has, so it could outlive a control plane that had stopped everything else it
    started. There is no public call for this; `_stop` is the one multiprocessing's own tests use."""
    if multiprocessing.active_children():
        return
    server = getattr(multiprocessing.forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        stop()
