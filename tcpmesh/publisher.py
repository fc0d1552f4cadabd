"""The publisher: accepted config → one consistent snapshot per proxy group → the ADS server.

The xds server never translates. It asks for a group when the group's first stream connects (`want`), and the
publisher answers with `set_snapshots`; on every accepted config change the publisher translates every group it
serves and publishes all of them at once, or none: a change that fails to translate, or whose snapshot is
inconsistent (snapshot_check.py), is rejected like a validation error and the last good snapshots keep serving.

Translation and serialisation run in a worker (publish_worker.py): a process of its own when serving, so the
event loop keeps answering health checks and ACKs while a large config translates (docs/benchmarks.md has
the measurements of thread against process), or in-process for tests that share state with their translator.
Each group keeps an IncrementalTranslator (translation.py): an edit rebuilds, serialises and hashes only the
resources it touches, and unchanged resources keep their interned Entry (and cached wire encodings). This
module's own work (requests to the worker, handing snapshots to the server) runs on one thread of its own.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.publish_worker import ProcessWorker, ThreadWorker, Worker
from tcpmesh.translation import KIND_TYPES, Outcome, Translator, TranslatorFactory
from tcpmesh.translator import Proxy, TranslateOptions
from tcpmesh.translator.incremental import IncrementalTranslator
from tcpmesh.translator.proxy import parse_node_id
from tcpmesh.xds.cache import Snapshot
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


class SnapshotSink(Protocol):
    def set_snapshots(
        self, snapshots: Mapping[Hashable, Snapshot], *, changed_at: float | None = None
    ) -> concurrent.futures.Future[None]: ...


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


class Publisher:
    """Translates the accepted config per proxy group in a worker and publishes consistent snapshots.

    `want`/`release` are the server's callbacks (event loop); `publish` (any thread, blocking) offers a new
    config. `on_rejected` hears of problems found outside `publish` (a new group whose translation fails).
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
        on_rejected: Callable[[tuple[Problem, ...]], None] | None = None,
        on_translated: Callable[[float], None] | None = None,
        worker: WorkerKind = "thread",
    ) -> None:
        self._sink = sink
        self._on_rejected = on_rejected
        self._on_translated = on_translated
        make = ProcessWorker if worker == "process" else ThreadWorker
        self._worker: Worker = make(options, translators, source)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcpmesh-publisher")
        self._groups: set[Hashable] = set()
        """Groups being published for (written by the publisher's thread)."""

    # ----- the server's side (event loop): returns at once, the work runs on the publisher's thread

    def want(self, group: Hashable, node: Node) -> None:
        self._submit(self._add, group, proxy_from_node(node))

    def release(self, group: Hashable) -> None:
        self._submit(self._release, group)

    # ----- the config's side (any thread, blocking)

    def publish(self, config: Config, *, changed_at: float | None = None) -> Published:
        """Translate `config` for every group; publish all snapshots, or none and say why."""
        return self._executor.submit(self._publish, config, changed_at).result()

    def groups(self) -> int:
        """Groups being published for (a snapshot of the number; for status pages and tests)."""
        return len(self._groups)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._worker.close()

    # ----- the publisher's thread

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:  # the thread must outlive any one task
                log.exception("publisher task failed")

        self._executor.submit(guarded)

    def _observe(self, outcome: Outcome) -> None:
        if self._on_translated is not None:
            for seconds in outcome.seconds:
                self._on_translated(seconds)

    def _add(self, group: Hashable, proxy: Proxy) -> None:
        self._groups.add(group)
        outcome = self._worker.add(group, proxy)
        self._observe(outcome)
        if outcome.problems:
            # The group waits (it has no good snapshot); the next accepted change tries again.
            if self._on_rejected is not None:
                self._on_rejected(outcome.problems)
            return
        self._sink.set_snapshots(outcome.snapshots)

    def _release(self, group: Hashable) -> None:
        self._groups.discard(group)
        self._worker.release(group)

    def _publish(self, config: Config, changed_at: float | None) -> Published:
        outcome = self._worker.publish(config)
        self._observe(outcome)
        if outcome.problems:
            return Published(outcome.problems)
        if not outcome.snapshots:
            return Published(())
        return Published((), self._sink.set_snapshots(outcome.snapshots, changed_at=changed_at))
