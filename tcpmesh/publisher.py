"""The publisher: accepted config → one consistent snapshot per proxy group → the ADS server.

The xds server never translates. It asks for a group when the group's first stream connects (`want`), and the
publisher answers with `set_snapshots`; on every accepted config change the publisher translates every group it
serves and publishes all of them at once, or none: a change that fails to translate, or whose snapshot is
inconsistent (snapshot_check.py), is rejected like a validation error and the last good snapshots keep serving.

Translation and serialisation run in a worker (publish_worker.py): a process of its own when serving
(worker_process.py), so the event loop keeps answering health checks and ACKs while a large config translates
(docs/benchmarks.md has the measurements of thread against process), or in-process for tests that share state
with their translator.
Each group keeps an IncrementalTranslator (translation.py): an edit rebuilds, serialises and hashes only the
resources it touches, and unchanged resources keep their interned Entry (and cached wire encodings). This
module's own work (requests to the worker, handing snapshots to the server) runs on one thread of its own.

With a `SnapshotFile` (saved_snapshots.py) the published snapshots are saved once changes have been quiet for
SAVE_AFTER seconds and when the publisher closes, and `restore` serves them on the next start before anything
is read or translated, when they are of the same store content, code and options.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tcpmesh.collector import collector_paused
from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.publish_worker import FREEZE_AFTER, ProcessWorker, StoreOpener, ThreadWorker, Worker
from tcpmesh.saved_snapshots import SavedGroup, SnapshotFile, code_version
from tcpmesh.translation import KIND_TYPES, Outcome, Translator, TranslatorFactory
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.translator.incremental import IncrementalTranslator
from tcpmesh.translator.proxy import parse_node_id
from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.types import Node

__all__ = [
    "KIND_TYPES",
    "Published",
    "Publisher",
    "Translator",
    "TranslatorFactory",
    "WorkerKind",
    "proxy_from_node",
    "proxy_group",
]

log = logging.getLogger(__name__)

WorkerKind = Literal["process", "thread"]

SAVE_AFTER = 5.0
"""Seconds without a change before the published snapshots are saved (at 10 000 services the file is ~25 MB)."""
SAVE_MAX_DELAY = 60.0
"""Longest a changed snapshot waits to be saved while changes keep coming."""
CLOSE_SAVE_WAIT = 60.0
"""Longest `close` waits for the publisher's thread (a translation in progress, then the save)."""


class SnapshotSink(Protocol):
    def set_snapshots(
        self, snapshots: Mapping[Hashable, Snapshot], *, changed_at: float | None = None
    ) -> concurrent.futures.Future[None]: ...

    def preload(self, snapshots: Mapping[Hashable, Snapshot]) -> list[Hashable]: ...


def proxy_from_node(node: Node) -> Proxy:
    """Role, namespace and labels as istiod reads them from the bootstrap node."""
    role, ip, _, id_namespace = parse_node_id(node.id)
    namespace = str(node.metadata.get("NAMESPACE") or id_namespace or "default")
    return Proxy(role=role, id=node.id, namespace=namespace, labels=tuple(sorted(node.labels.items())), ip=ip)


def proxy_group(node: Node) -> Hashable:
    """Proxies with the same role, namespace and labels get the same config: translate it once for all."""
    proxy = proxy_from_node(node)
    return (proxy.role, proxy.namespace, proxy.labels)


@dataclass(frozen=True, slots=True)
class Published:
    """The outcome of `publish`: problems (the change was rejected, nothing published), or else `applied`, done
    once the server serves the new snapshots (None when no group's snapshot changed)."""

    problems: tuple[Problem, ...]
    applied: concurrent.futures.Future[None] | None = None
    sequence: int = 0
    """This publish's place among all (`Publisher.sequence`)."""


class Publisher:
    """Translates the accepted config per proxy group in a worker and publishes consistent snapshots.

    `want`/`release` are the server's callbacks (event loop); `publish` (any thread, blocking) offers a new
    config. `on_rejected` hears of problems found outside `publish` (a new group whose translation fails), with
    the `sequence` of the publish whose config that was.
    `worker`: "process" translates in a child process (the translator factory must pickle),
    "thread" in this one.
    """

    def __init__(
        self,
        sink: SnapshotSink,
        options: TranslateOptions,
        *,
        translators: TranslatorFactory = IncrementalTranslator,
        source: str = "<config>",
        on_rejected: Callable[[tuple[Problem, ...], int], None] | None = None,
        on_translated: Callable[[float], None] | None = None,
        worker: WorkerKind = "thread",
        saved: SnapshotFile | None = None,
    ) -> None:
        self._sink = sink
        self._on_rejected = on_rejected
        self._on_translated = on_translated
        make = ProcessWorker if worker == "process" else ThreadWorker
        self._worker: Worker = make(options, translators, source)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcpmesh-publisher")
        self._saver = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcpmesh-saver")
        self._groups: set[Hashable] = set()
        """Groups being published for (written by the publisher's thread)."""
        self._saved = saved
        self._saved_key = (
            f"{code_version()}|{options!r}|{getattr(translators, '__module__', '')}."
            f"{getattr(translators, '__qualname__', type(translators).__qualname__)}"
        ) if saved is not None else ""  # fmt: skip
        """What the translation depends on besides the config (the config's key comes with each publish)."""
        self._proxies: dict[Hashable, Proxy] = {}
        """The proxy each group was translated for (the publisher's thread)."""
        self._served: dict[Hashable, Snapshot] = {}
        """The snapshot published for each group (kept only to be saved)."""
        self._config_key: str | None = None
        """The key of the config those snapshots are of (None: unknown, nothing is saved)."""
        self._dirty = False
        self._dirty_since = 0.0
        self._save_due = 0.0
        self._restored: set[Hashable] = set()
        """Restored groups whose `_served` snapshot is still the file's (not translated again yet)."""
        self._timer: threading.Timer | None = None
        self._timer_lock = threading.Lock()
        self._closing = False
        self._sequence = 0
        """Publishes begun (the publisher's thread): what a group's translation was for."""
        self._held: dict[Hashable, Proxy] | None = None
        """Groups whose translation waits for the first accepted config (after `restore`), with their proxies."""

    # ----- the server's side (event loop): returns at once, the work runs on the publisher's thread

    def want(self, group: Hashable, node: Node) -> None:
        self._submit(self._add, group, proxy_from_node(node))

    def release(self, group: Hashable) -> None:
        self._submit(self._release, group)

    # ----- the config's side (any thread, blocking)

    def publish(self, config: Config, *, changed_at: float | None = None, key: str | None = None) -> Published:
        """Translate `config` for every group; publish all snapshots, or none and say why. `key` names the
        config's content (ConfigStore.load_keyed): the snapshots are saved under it."""
        return self._executor.submit(self._publish, config, changed_at, key).result()

    def restore(self, key: str) -> int:
        """Before the server starts: give it the snapshots saved for the config named by `key`, if there are
        any; returns how many groups it took (0: none, nothing done). Their groups are translated after the next
        accepted `publish`, and so is any group the server asks for until then (it would otherwise be
        translated for no config at all)."""
        if self._saved is None:
            return 0
        started = time.perf_counter()
        cache = SnapshotCache()
        with collector_paused() as pause:  # 50 000 entries beside a 10 000-service config: see there
            saved = self._saved.read(f"{key}|{self._saved_key}")
            if not saved:
                return 0
            snapshots = {group: cache.apply(None, g.patch()) for group, g in saved.items()}
            pause.freeze = sum(len(entries) for g in saved.values() for entries in g.types.values()) >= FREEZE_AFTER
        taken = self._sink.preload(snapshots)
        self._held = {group: _proxy_of(saved[group].proxy) for group in taken}
        # What is served now, so that translating the same content again does not rewrite the file.
        self._proxies.update(self._held)
        self._served.update((group, snapshots[group]) for group in taken)
        self._restored = set(taken)
        self._config_key = key
        log.info("serving %d saved snapshots (read in %.2f s) until the config is translated", len(taken),
                 time.perf_counter() - started)  # fmt: skip
        return len(taken)

    def hold(self) -> None:
        """Before the server starts, with nothing to serve yet: the groups it wants wait for the first accepted
        `publish` (or `release_held`), so no proxy is served a config that was not accepted, and they are
        translated meanwhile for the config the worker prefetched."""
        if self._held is None:
            self._held = {}

    def release_held(self) -> None:
        """The first config was not accepted: translate the held groups for what is published (nothing yet),
        as for a group that connects to a server that has no config."""
        self._submit(self._release_held)

    def prefetch(self, store: StoreOpener) -> None:
        """Have the worker read the store itself now, beside the caller's own read (returns at once): the
        first `publish` of the config with the same key then sends it nothing."""
        self._submit(self._worker.prefetch, store)

    @property
    def sequence(self) -> int:
        """How many publishes have begun: a group translated after publish N was translated for its config."""
        return self._sequence

    @property
    def saves(self) -> bool:
        """Whether published snapshots are saved (and `restore` can find any)."""
        return self._saved is not None

    def groups(self) -> int:
        """Groups being published for (a snapshot of the number; for status pages and tests)."""
        return len(self._groups)

    def close(self) -> None:
        """Save what is published if it changed since the last save, then stop the thread and the worker."""
        self._closing = True
        with self._timer_lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        try:
            # Always through the publisher's thread: it waits for a change in flight (whose publish may make
            # what is served dirty) before deciding, and only then is the worker stopped.
            written = self._executor.submit(self._save).result(CLOSE_SAVE_WAIT)
            if written is not None:
                written.result(CLOSE_SAVE_WAIT)
        except Exception:  # a cache: a failed save costs the next start its head start, nothing else
            log.exception("saving the published snapshots failed")
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._saver.shutdown(wait=True)  # a save in progress ends whole (it is atomic anyway)
        self._worker.close()

    # ----- the publisher's thread

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:  # the thread must outlive any one task
                if self._closing:
                    log.debug("publisher task ended by close", exc_info=True)
                else:
                    log.exception("publisher task failed")

        self._executor.submit(guarded)

    def _observe(self, outcome: Outcome) -> None:
        if self._on_translated is not None:
            for seconds in outcome.seconds:
                self._on_translated(seconds)

    def _add(self, group: Hashable, proxy: Proxy) -> None:
        if self._held is not None:
            # No config accepted yet: published after the first, translated meanwhile for the store's config
            # the worker read ahead (a start), which is usually the one accepted.
            self._held[group] = proxy
            self._worker.prepare(group, proxy)
            return
        self._groups.add(group)
        self._proxies[group] = proxy
        outcome = self._worker.add(group, proxy)
        self._observe(outcome)
        if outcome.problems:
            # The group waits (it has no good snapshot); the next accepted change tries again.
            if self._on_rejected is not None:
                self._on_rejected(outcome.problems, self._sequence)
            return
        self._record(outcome.snapshots, self._config_key)
        self._sink.set_snapshots(outcome.snapshots)

    def _release_held(self) -> None:
        held, self._held = self._held, None
        for group, proxy in (held or {}).items():
            self._add(group, proxy)

    def _release(self, group: Hashable) -> None:
        if self._held is not None:
            self._held.pop(group, None)
        self._groups.discard(group)
        self._served.pop(group, None)
        self._proxies.pop(group, None)
        self._worker.release(group)

    def _publish(self, config: Config, changed_at: float | None, key: str | None = None) -> Published:
        self._sequence += 1
        sequence = self._sequence
        outcome = self._worker.publish(config, key)
        self._observe(outcome)
        if outcome.problems:
            return Published(outcome.problems, sequence=sequence)
        self._record(outcome.snapshots, key)
        held, self._held = self._held, None
        for group, proxy in (held or {}).items():
            self._submit(self._add, group, proxy)  # after this publish returns: its caller waits for no group
        if not outcome.snapshots:
            return Published((), sequence=sequence)
        return Published((), self._sink.set_snapshots(outcome.snapshots, changed_at=changed_at), sequence)

    # ----- saving (the publisher's thread, but for the timer)

    def _record(self, snapshots: Mapping[Hashable, Snapshot], key: str | None) -> None:
        """Note what was published, and save it later if that is not what was saved or restored."""
        if self._saved is None:
            return
        changed = key != self._config_key or not all(
            _same(self._served.get(group), snapshot) for group, snapshot in snapshots.items()
        )
        self._restored.difference_update(snapshots)
        if key != self._config_key:
            # Restored snapshots not translated again are of the old key: never saved under the new one.
            for group in self._restored:
                self._served.pop(group, None)
            self._restored.clear()
        self._config_key = key
        self._served.update(snapshots)
        if not changed:
            return
        now = time.monotonic()
        if not self._dirty:
            self._dirty_since = now
        self._dirty = True
        with self._timer_lock:
            # Quiet for SAVE_AFTER, but not put off for ever by changes less than SAVE_AFTER apart.
            self._save_due = min(now + SAVE_AFTER, self._dirty_since + SAVE_MAX_DELAY)
            if self._timer is None and not self._closing:
                self._timer = self._start_timer(self._save_due - now)

    def _start_timer(self, delay: float) -> threading.Timer:
        timer = threading.Timer(delay, self._save_when_quiet)
        timer.daemon = True
        timer.start()
        return timer

    def _save_when_quiet(self) -> None:
        with self._timer_lock:
            if self._timer is None or self._closing:
                return
            wait = self._save_due - time.monotonic()
            if wait > 0:
                self._timer = self._start_timer(wait)
                return
            self._timer = None
        self._submit(self._save)

    def _save(self) -> concurrent.futures.Future[None] | None:
        """Hand what is published now to the saver thread (snapshots are immutable: the next change need not
        wait for the ~0.3 s a 10 000-service file takes to write)."""
        if self._saved is None or not self._dirty:
            return None
        if self._config_key is None or not self._served:
            self._dirty = False
            return None
        key = f"{self._config_key}|{self._saved_key}"
        served = {g: (_proxy_fields(self._proxies[g]), s) for g, s in self._served.items()}
        written = self._saver.submit(self._write, self._saved, key, served)
        self._dirty = False
        return written

    @staticmethod
    def _write(file: SnapshotFile, key: str, served: Mapping[Hashable, tuple[tuple[Any, ...], Snapshot]]) -> None:
        started = time.perf_counter()
        try:
            file.write(key, {g: SavedGroup.of(proxy, s) for g, (proxy, s) in served.items()})
        except OSError as exc:  # a cache: the next start translates first
            log.warning("could not save the published snapshots to %s: %s", file.path, exc)
            return
        except Exception:  # nobody waits on this thread's futures but `close`: say so here
            log.exception("saving the published snapshots to %s failed", file.path)
            return
        log.info("saved %d groups' snapshots in %.2f s", len(served), time.perf_counter() - started)


def _same(a: Snapshot | None, b: Snapshot) -> bool:
    return a is not None and a.keys() == b.keys() and all(a[t].version == b[t].version for t in b)


_PROXY_FIELDS = ("role", "id", "namespace", "labels", "ip")


def _proxy_fields(proxy: Proxy) -> tuple[Any, ...]:
    return tuple(getattr(proxy, f) for f in _PROXY_FIELDS)


def _proxy_of(fields: tuple[Any, ...]) -> Proxy:
    return Proxy(**dict(zip(_PROXY_FIELDS, fields, strict=True)))
