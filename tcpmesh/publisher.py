"""The publisher: accepted config → one consistent snapshot per proxy group → the ADS server.

The xds server never translates. It asks for a group when the group's first stream connects (`want`), and the
publisher answers with `set_snapshots`; on every accepted config change the publisher translates every group it
serves and publishes all of them at once, or none: a change that fails to translate, or whose snapshot is
inconsistent (snapshot_check.py), is rejected like a validation error and the last good snapshots keep serving.

All translation and serialisation runs on one worker thread, so the event loop keeps answering health checks
and ACKs while a large config translates (docs/architecture.md has the measurements behind a thread rather than
a process). Each group keeps an IncrementalTranslator: an edit rebuilds, serialises and hashes only the
resources it touches, and unchanged resources keep their interned Entry (and cached wire encodings).
"""

from __future__ import annotations

import concurrent.futures
import logging
import operator
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import Message

from tcpmesh.model.config import Config
from tcpmesh.model.problems import Problem
from tcpmesh.snapshot_check import check_changed, check_snapshot
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions
from tcpmesh.translator.incremental import Changes, IncrementalTranslator
from tcpmesh.translator.proxy import parse_node_id
from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.types import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
    Node,
)

__all__ = ["KIND_TYPES", "Published", "Publisher", "Translator", "TranslatorFactory", "proxy_from_node", "proxy_group"]

log = logging.getLogger(__name__)

KIND_TYPES: Mapping[str, str] = {
    "clusters": CLUSTER_TYPE,
    "endpoints": ENDPOINT_TYPE,
    "listeners": LISTENER_TYPE,
    "extension_configs": EXTENSION_CONFIG_TYPE,
    "routes": ROUTE_TYPE,
    "secrets": SECRET_TYPE,
}
"""EnvoyResources field → the xDS type URL its resources are served as."""


class Translator(Protocol):
    """What the publisher needs of a translator: IncrementalTranslator's shape (tests wrap it to inject faults)."""

    def update(self, config: Config) -> EnvoyResources: ...

    def serialized(self) -> Mapping[Any, Mapping[str, bytes]]:
        """Deterministic bytes of the resources `update` last returned, by EnvoyResources field and name."""
        ...


@runtime_checkable
class ReportsChanges(Protocol):
    """A translator that also says what its last `update` changed (IncrementalTranslator): the publisher then
    patches the group's snapshot with those resources instead of rebuilding it from every one."""

    changes: Changes

    def messages(self) -> Mapping[Any, Mapping[str, Message]]: ...


TranslatorFactory = Callable[[Proxy, TranslateOptions], Translator]


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


@dataclass(eq=False)
class _Group:
    proxy: Proxy
    translator: Translator
    published: Snapshot | None = None
    config: Config | None = None
    """The config the translator last translated."""
    built: Snapshot | None = None
    """The snapshot of the translator's last output (published or not): what its next changes patch."""
    consistent: bool = False
    """`built` passed the snapshot check (a patch of it then only needs its changed resources checked)."""

    def restart(self, translators: TranslatorFactory, options: TranslateOptions) -> None:
        """A fresh translator: the next update is a full translation, and nothing is patched."""
        self.translator = translators(self.proxy, options)
        self.config = self.built = None
        self.consistent = False


FULL_FRACTION = 0.1
"""Above this share of changed resources a fresh translator (one full translation) is cheaper than patching:
measured at 10 000 services, patching every resource takes ~80 s where a full translation takes ~5 s."""


def _mostly_changed(old: Config, new: Config) -> bool:
    """More than FULL_FRACTION of the resources differ (position by position, per kind): a cheap bound, since
    unequal resources usually differ in their first fields (meta) and equal ones are mostly the same objects."""
    pairs = [(getattr(old, f), getattr(new, f)) for f in Config.__dataclass_fields__]
    bound = max(64, sum(max(len(a), len(b)) for a, b in pairs) * FULL_FRACTION)
    # Counting the resources that are not the very same object runs in C; equality is only asked of those.
    if sum(abs(len(a) - len(b)) + sum(map(operator.is_not, a, b)) for a, b in pairs) <= bound:
        return False
    changed = 0
    for a, b in pairs:
        changed += abs(len(a) - len(b)) + sum(1 for x, y in zip(a, b, strict=False) if x is not y and x != y)
    return changed > bound


def _name(kind: str, message: Any) -> str:
    return str(message.cluster_name if kind == "endpoints" else message.name)


class Publisher:
    """Translates the accepted config per proxy group on a worker thread and publishes consistent snapshots.

    `want`/`release` are the server's callbacks (event loop); `publish` (any thread, blocking) offers a new
    config. `on_rejected` hears of problems found outside `publish` (a new group whose translation fails).
    """

    def __init__(
        self,
        sink: SnapshotSink,
        options: TranslateOptions,
        *,
        references: Callable[[Message], Iterable[str]],
        translators: TranslatorFactory = IncrementalTranslator,
        source: str = "<config>",
        on_rejected: Callable[[tuple[Problem, ...]], None] | None = None,
        on_translated: Callable[[float], None] | None = None,
    ) -> None:
        self._sink = sink
        self._options = options
        self._references = references
        self._translators = translators
        self._source = source
        self._on_rejected = on_rejected
        self._on_translated = on_translated
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcpmesh-publisher")
        # Owned by the worker thread: nothing else reads or writes these.
        self._cache = SnapshotCache()
        self._groups: dict[Hashable, _Group] = {}
        self._config = Config()

    # ----- the server's side (event loop): returns at once, the work runs on the worker

    def want(self, group: Hashable, node: Node) -> None:
        self._submit(self._add, group, proxy_from_node(node))

    def release(self, group: Hashable) -> None:
        self._submit(self._groups.pop, group, None)

    # ----- the config's side (any thread, blocking)

    def publish(self, config: Config, *, changed_at: float | None = None) -> Published:
        """Translate `config` for every group; publish all snapshots, or none and say why."""
        return self._executor.submit(self._publish, config, changed_at).result()

    def groups(self) -> int:
        """Groups being published for (a snapshot of the number; for status pages and tests)."""
        return len(self._groups)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ----- the worker

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        def guarded() -> None:
            try:
                fn(*args)
            except Exception:  # the worker must outlive any one task
                log.exception("publisher task failed")

        self._executor.submit(guarded)

    def _add(self, group: Hashable, proxy: Proxy) -> None:
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(proxy, self._translators(proxy, self._options))
        if g.published is None:
            snapshot, problems = self._translate(g, self._config)
            if problems:
                # The group waits (it has no good snapshot); the next accepted change tries again.
                if self._on_rejected is not None:
                    self._on_rejected(problems)
                return
            g.published = snapshot
        assert g.published is not None
        self._sink.set_snapshots({group: g.published})

    def _publish(self, config: Config, changed_at: float | None) -> Published:
        snapshots: dict[Hashable, Snapshot] = {}
        problems: list[Problem] = []
        for group, g in self._groups.items():
            snapshot, found = self._translate(g, config)
            if snapshot is not None:
                snapshots[group] = snapshot
            problems.extend(found)
        if problems:
            log.error(
                "config change rejected: %d translation problems; last good snapshots keep serving", len(problems)
            )
            return Published(tuple(problems))
        self._config = config
        changed: dict[Hashable, Snapshot] = {}
        for group, snapshot in snapshots.items():
            g = self._groups[group]
            if snapshot is not g.published:
                changed[group] = g.published = snapshot
        if not changed:
            return Published(())
        return Published((), self._sink.set_snapshots(changed, changed_at=changed_at))

    def _translate(self, g: _Group, config: Config) -> tuple[Snapshot | None, tuple[Problem, ...]]:
        started = time.perf_counter()
        referring = dict.fromkeys((LISTENER_TYPE, EXTENSION_CONFIG_TYPE), self._references)
        try:
            if g.config is not None and _mostly_changed(g.config, config):
                g.restart(self._translators, self._options)
            base = g.built if g.config is not None else None
            g.config = config
            resources = g.translator.update(config)
            translator = g.translator
            if base is not None and isinstance(translator, ReportsChanges):
                snapshot, changed = self._patched(base, translator), _changed_names(translator.changes)
            else:
                snapshot, changed = self._built(resources, translator.serialized(), g.published, referring), None
        except Exception as exc:
            log.exception("translating for proxy %s failed", g.proxy.id)
            # Its state may be half updated: start over (a full translation) next time.
            g.restart(self._translators, self._options)
            message = f"translating for proxy {g.proxy.id} failed: {type(exc).__name__}: {exc}"
            return None, (Problem(file=self._source, message=message),)
        finally:
            if self._on_translated is not None:
                self._on_translated(time.perf_counter() - started)
        if snapshot is g.built and g.consistent:
            return snapshot, ()  # unchanged: it was checked when it was built
        if changed is not None and g.consistent and snapshot is not None:
            bad = check_changed(snapshot, changed, self._references)
        else:
            bad = check_snapshot(snapshot, self._references)
        g.built, g.consistent = snapshot, not bad
        problems = tuple(
            Problem(file=self._source, kind=i.kind, name=i.name, message=f"{i.message} (proxy {g.proxy.id})")
            for i in bad
        )
        return (None, problems) if problems else (snapshot, ())

    def _built(
        self,
        resources: EnvoyResources,
        data: Mapping[Any, Mapping[str, bytes]],
        previous: Snapshot | None,
        referring: Mapping[str, Callable[[Message], Iterable[str]]],
    ) -> Snapshot:
        """The snapshot of the whole output (reusing `previous`'s entries where the bytes are the same)."""
        by_type = {}
        for kind, type_url in KIND_TYPES.items():
            messages = getattr(resources, kind)
            serialized = data.get(kind, {})
            by_type[type_url] = [
                (name, m, serialized.get(name) or m.SerializeToString(deterministic=True))
                for m in messages
                for name in (_name(kind, m),)
            ]
        return self._cache.build_serialized(by_type, previous, referring)

    def _patched(self, base: Snapshot, translator: ReportsChanges) -> Snapshot:
        """`base` patched with what the translator's last update changed: the cost of the edit, not the config."""
        changes = translator.changes
        if changes.mode == "unchanged":
            return base
        messages, data = translator.messages(), translator.serialized()  # type: ignore[attr-defined]
        patch = {}
        for kind, type_url in KIND_TYPES.items():
            names = changes.changed.get(kind, frozenset())  # type: ignore[call-overload]
            removed = changes.removed.get(kind, frozenset())  # type: ignore[call-overload]
            if names or removed:
                patch[type_url] = ([(n, messages[kind][n], data[kind][n]) for n in names], removed)
        referring = dict.fromkeys((LISTENER_TYPE, EXTENSION_CONFIG_TYPE), self._references)
        return self._cache.patch(base, patch, referring)


def _changed_names(changes: Changes) -> dict[str, Iterable[str]] | None:
    """The resources to check after a patch, per type URL; None (check everything) when any was removed: only a
    removal can break a reference held by a resource that did not change."""
    if any(changes.removed.get(kind) for kind in KIND_TYPES if kind != "listeners"):  # type: ignore[call-overload]
        return None
    return {type_url: changes.changed.get(kind, frozenset()) for kind, type_url in KIND_TYPES.items()}  # type: ignore[call-overload]
