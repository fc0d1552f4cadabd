"""Where the publisher's translations run: in a process of its own (the default when serving), or in-process.

A full translation of 10 000 services allocates millions of objects: on a thread its garbage-collector passes
and its hold on the GIL stop the event loop for up to 0.7 s (docs/benchmarks.md). `ProcessWorker` runs
`Translations` in a child process (multiprocessing's forkserver: a clean interpreter, no inherited gRPC
threads) and mirrors the snapshots it publishes from their patches (bytes, versions and references only; the
parent parses a message when something asks for one). The accepted config crosses as a diff of the last one
sent, by resource identity, so an edit sends the resources it changed; every frame is small, so pickling never
holds the GIL for long. `ThreadWorker` is the same interface in-process (tests that share state with their
translator use it).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import pickle
import signal
import sys
from collections.abc import Callable, Hashable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from tcpmesh.config_frames import FRAME_OPS, ConfigAssembly, config_frames
from tcpmesh.forkserver import stop_forkserver, worker_context
from tcpmesh.model.config import RESOURCE_FIELDS, Config
from tcpmesh.model.problems import Problem
from tcpmesh.translation import GroupPatch, Outcome, Translations, TranslatorFactory
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.xds.cache import Snapshot, SnapshotCache, TypePatch

__all__ = ["ProcessWorker", "StoreOpener", "ThreadWorker", "Worker", "collector_paused"]

log = logging.getLogger(__name__)

ENTRIES_PER_FRAME = 2_000
"""Snapshot entries per frame back (~1 MB, a few ms to unpickle)."""
FREEZE_AFTER = 10_000
"""Mirrored entries above which the parent's heap is frozen out of the collector (see `collector_paused`)."""
ANSWER_TIMEOUT = 900.0
"""Longest a translation may take before the worker is presumed stuck and restarted."""
SWEEP_WHEN_IDLE = 2.0
"""Seconds without a frame after which the child collects reference cycles (its automatic collector is off)."""


class StoreSnapshot(Protocol):
    def load_keyed(self) -> tuple[Config, list[Problem], str]: ...
    def close(self) -> None: ...


class StoreOpener(Protocol):
    """What opens the store in the worker process (store.StoreReader); it must pickle."""

    def open(self) -> StoreSnapshot: ...

    def saved_config(self) -> tuple[Config, str] | None:
        """The config saved at the last stop and its key, without reading the store (None: none saved)."""
        ...


class Worker(Protocol):
    def add(self, group: Hashable, proxy: Proxy) -> Outcome: ...
    def release(self, group: Hashable) -> None: ...
    def prefetch(self, store: StoreOpener) -> None: ...
    def prepare(self, group: Hashable, proxy: Proxy) -> None: ...
    def publish(self, config: Config, key: str | None = None) -> Outcome: ...
    def close(self) -> None: ...


class ThreadWorker:
    """`Translations` on the caller's thread (the publisher's worker thread)."""

    def __init__(
        self,
        options: TranslateOptions,
        translators: TranslatorFactory,
        source: str,
    ) -> None:
        self._translations = Translations(options, translators, source)

    def add(self, group: Hashable, proxy: Proxy) -> Outcome:
        return self._translations.add(group, proxy)

    def release(self, group: Hashable) -> None:
        self._translations.release(group)

    def prefetch(self, store: StoreOpener) -> None:
        pass  # the config is not sent anywhere

    def prepare(self, group: Hashable, proxy: Proxy) -> None:
        pass  # no config is read ahead here

    def publish(self, config: Config, key: str | None = None) -> Outcome:
        return self._translations.publish(config)

    def close(self) -> None:
        pass


class WorkerExited(Exception):
    pass


class ProcessWorker:
    """`Translations` in a child process, started on first use and restarted (replaying the accepted config
    and the groups) if it dies. Called from one thread at a time."""

    def __init__(
        self,
        options: TranslateOptions,
        translators: TranslatorFactory,
        source: str,
    ) -> None:
        self._args = (options, translators, source)
        self._source = source
        self._conn: Connection | None = None
        self._proc: BaseProcess | None = None
        self._sent: dict[str, tuple[Any, ...]] = {}
        """Per Config field, the tuple the child holds."""
        self._accepted = Config()
        self._proxies: dict[Hashable, Proxy] = {}
        self._mirror: dict[Hashable, Snapshot] = {}
        self._cache = SnapshotCache()
        self._prefetching = False

    def add(self, group: Hashable, proxy: Proxy) -> Outcome:
        self._proxies[group] = proxy
        return self._guarded(lambda: self._call(("add", group, proxy)))

    def release(self, group: Hashable) -> None:
        self._proxies.pop(group, None)
        self._mirror.pop(group, None)
        if self._conn is not None:
            try:
                self._send(("release", group))
            except OSError:
                self._stop()

    def prefetch(self, store: StoreOpener) -> None:
        """Start the worker now and have it read the store itself while this process does: the first `publish`
        of a config with the key it read then sends nothing (sending 10 000 services' config took ~2 s)."""
        try:
            self._ensure()
            if self._accepted == Config() and not self._sent:
                self._send(("prefetch", store))
                self._prefetching = True
        except (OSError, EOFError, WorkerExited) as exc:
            log.warning("the translation worker could not read the store (%s); the config is sent instead", exc)
            self._stop()

    def prepare(self, group: Hashable, proxy: Proxy) -> None:
        """A group the server wants before the first config is accepted: the worker translates it for the config
        it prefetched as soon as it has read it (returns at once). If that is the config the first `publish`
        accepts, the publish only publishes the group; if not, the work is a head start for its translation."""
        if not self._prefetching or self._conn is None:
            return
        try:
            self._send(("prepare", group, proxy))
        except OSError:
            self._stop()  # the next call restarts the worker, and the group is translated then

    def publish(self, config: Config, key: str | None = None) -> Outcome:
        def call() -> Outcome:
            if self._prefetching:
                self._prefetching = False
                self._send(("adopt", key))
                if self._recv()[1]:
                    self._sent = {name: getattr(config, name) for name in RESOURCE_FIELDS}
            with _short_gil_slices():
                self._send_config(config)
            outcome = self._call(("publish",))
            if not outcome.problems:
                self._accepted = config
            return outcome

        return self._guarded(call)

    def close(self) -> None:
        self._stop()
        stop_forkserver()

    # ----- the parent's side of the pipe

    def _guarded(self, call: Callable[[], Outcome]) -> Outcome:
        """`call`, on a live worker; if the worker dies during it (killed, out of memory), once more on a new one
        (which replays the accepted config and the groups first): a change is rejected only if it fails twice."""
        for attempt in (1, 2):
            try:
                self._ensure()
                return call()
            except (OSError, EOFError, WorkerExited) as exc:
                self._stop()
                what = f"{type(exc).__name__}: {exc}"
                if attempt == 1:
                    log.warning("the translation worker failed (%s); restarting it to try again", what)
                    continue
                log.error("the translation worker failed again (%s); it restarts on the next change", what)
                message = f"the translation worker process failed: {what}"
                return Outcome((Problem(file=self._source, message=message),))
        raise AssertionError("unreachable")

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._stop()
        ctx = worker_context()
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_main, args=(child, *self._args), name="tcpmesh-translator", daemon=True)
        proc.start()
        child.close()
        self._conn, self._proc, self._sent, self._prefetching = parent, proc, {}, False
        if self._proxies or self._accepted != Config():
            # A restarted worker: what the dead one held, so its patches apply to the snapshots served.
            self._send_config(self._accepted)
            self._send(("accept",))
            for group, proxy in self._proxies.items():
                self._mirror.pop(group, None)
                self._call(("add", group, proxy))

    def _stop(self) -> None:
        conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def _send(self, frame: tuple[Any, ...]) -> None:
        assert self._conn is not None
        self._conn.send_bytes(pickle.dumps(frame, pickle.HIGHEST_PROTOCOL))

    def _send_config(self, config: Config) -> None:
        for name in RESOURCE_FIELDS:
            new, old = getattr(config, name), self._sent.get(name, ())
            if new is old:
                continue
            self._send(("begin", name))
            for frame in config_frames(name, old, new, config.moved(old, new)):
                self._send(frame)
            self._send(("end", name))
            self._sent[name] = new

    def _recv(self) -> tuple[Any, ...]:
        assert self._conn is not None
        assert self._proc is not None
        waited = 0.0
        while not self._conn.poll(1.0):
            waited += 1.0
            if not self._proc.is_alive():
                raise WorkerExited(f"exit code {self._proc.exitcode}")
            if waited > ANSWER_TIMEOUT:
                raise WorkerExited(f"no answer in {ANSWER_TIMEOUT:.0f} s")
        frame: tuple[Any, ...] = pickle.loads(self._conn.recv_bytes())
        return frame

    def _call(self, request: tuple[Any, ...]) -> Outcome:
        """Send `request`; read the patches that answer it and mirror them. Outcome.snapshots are the mirrors."""
        self._send(request)
        with collector_paused() as received, _short_gil_slices():
            outcome, received[0] = self._mirrored()
        return outcome

    def _mirrored(self) -> tuple[Outcome, int]:
        parts: dict[Hashable, dict[str, tuple[bool, tuple[str, ...], list[Any]]]] = {}
        while True:
            frame = self._recv()
            if frame[0] == "patch":
                _, group, type_url, full, removed, put = frame
                part = parts.setdefault(group, {}).setdefault(type_url, (full, removed, []))
                part[2].extend(put)
                continue
            _, problems, groups, fresh, seconds = frame
            break
        snapshots: dict[Hashable, Snapshot] = {}
        for group in groups:
            types = parts.get(group, {})
            patch: GroupPatch = {t: TypePatch(tuple(put), removed, full) for t, (full, removed, put) in types.items()}
            base = None if group in fresh else self._mirror.get(group)
            snapshots[group] = self._mirror[group] = self._cache.apply(base, patch)
        received = sum(len(p[2]) for types in parts.values() for p in types.values())
        return Outcome(problems, snapshots=snapshots, fresh=fresh, seconds=seconds), received


SWITCH_INTERVAL = 0.001
"""GIL slice while this thread pickles or mirrors (CPython's default is 5 ms): an ADS answer takes several
hand-overs between the event loop and gRPC's threads, each of which may wait one slice."""


@contextlib.contextmanager
def _short_gil_slices() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@contextlib.contextmanager
def collector_paused() -> Iterator[list[int]]:
    """No garbage collection while a snapshot is received and mirrored; after a large one (the caller stores
    how many entries in the yielded list), `gc.freeze()`: a full collection scans every tracked object, and with
    a 10 000-service config and its snapshot held that is ~0.4 s with the GIL held (measured during a full
    translation, twice per snapshot). Frozen objects are still freed by reference counting when released; only
    a reference cycle among them would stay, and config values and snapshots hold none."""
    received = [0]
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield received
    finally:
        if received[0] >= FREEZE_AFTER:
            gc.freeze()
        if enabled:
            gc.enable()


# ----- the child


def _main(
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
            _answer(conn, translations.publish(assembly.config()))
        elif op == "add":
            _answer(conn, translations.add(frame[1], frame[2]))
        elif op == "release":
            translations.release(frame[1])
        elif op == "prefetch":
            prefetched, saved_from = _saved_config(frame[1]), frame[1]
            if prefetched is None:
                prefetched, saved_from = _read_store(frame[1]), None
        elif op == "prepare":
            if prefetched is not None:
                translations.prepare(frame[1], frame[2], prefetched[1])
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
            conn.send_bytes(pickle.dumps(("adopted", adopted), pickle.HIGHEST_PROTOCOL))


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


def _answer(conn: Connection, outcome: Outcome) -> None:
    for group, patch in outcome.patches.items():
        for type_url, p in patch.items():
            put = p.put
            for start in range(0, max(len(put), 1), ENTRIES_PER_FRAME):
                frame = ("patch", group, type_url, p.full, p.removed, put[start : start + ENTRIES_PER_FRAME])
                conn.send_bytes(pickle.dumps(frame, pickle.HIGHEST_PROTOCOL))
    done = ("done", outcome.problems, tuple(outcome.patches), outcome.fresh, outcome.seconds)
    conn.send_bytes(pickle.dumps(done, pickle.HIGHEST_PROTOCOL))
