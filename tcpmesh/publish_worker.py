"""Where the publisher's translations run: in a process of its own (the default when serving), or in-process.

A full translation of 10 000 services allocates millions of objects: on a thread its garbage-collector passes
and its hold on the GIL stop the event loop for up to 0.7 s (docs/benchmarks.md). `ProcessWorker` runs
`Translations` in a child process (multiprocessing's forkserver: a clean interpreter, no inherited gRPC
threads) and mirrors the snapshots it publishes from their patches (bytes, versions and references only; the
parent parses a message when something asks for one). The accepted config crosses as a diff of the last one
sent, by resource identity, so an edit sends the resources it changed; every frame is small, so pickling never
holds the GIL for long. `ThreadWorker` is the same interface in-process (tests that share state with their
translator use it). The worker process's side is worker_process.py.
"""

from __future__ import annotations

import logging
import pickle
import queue
import threading
from collections.abc import Callable, Hashable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from tcpmesh.collector import collector_paused, short_gil_slices
from tcpmesh.config_frames import config_frames
from tcpmesh.forkserver import stop_forkserver, worker_context
from tcpmesh.model.config import RESOURCE_FIELDS, Config
from tcpmesh.model.problems import Problem
from tcpmesh.translation import GroupPatch, Outcome, Translations, TranslatorFactory
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.worker_process import StoreOpener, main
from tcpmesh.xds.cache import Snapshot, SnapshotCache, TypePatch
from tcpmesh.xds.payload import encode_ahead

__all__ = ["FREEZE_AFTER", "ProcessWorker", "StoreOpener", "ThreadWorker", "Worker"]

log = logging.getLogger(__name__)

FREEZE_AFTER = 10_000
"""Mirrored entries above which the parent's heap is frozen out of the collector (see `collector_paused`)."""
ANSWER_TIMEOUT = 900.0
"""Longest a translation may take before the worker is presumed stuck and restarted."""


class Worker(Protocol):
    def add(self, group: Hashable, proxy: Proxy) -> Outcome: ...
    def release(self, group: Hashable) -> None: ...
    def prefetch(self, store: StoreOpener) -> None: ...
    def prepare(self, group: Hashable, proxy: Proxy) -> None: ...
    def publish(self, config: Config, key: str | None = None) -> Outcome: ...
    def settle(self) -> None: ...
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

    def settle(self) -> None:
        self._translations.settle()

    def close(self) -> None:
        pass


class WorkerExited(Exception):
    pass


class ProcessWorker:
    """`Translations` in a child process, started on first use and restarted (replaying the accepted config
    and the groups) if it dies. Called from one thread at a time; a reader thread per child takes its frames as
    they come (so the child never waits to send) and queues the answers, and a stager thread mirrors the
    snapshots the child stages (`_read`, `_stage`)."""

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
        self._cache_lock = threading.Lock()
        """`_cache` is used by the caller's thread (answers) and the reader (staged snapshots)."""
        self._prefetching = False
        self._reader: threading.Thread | None = None
        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        """The child's frames other than staged ones, or the exception that ended the reader."""
        self._staged: dict[Hashable, Snapshot] = {}
        """Per group, the snapshot the child staged at `prepare`, mirrored by the reader (served once a publish
        says "staged" for the group)."""

    def add(self, group: Hashable, proxy: Proxy) -> Outcome:
        self._proxies[group] = proxy
        return self._guarded(lambda: self._call(("add", group, proxy)))

    def release(self, group: Hashable) -> None:
        self._proxies.pop(group, None)
        self._mirror.pop(group, None)
        self._staged.pop(group, None)
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
            with short_gil_slices():
                self._send_config(config)
            outcome = self._call(("publish",))
            if not outcome.problems:
                self._accepted = config
            return outcome

        return self._guarded(call)

    def settle(self) -> None:
        pass  # the child settles its translators itself once it has answered (worker_process.main)

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
        proc = ctx.Process(target=main, args=(child, *self._args), name="tcpmesh-translator", daemon=True)
        proc.start()
        child.close()
        self._conn, self._proc, self._sent, self._prefetching = parent, proc, {}, False
        self._inbox, self._staged = queue.SimpleQueue(), {}
        self._reader = threading.Thread(
            target=self._read, args=(parent, self._inbox, self._staged), name="tcpmesh-translator-reader", daemon=True
        )
        self._reader.start()
        if self._proxies or self._accepted != Config():
            # A restarted worker: what the dead one held, so its patches apply to the snapshots served.
            self._send_config(self._accepted)
            self._send(("accept",))
            for group, proxy in self._proxies.items():
                self._mirror.pop(group, None)
                self._call(("add", group, proxy))

    def _stop(self) -> None:
        conn, proc, reader = self._conn, self._proc, self._reader
        self._conn, self._proc, self._reader = None, None, None
        if proc is not None:
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        if reader is not None:
            reader.join(5)  # it ends at the end of the pipe, which the child's exit closes
        if conn is not None:
            if reader is not None and reader.is_alive():
                # Never close a descriptor another thread reads: its number could be reused under it.
                log.warning("the translation worker's reader did not stop; leaving its pipe open")
            else:
                conn.close()

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
        assert self._proc is not None
        waited = 0.0
        while True:
            try:
                item = self._inbox.get(timeout=1.0)
            except queue.Empty:
                waited += 1.0
                if not self._proc.is_alive():
                    raise WorkerExited(f"exit code {self._proc.exitcode}") from None
                if waited > ANSWER_TIMEOUT:
                    raise WorkerExited(f"no answer in {ANSWER_TIMEOUT:.0f} s") from None
                continue
            if isinstance(item, BaseException):
                raise item
            frame: tuple[Any, ...] = item
            return frame

    def _read(self, conn: Connection, inbox: queue.SimpleQueue[Any], staged: dict[Hashable, Snapshot]) -> None:
        """The reader thread of one child: every frame as it comes, so the child never waits to send. The types
        of a staged snapshot go to a thread of their own to be mirrored (here they would stop the reading while
        the child sends the next); any other frame is queued for `_recv` once what was staged before it is in
        `staged` (so an answer that names it finds it there)."""
        work: queue.Queue[tuple[Hashable, str | None, list[Any], bool] | None] = queue.Queue()
        stager = threading.Thread(target=self._stage, args=(work, staged), name="tcpmesh-translator-stager")
        stager.daemon = True
        stager.start()
        parts: dict[Hashable, list[Any]] = {}
        try:
            while True:
                frame = pickle.loads(conn.recv_bytes())
                if frame[0] == "staged":
                    _, group, type_url, put, last = frame
                    parts.setdefault(group, []).extend(put)
                    if last:
                        work.put((group, type_url, parts.pop(group), True))
                elif frame[0] == "staged-end":
                    work.put((frame[1], None, [], frame[2]))
                else:
                    work.join()
                    inbox.put(frame)
        except (EOFError, OSError) as exc:  # the child exited, or `_stop` ended it
            inbox.put(exc)
        except Exception as exc:  # a frame that cannot be read: the caller restarts the child
            log.exception("reading the translation worker's frames failed")
            inbox.put(WorkerExited(f"reading its frames failed: {type(exc).__name__}: {exc}"))
        finally:
            work.put(None)

    def _stage(
        self, work: queue.Queue[tuple[Hashable, str | None, list[Any], bool] | None], staged: dict[Hashable, Snapshot]
    ) -> None:
        """Mirror staged snapshots type by type; at their end (None: the check's verdict) keep the good ones."""
        building: dict[Hashable, Snapshot] = {}
        while (item := work.get()) is not None:
            group, type_url, put, ok = item
            try:
                if type_url is not None:
                    building[group] = self._mirror_type(building.get(group), type_url, put)
                    encode_ahead(building[group][type_url])  # a first push is all of it: encoded here, not on the loop
                else:
                    done = building.pop(group, None)
                    if ok and done is not None:
                        staged[group] = done
            except Exception:  # not staged: the publish that names it restarts the child (`_mirrored`)
                log.exception("mirroring a staged snapshot of the translation worker failed")
                building.pop(group, None)
            finally:
                work.task_done()

    def _mirror_type(self, base: Snapshot | None, type_url: str, put: list[Any]) -> Snapshot:
        with self._cache_lock, collector_paused() as pause, short_gil_slices():
            pause.freeze = len(put) >= FREEZE_AFTER
            return self._cache.apply(base, {type_url: TypePatch(tuple(put), (), True)})

    def _call(self, request: tuple[Any, ...]) -> Outcome:
        """Send `request`; read the patches that answer it and mirror them. Outcome.snapshots are the mirrors."""
        self._send(request)
        with collector_paused() as pause, short_gil_slices():
            outcome, received = self._mirrored()
            pause.freeze = received >= FREEZE_AFTER
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
            _, problems, groups, fresh, seconds, staged = frame
            break
        snapshots: dict[Hashable, Snapshot] = {}
        with self._cache_lock:
            for group in groups:
                held = self._staged.pop(group, None)  # published now, or superseded
                if group in staged:
                    if held is None:
                        raise WorkerExited(f"the worker published a snapshot it staged for {group!r}, not received")
                    snapshots[group] = self._mirror[group] = held
                    continue
                patch: GroupPatch = {
                    t: TypePatch(tuple(put), removed, full) for t, (full, removed, put) in parts.get(group, {}).items()
                }
                base = None if group in fresh else self._mirror.get(group)
                snapshots[group] = self._mirror[group] = self._cache.apply(base, patch)
        received = sum(len(p[2]) for types in parts.values() for p in types.values())
        return Outcome(problems, snapshots=snapshots, fresh=fresh, seconds=seconds, staged=staged), received
