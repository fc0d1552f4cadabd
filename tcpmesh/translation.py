"""The translation side of the publisher: one translator per proxy group, snapshots built and checked, and what
changed since the last published snapshot as data (cache.diff_types), so it can run in a worker process.

`Translations` holds no event-loop state and takes no callbacks: each call returns an `Outcome` that the
publisher (publisher.py) turns into snapshots served by the xds server. A change is published for every group
or for none: a group that fails to translate, or whose snapshot fails the check (snapshot_check.py), rejects it.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from google.protobuf.message import Message

from tcpmesh.model.config import RESOURCE_FIELDS, Config
from tcpmesh.model.problems import Problem
from tcpmesh.snapshot_check import check_changed, check_snapshot
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions
from tcpmesh.translator.encoded import Encoded
from tcpmesh.translator.incremental import Changes
from tcpmesh.translator.refs import Refs
from tcpmesh.xds.cache import (
    References,
    ReferencesByName,
    Snapshot,
    SnapshotCache,
    TypePatch,
    TypeSnapshot,
    diff_types,
)
from tcpmesh.xds.types import (
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    EXTENSION_CONFIG_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
)

__all__ = [
    "KIND_TYPES",
    "Outcome",
    "ReportsChanges",
    "Settles",
    "Translations",
    "Translator",
    "TranslatorFactory",
    "build_snapshot",
    "snapshot_references",
]

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


class _ByType(Mapping[str, References]):
    """One kind's references as the translator reported them (by name), with the named kinds as type URLs:
    converted per resource when the cache asks, i.e. only for the entries it makes."""

    __slots__ = ("_by_name",)

    def __init__(self, by_name: Mapping[str, Refs]) -> None:
        self._by_name = by_name

    def __getitem__(self, name: str) -> References:
        return {KIND_TYPES[kind]: names for kind, names in self._by_name[name].items()}

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def snapshot_references(resources: EnvoyResources) -> dict[str, ReferencesByName]:
    """The translator's references as the snapshot cache takes them: per type URL and name, per type URL."""
    return _by_type_url(resources.references)


def _by_type_url(references: Mapping[str, Mapping[str, Refs]]) -> dict[str, ReferencesByName]:
    return {KIND_TYPES[kind]: _ByType(by_name) for kind, by_name in references.items()}


def build_snapshot(
    cache: SnapshotCache,
    resources: EnvoyResources,
    data: Mapping[Any, Mapping[str, bytes]] | None = None,
    previous: Snapshot | None = None,
    stage: Stage | None = None,
) -> Snapshot:
    """The snapshot of a whole translator output, with its references (`data`: the bytes the translator already
    has, by field and name; `previous`: its entries are reused where the bytes are the same; `stage`: hears of
    each type as soon as it is built)."""
    data = data or {}
    by_type = {type_url: _items(kind, resources, data.get(kind, {})) for kind, type_url in KIND_TYPES.items()}
    return cache.build_serialized(by_type, previous, snapshot_references(resources), on_type=stage)


def _items(kind: str, resources: EnvoyResources, serialized: Mapping[str, bytes]) -> Iterator[tuple[str, Any, bytes]]:
    return (_item(kind, m, serialized) for m in getattr(resources, kind))


def _item(kind: str, resource: Any, serialized: Mapping[str, bytes]) -> tuple[str, Message | None, bytes]:
    """(name, message, bytes) of one resource for the snapshot: no message for an Encoded one (its bytes are
    parsed if a reader asks), whose name and bytes are at hand (70 000 of them at 10 000 services)."""
    if type(resource) is Encoded:
        return resource.name, None, resource.data
    name = _name(kind, resource)
    return name, resource, serialized.get(name) or resource.SerializeToString(deterministic=True)


def _message(resource: Any) -> Message | None:
    """What the snapshot keeps as a resource's message: none for an Encoded one (parsed from its bytes if asked)."""
    return None if isinstance(resource, Encoded) else resource


class Translator(Protocol):
    """What the publisher needs of a translator: IncrementalTranslator's shape (tests wrap it to inject faults)."""

    def update(self, config: Config) -> EnvoyResources: ...

    def serialized(self) -> Mapping[Any, Mapping[str, bytes]]:
        """Deterministic bytes of the resources `update` last returned, by EnvoyResources field and name."""
        ...


@runtime_checkable
class ReportsChanges(Protocol):
    """A translator that can also `advance` to a config and say what that changed (IncrementalTranslator): the
    snapshot is then patched with those resources instead of rebuilt from every one, and the translator never
    assembles its whole output."""

    changes: Changes

    def advance(self, config: Config) -> None: ...

    def messages(self) -> Mapping[Any, Mapping[str, Message]]: ...

    def current_references(self) -> Mapping[str, Mapping[str, Refs]]: ...


@runtime_checkable
class Settles(Protocol):
    """A translator that leaves part of a full translation's bookkeeping for later (IncrementalTranslator)."""

    def settle(self) -> None: ...


TranslatorFactory = Callable[[Proxy, TranslateOptions], Translator]

Stage = Callable[[str, TypeSnapshot], None]
"""Hears of each type of a snapshot as it is built (before the snapshot is checked): see `prepare`."""

GroupPatch = dict[str, TypePatch]
"""What changed in one group's published snapshot, per type URL."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one call: problems (nothing was published), or else each group whose published snapshot
    changed: its snapshot (in-process use) or its patch (`diffs`; `fresh`: from nothing); `seconds`: each
    translation's duration."""

    problems: tuple[Problem, ...] = ()
    snapshots: Mapping[Hashable, Snapshot] = field(default_factory=dict)
    patches: Mapping[Hashable, GroupPatch] = field(default_factory=dict)
    fresh: frozenset[Hashable] = frozenset()
    seconds: tuple[float, ...] = ()
    staged: frozenset[Hashable] = frozenset()
    """Fresh groups whose snapshot is the one handed to `prepare`'s `stage`, type by type: no patch (`diffs`)."""


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
    fields = [(getattr(old, f), getattr(new, f)) for f in RESOURCE_FIELDS]
    bound = max(64, sum(max(len(a), len(b)) for a, b in fields) * FULL_FRACTION)
    pairs = [(a, b) for a, b in fields if a is not b]  # a kind the edit left alone is the same tuple
    # Counting the resources that are not the very same object runs in C (or is known from the lineage: an
    # edit at 10 000 services is then O(1) here); equality is only asked of those.
    if sum(_moved_count(new, a, b) for a, b in pairs) <= bound:
        return False
    changed = 0
    for a, b in pairs:
        changed += abs(len(a) - len(b)) + sum(1 for x, y in zip(a, b, strict=False) if x is not y and x != y)
    return changed > bound


def _moved_count(config: Config, old: tuple[Any, ...], new: tuple[Any, ...]) -> int:
    """How many positions of `new` (a field of `config`) hold another object than `old`'s (plus any length
    difference)."""
    known = config.moved(old, new)
    if known is not None:
        return len(known)
    return abs(len(old) - len(new)) + sum(map(operator.is_not, old, new))


def _name(kind: str, message: Any) -> str:
    return str(message.cluster_name if kind == "endpoints" else message.name)


class Translations:
    """Per proxy group: a translator, its last built and last published snapshot. Single-threaded."""

    def __init__(
        self,
        options: TranslateOptions,
        translators: TranslatorFactory,
        source: str = "<config>",
        *,
        diffs: bool = False,
    ) -> None:
        """`diffs`: outcomes carry patches (for another process) instead of snapshots."""
        self._diffs = diffs
        self._options = options
        self._translators = translators
        self._source = source
        self._cache = SnapshotCache()
        self._groups: dict[Hashable, _Group] = {}
        self._staged: dict[Hashable, Snapshot] = {}
        """Per group, the snapshot `prepare` staged (handed out type by type), until a publish publishes it."""
        self.config = Config()
        """The last published config: what a group that connects later is translated for."""

    def add(self, group: Hashable, proxy: Proxy) -> Outcome:
        """A group the server wants: its snapshot for the published config (the whole of it: `fresh`)."""
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(proxy, self._translators(proxy, self._options))
        if g.published is not None:  # asked again (its first stream's snapshot is being served): unchanged
            return self._outcome({group: g.published}, {group: g.published}, ())
        started = time.perf_counter()
        snapshot, problems = self._translate(g, self.config)
        seconds = (time.perf_counter() - started,)
        if problems:
            return Outcome(problems, seconds=seconds)  # the group waits; the next accepted change retries
        g.published = snapshot
        assert snapshot is not None
        return self._outcome({group: snapshot}, None, seconds, fresh=frozenset({group}))

    def _outcome(
        self,
        snapshots: dict[Hashable, Snapshot],
        before: Mapping[Hashable, Snapshot | None] | None,
        seconds: tuple[float, ...],
        fresh: frozenset[Hashable] = frozenset(),
    ) -> Outcome:
        staged = {g for g, s in snapshots.items() if self._staged.pop(g, None) is s and g in fresh}
        if not self._diffs:
            return Outcome(snapshots=snapshots, fresh=fresh, seconds=seconds)
        patches = {g: {} if g in staged else diff_types(before.get(g) if before else None, s)
                   for g, s in snapshots.items()}  # fmt: skip
        return Outcome(patches=patches, fresh=fresh, seconds=seconds, staged=frozenset(staged))

    def prepare(self, group: Hashable, proxy: Proxy, config: Config, stage: Stage | None = None) -> bool:
        """Translate a group the server wants for a config not accepted yet, but about to be (at a start, the
        store's, read by the worker ahead of the serving process): its `publish` then publishes the group without
        translating it again. Nothing is published here; a failure shows again, and is reported, at the publish.

        `stage` hears of each type of the snapshot as it is built, before the snapshot is checked (the worker
        sends them to the serving process while it builds the next): True if the snapshot it was given passed
        the check, and its publish will then say `staged` instead of carrying a patch."""
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(proxy, self._translators(proxy, self._options))
        if g.published is not None or g.config is not None:
            return False
        snapshot, problems = self._translate(g, config, stage)
        if stage is None or snapshot is None or problems:
            return False
        self._staged[group] = snapshot
        return True

    def release(self, group: Hashable) -> None:
        self._groups.pop(group, None)
        self._staged.pop(group, None)

    def settle(self) -> None:
        """What the translators left for later (`Settles`): call it once the last outcome has been sent."""
        for g in self._groups.values():
            if isinstance(g.translator, Settles):
                g.translator.settle()

    def publish(self, config: Config) -> Outcome:
        """Translate `config` for every group: every changed group's patch, or the problems and nothing."""
        snapshots: dict[Hashable, Snapshot] = {}
        problems: list[Problem] = []
        seconds: list[float] = []
        for group, g in self._groups.items():
            started = time.perf_counter()
            snapshot, found = self._translate(g, config)
            seconds.append(time.perf_counter() - started)
            if snapshot is not None:
                snapshots[group] = snapshot
            problems.extend(found)
        if problems:
            log.error(
                "config change rejected: %d translation problems; last good snapshots keep serving", len(problems)
            )
            return Outcome(tuple(problems), seconds=tuple(seconds))
        self.config = config
        changed: dict[Hashable, Snapshot] = {}
        before: dict[Hashable, Snapshot | None] = {}
        for group, snapshot in snapshots.items():
            g = self._groups[group]
            if snapshot is not g.published:
                before[group], changed[group] = g.published, snapshot
                g.published = snapshot
        fresh = frozenset(group for group, was in before.items() if was is None)  # prepared ones, published now
        return self._outcome(changed, before, tuple(seconds), fresh=fresh)

    def _translate(
        self, g: _Group, config: Config, stage: Stage | None = None
    ) -> tuple[Snapshot | None, tuple[Problem, ...]]:
        try:
            if g.config is not None and _mostly_changed(g.config, config):
                g.restart(self._translators, self._options)
            base = g.built if g.config is not None else None
            g.config = config
            translator = g.translator
            if base is not None and isinstance(translator, ReportsChanges):
                translator.advance(config)
                snapshot, changed = self._patched(base, translator), _changed_names(translator.changes)
            else:
                resources = translator.update(config)
                built = build_snapshot(self._cache, resources, translator.serialized(), g.published, stage)
                snapshot, changed = built, None
        except Exception as exc:
            log.exception("translating for proxy %s failed", g.proxy.id)
            # Its state may be half updated: start over (a full translation) next time.
            g.restart(self._translators, self._options)
            message = f"translating for proxy {g.proxy.id} failed: {type(exc).__name__}: {exc}"
            return None, (Problem(file=self._source, message=message),)
        if snapshot is g.built and g.consistent:
            return snapshot, ()  # unchanged: it was checked when it was built
        if changed is not None and g.consistent and snapshot is not None:
            bad = check_changed(snapshot, changed)
        else:
            bad = check_snapshot(snapshot)
        g.built, g.consistent = snapshot, not bad
        problems = tuple(
            Problem(file=self._source, kind=i.kind, name=i.name, message=f"{i.message} (proxy {g.proxy.id})")
            for i in bad
        )
        return (None, problems) if problems else (snapshot, ())

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
                patch[type_url] = ([(n, _message(messages[kind][n]), data[kind][n]) for n in names], removed)
        return self._cache.patch(base, patch, _by_type_url(translator.current_references()))


def _changed_names(changes: Changes) -> dict[str, Iterable[str]] | None:
    """The resources to check after a patch, per type URL; None (check everything) when any was removed: only a
    removal can break a reference held by a resource that did not change."""
    if any(changes.removed.get(kind) for kind in KIND_TYPES if kind != "listeners"):  # type: ignore[call-overload]
        return None
    return {type_url: changes.changed.get(kind, frozenset()) for kind, type_url in KIND_TYPES.items()}  # type: ignore[call-overload]
