"""The translation worker process (publish_worker.py starts it): its loop over the frames of the serving process.

The serving process sends the accepted config as frames (config_frames.py), and requests: "add" a group,
"publish" the config, "release" a group; each is answered with patches of the snapshots it changed ("patch"
frames, then "done"). At a start it also sends "prefetch" (read the store, or the view saved at the last stop,
beside the serving process's own read), "prepare" (translate a group the server wants for that config before it
is accepted) and "adopt" (the key of the config it accepted: is it the one read here?). A prepared group's
snapshot goes out as it is built, type by type ("staged" frames, then "staged-end"), so the serving process
mirrors one type while the next is made; the publish that accepts it then says so instead of sending it again.
"""

from __future__ import annotations

import gc
import logging
import pickle
import queue
import signal
import threading
from collections.abc import Hashable
from multiprocessing.connection import Connection
from typing import Any, Protocol

from tcpmesh.config_frames import FRAME_OPS, ConfigAssembly
from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.translation import Outcome, Translations, TranslatorFactory
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.xds.cache import TypeSnapshot, full_patch

__all__ = ["ENTRIES_PER_FRAME", "StoreOpener", "StoreSnapshot", "main"]

log = logging.getLogger(__name__)

ENTRIES_PER_FRAME = 2_000
"""Snapshot entries per frame back (~1 MB, a few ms to unpickle)."""
SWEEP_WHEN_IDLE = 2.0
"""Seconds without a frame after which the worker collects reference cycles (its automatic collector is off)."""


class StoreSnapshot(Protocol):
    def load_keyed(self) -> tuple[Config, list[Problem], str]: ...
    def close(self) -> None: ...


class StoreOpener(Protocol):
    """What opens the store in the worker process (store.StoreReader); it must pickle."""

    def open(self) -> StoreSnapshot: ...

    def saved_config(self) -> tuple[Config, str] | None:
        """The config saved at the last stop and its key, without reading the store (None: none saved)."""
        ...


def main(
    conn: Connection,
    options: TranslateOptions,
    translators: TranslatorFactory,
    source: str,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent stops us
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # No automatic collection here: this process holds the config and every group's translator state, so each
    # full pass scans millions of objects, and allocation-driven passes during a 10 000-service translation
    # took half of it (4.7 s against 2.2 s). Config, index and snapshots are acyclic and freed by reference
    # counting (a full translation of 10 000 services leaves no unreachable cycle); whatever cyclic garbage a
    # request leaves (a traceback, say) is collected once the pipe is idle, when no answer waits for the pass.
    # What survives a pass is frozen, so the next pass scans what came since (an edit's few objects), not the
    # million a 10 000-service state holds (0.4-0.65 s that a change arriving meanwhile would wait for).
    gc.disable()
    sender = _Sender(conn)
    translations = Translations(options, translators, source, diffs=True)
    assembly = ConfigAssembly()
    prefetched: tuple[str, Config] | None = None
    saved_from: StoreOpener | None = None
    """The store whose saved config `prefetched` is (None: it was read from the store itself)."""
    swept = True
    while True:
        try:
            if not swept and not conn.poll(SWEEP_WHEN_IDLE):
                gc.collect()
                gc.freeze()
                swept = True
                continue
            frame = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        swept = False
        op = frame[0]
        if op in FRAME_OPS:
            assembly.take(frame)
        elif op == "accept":
            translations.config = assembly.config()
        elif op == "publish":
            _answer(sender, translations.publish(assembly.config()))
            translations.settle()  # while the parent mirrors the answer
        elif op == "add":
            _answer(sender, translations.add(frame[1], frame[2]))
            translations.settle()
        elif op == "release":
            translations.release(frame[1])
        elif op == "prefetch":
            prefetched, saved_from = _saved_config(frame[1]), frame[1]
            if prefetched is None:
                prefetched, saved_from = _read_store(frame[1]), None
        elif op == "prepare":
            if prefetched is not None:
                _prepare(sender, translations, frame[1], frame[2], prefetched[1])
        elif op == "adopt":
            # The config the parent is about to publish, if it is the one read here: the fields need not come.
            adopted = prefetched is not None and frame[1] is not None and prefetched[0] == frame[1]
            if not adopted and saved_from is not None and frame[1] is not None:
                prefetched = _read_store(saved_from)  # changed while stopped: the store's, not the saved one
                adopted = prefetched is not None and prefetched[0] == frame[1]
            saved_from = None
            if adopted and prefetched is not None:
                assembly = ConfigAssembly(prefetched[1])
            prefetched = None
            sender.send(("adopted", adopted))


def _saved_config(opener: StoreOpener) -> tuple[str, Config] | None:
    """The config saved at the last stop (the parsed view: store/viewfile.py), read without the store's ~50 000
    records: ~0.2 s less before the first translation can start. Its key is checked against the serving process's
    read of the records before anything translated for it is published ("adopt")."""
    try:
        found = opener.saved_config()
    except Exception:  # a cache: read the store instead
        log.exception("reading the saved config in the translation worker failed")
        return None
    return (found[1], found[0]) if found is not None else None


def _read_store(opener: StoreOpener) -> tuple[str, Config] | None:
    try:
        store = opener.open()
        try:
            config, _, key = store.load_keyed()
        finally:
            store.close()
    except Exception:  # the parent sends the config instead
        log.exception("reading the store in the translation worker failed")
        return None
    return key, config


class _Sender:
    """Frames to the serving process, in order. Those sent `later` are written by a thread of this process, so the
    loop goes on building while the serving process reads them (a socket holds ~200 KB: the 30 MB of a
    10 000-service snapshot otherwise stopped the building at the pace of the reading, +0.3 s); any other frame
    waits until those are written, then goes out at once."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._later: queue.Queue[bytes | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._failed: OSError | None = None

    def send(self, frame: tuple[Any, ...], *, later: bool = False) -> None:
        data = pickle.dumps(frame, pickle.HIGHEST_PROTOCOL)
        if later:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="tcpmesh-worker-sender", daemon=True)
                self._thread.start()
            self._later.put(data)
            return
        self._later.join()
        if self._failed is not None:
            raise self._failed
        self._conn.send_bytes(data)

    def _write(self) -> None:
        while (data := self._later.get()) is not None:
            try:
                if self._failed is None:
                    self._conn.send_bytes(data)
            except OSError as exc:  # the serving process is gone: the next `send` says so
                self._failed = exc
            finally:
                self._later.task_done()


def _prepare(sender: _Sender, translations: Translations, group: Hashable, proxy: Proxy, config: Config) -> None:
    """Translate a held group for the prefetched config, each type of its snapshot sent as soon as it is built:
    at 10 000 services the serving process took ~0.4 s to receive and mirror the snapshot once it was whole, and
    now does most of that while the types after the first and the check are made here. "staged-end" says whether
    the snapshot passed its check; until a publish says "staged" for it, it is not served."""
    staged = False

    def stage(type_url: str, ts: TypeSnapshot) -> None:
        nonlocal staged
        staged = True
        put = full_patch(ts).put
        for start in range(0, max(len(put), 1), ENTRIES_PER_FRAME):
            end = start + ENTRIES_PER_FRAME
            sender.send(("staged", group, type_url, put[start:end], end >= len(put)), later=True)

    ok = translations.prepare(group, proxy, config, stage)
    if staged:
        sender.send(("staged-end", group, ok))


def _answer(sender: _Sender, outcome: Outcome) -> None:
    for group, patch in outcome.patches.items():
        for type_url, p in patch.items():
            put = p.put
            for start in range(0, max(len(put), 1), ENTRIES_PER_FRAME):
                sender.send(("patch", group, type_url, p.full, p.removed, put[start : start + ENTRIES_PER_FRAME]))
    sender.send(("done", outcome.problems, tuple(outcome.patches), outcome.fresh, outcome.seconds, outcome.staged))
