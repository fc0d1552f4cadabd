"""Serialised, versioned resources: what a proxy should have, as immutable values.

Versions are hashes of deterministic serialisations, so a restarted server re-serves the same version strings
and Envoy sees no change. Identical content is interned, so proxies with byte-identical resources share storage.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import operator
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from google.protobuf.message import Message

from tcpmesh.xds.interned import InternTable
from tcpmesh.xds.types import Resources, push_rank, resource_name, type_url_of

log = logging.getLogger(__name__)

_DIGEST_SIZE = 8  # 16 hex characters: short in logs, collisions irrelevant at mesh sizes


def resource_version(data: bytes) -> str:
    """Version of one resource: a short hash of its deterministic serialisation."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


_SUM_BITS = 128
_SUM_MASK = (1 << _SUM_BITS) - 1


def pair_digest(name: str, version: str) -> int:
    """One (name, resource version) pair's term of a set's digest."""
    data = hashlib.blake2b(f"{name}\0{version}".encode(), digest_size=_SUM_BITS // 8).digest()
    return int.from_bytes(data, "little")


def set_digest(versions: Iterable[tuple[str, str]]) -> int:
    """A multiset hash of (name, resource version) pairs: the sum of their digests (mod 2**128). Independent
    of order and updated by adding and subtracting terms, so an edit re-versions a type of 10 000 resources
    in the time of its changed ones."""
    return sum(pair_digest(n, v) for n, v in versions) & _SUM_MASK


def digest_version(digest: int) -> str:
    return hashlib.blake2b(digest.to_bytes(_SUM_BITS // 8, "little"), digest_size=_DIGEST_SIZE).hexdigest()


def content_version(versions: Iterable[tuple[str, str]]) -> str:
    """Version of a set of resources: a hash of their (name, resource version) pairs, whatever their order."""
    return digest_version(set_digest(versions))


class Wire:
    """An entry's encodings as a response element, made on first use by payload.py as (type URL, bytes), and its
    message when parsed from the bytes: shared by every stream and group that sends the resource. The only
    mutable part of an Entry, and a memo."""

    __slots__ = ("delta", "message", "sotw")

    def __init__(self) -> None:
        self.sotw: tuple[str, bytes] | None = None
        self.delta: tuple[str, bytes] | None = None
        self.message: Message | None = None


References = Mapping[str, frozenset[str]]
"""The names of other resources one resource depends on, per type URL of those (a listener's clusters: it may
only be sent once they are; the filter configs and route configs it names: they must be served)."""

NO_REFERENCES: References = MappingProxyType({})

ReferencesByName = Mapping[str, References]
"""Per resource name of one type, what it references (names that reference nothing may be left out)."""


def message_class(type_url: str) -> type[Message]:
    """The protobuf class of a served type URL (the modules are imported on first use)."""
    from google.protobuf import symbol_database

    from tcpmesh.xds import protos  # noqa: F401  (registers the served types)

    found: type[Message] = symbol_database.Default().GetSymbol(type_url.rsplit("/", 1)[-1])
    return found


class Entry:
    """One resource: its name, version (hash of `data`), deterministic bytes and the message itself (`parsed`,
    when the builder had it; else parsed from `data` on first use of `message`: a snapshot published by the
    translation worker process carries bytes only). Equal by name, version and bytes.

    Immutable (Final: the type checker refuses a store), but not a frozen dataclass: its `object.__setattr__`
    per field cost ~1.5 µs of each of the 70 000 entries a 10 000-service snapshot makes, twice at a start (the
    translation worker builds them, the serving process mirrors them)."""

    __slots__ = ("__weakref__", "data", "digest", "name", "parsed", "references", "type_url", "version", "wire")

    def __init__(
        self,
        name: str,
        version: str,
        data: bytes,
        parsed: Message | None,
        *,
        references: References = NO_REFERENCES,
        digest: int = -1,
        type_url: str = "",
    ) -> None:
        self.name: Final = name
        self.version: Final = version
        self.data: Final = data
        self.parsed: Final = parsed
        self.wire: Final = Wire()
        self.references: Final = references
        """What this resource depends on, per type URL, as the application reported it with the resource (the
        xds layer never reads it from the message): make-before-break ordering and the snapshot check use it."""
        self.digest: Final = digest
        """`pair_digest(name, version)`, the entry's term in its type's version (-1: not computed)."""
        self.type_url: Final = type_url

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return self.name == other.name and self.version == other.version and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.data))

    def __repr__(self) -> str:
        return f"Entry(name={self.name!r}, version={self.version!r}, data={self.data!r})"

    def term(self) -> int:
        return self.digest if self.digest >= 0 else pair_digest(self.name, self.version)

    @property
    def message(self) -> Message:
        if self.parsed is not None:
            return self.parsed
        found = self.wire.message
        if found is None:
            found = self.wire.message = message_class(self.type_url).FromString(self.data)
        return found

    def peek(self, message_type: type[Message] | None = None) -> Message:
        """The message, as `message`, but one parsed here is not kept: for a reader that looks once (the snapshot
        check reads 30 000 clusters' discovery type at a 10 000-service start; each kept message holds a few KB,
        and parsing into one took ~3× longer than into a message dropped at once). `message_type`: the class of
        `type_url`, when the caller has it (looking it up costs more than the parse)."""
        if self.parsed is not None:
            return self.parsed
        if self.wire.message is not None:
            return self.wire.message
        return (message_type or message_class(self.type_url)).FromString(self.data)


WireEntry = tuple[str, str, bytes, "dict[str, frozenset[str]] | None", int]
"""An Entry as the translation worker sends it: name, version, bytes, references (None: none), digest."""


@dataclass(frozen=True, slots=True)
class TypePatch:
    """One type's change between two snapshots, as data: `put` entries and `removed` names; `full`: `put` is the
    whole type, in name order (the receiver starts from nothing)."""

    put: tuple[WireEntry, ...]
    removed: tuple[str, ...] = ()
    full: bool = False


def diff_types(old: Snapshot | None, new: Snapshot) -> dict[str, TypePatch]:
    """What turns `old` into `new`, per changed type (every type in full when `old` is None). Patched types
    know their lineage, so an edit costs its changed entries; otherwise entries are compared by identity."""
    out: dict[str, TypePatch] = {}
    type_urls = [*new, *(t for t in (old or {}) if t not in new)]
    for type_url in type_urls:
        after = new.get_type(type_url)
        before = old.get_type(type_url) if old is not None else None
        if before is after:
            continue
        if before is None or not before.entries:
            out[type_url] = full_patch(after)
        else:
            put, removed = type_changes(before, after)
            out[type_url] = TypePatch(tuple(_wire(after.entries[n]) for n in put), tuple(removed))
    return out


def type_changes(before: TypeSnapshot, after: TypeSnapshot) -> tuple[list[str], list[str]]:
    """The names `after` puts (new or changed) and removes against `before`: from the lineage when `after` was
    patched from `before`, so an edit costs its changed entries; otherwise by identity (entries are interned)."""
    if after is before:
        return [], []
    if after.base is before.entries:
        return sorted(after.changed), sorted(after.removed)
    # By identity, in C (map/compress, no Python loop): a traffic report compares 10 000 entries every second.
    was, now = before.entries, after.entries
    put = list(itertools.compress(now, map(operator.is_not, map(was.get, now), now.values())))
    if len(was) == len(now) and all(map(was.__contains__, put)):
        return put, []  # the same names: nothing removed
    return put, list(itertools.compress(was, map(operator.not_, map(now.__contains__, was))))


def full_patch(ts: TypeSnapshot) -> TypePatch:
    """The whole of `ts` as a patch (what a receiver holding nothing of the type needs)."""
    return TypePatch(tuple(map(_wire, ts.entries.values())), full=True)


def _wire(e: Entry) -> WireEntry:
    return (e.name, e.version, e.data, dict(e.references) if e.references else None, e.term())


_SUBSETS_KEPT = 32


@dataclass(frozen=True, slots=True)
class Subset:
    """The named resources of one type snapshot and their content version, with their lineage: derived from
    `base` (another subset of the same type snapshot, so equal names are equal entries) by adding the
    `added` names and dropping the `removed` ones. A stream holding exactly `base` sends only the difference."""

    entries: Mapping[str, Entry]
    version: str
    digest: int
    base: Mapping[str, Entry] | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


@dataclass(frozen=True, weakref_slot=True, slots=True)
class TypeSnapshot:
    """All resources of one type for one proxy, by name, plus the type's version string."""

    type_url: str
    entries: Mapping[str, Entry]
    version: str
    _subsets: dict[frozenset[str], Subset] = field(default_factory=dict, compare=False, repr=False)
    """Memo of `subset` per name set (bounded): state of this value, living and dying with it."""
    digest: int | None = field(default=None, compare=False, repr=False)
    """`set_digest` of the entries, when known: a patched type re-versions from it."""
    base: Mapping[str, Entry] | None = field(default=None, compare=False, repr=False)
    """For a patched type, the entries it was patched from (one level: the base's own base is not kept), so a
    stream holding exactly those learns what changed from `changed` and `removed` instead of comparing all."""
    changed: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    removed: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    covers: tuple[frozenset[str], ...] = field(default=(), compare=False, repr=False)
    """Name sets known to include every name here (inherited from the type this was patched from when no name
    came), so a stream subscribed to all of them by name is answered without a pass over 10 000 names."""

    def versions(self) -> dict[str, str]:
        return {name: e.version for name, e in self.entries.items()}

    def subset(self, names: frozenset[str]) -> tuple[Mapping[str, Entry], str]:
        """The named resources and their content version (see `subset_of`)."""
        found = self.subset_of(names)
        return found.entries, found.version

    def subset_of(self, names: frozenset[str]) -> Subset:
        """The named resources and their content version, computed once per name set: every stream of a group
        subscribes to the same names, so this is shared across them. Read-only mapping.

        Envoy subscribes to filter configs one request per listener it builds, so at 10 000 listeners the
        subscription grows by one name 10 000 times: each set is derived from the last one memoized (a C-level
        copy plus the difference), not rebuilt, and says so in its lineage."""
        found = self._subsets.get(names)
        if found is not None:
            return found
        entries = self.entries
        derived = self._derived(names)
        if names in self.covers or (len(names) >= len(entries) and names.issuperset(entries.keys())):
            # The usual subscription: every resource (EDS, ECDS of its listeners), as the type's own mapping.
            digest = self.digest if self.digest is not None else sum(e.term() for e in entries.values()) & _SUM_MASK
            if derived is not None:
                found = Subset(entries, self.version, digest, derived.base, derived.added, derived.removed)
            else:
                found = Subset(entries, self.version, digest)
        else:
            found = derived or _subset_from(entries, names)
        if len(self._subsets) >= _SUBSETS_KEPT:
            del self._subsets[next(iter(self._subsets))]
        self._subsets[names] = found
        return found

    def _derived(self, names: frozenset[str]) -> Subset | None:
        """`names`' subset from the last one memoized, when the two differ by less than half of `names`."""
        if not self._subsets:
            return None
        last_names = next(reversed(self._subsets))
        last = self._subsets[last_names]
        added = names - last_names
        removed = last_names - names
        if 2 * (len(added) + len(removed)) >= len(names):
            return None
        entries = self.entries
        wanted = _copied(last.entries)
        digest = last.digest
        gone: list[str] = []
        for name in removed:
            entry = wanted.pop(name, None)
            if entry is not None:
                digest -= entry.term()
                gone.append(name)
        new: list[str] = []
        for name in added:
            entry = entries.get(name)
            if entry is not None:
                wanted[name] = entry
                digest += entry.term()
                new.append(name)
        digest &= _SUM_MASK
        return Subset(wanted, digest_version(digest), digest, last.entries, tuple(new), tuple(gone))


_COVERS_KEPT = 4


def _covering(ts: TypeSnapshot) -> tuple[frozenset[str], ...]:
    """The name sets known to cover every name of `ts`: its own, and those its memo answered with all entries."""
    try:
        # One C-level copy: the memo belongs to the streams' thread, and this runs on the publisher's.
        memo = tuple(ts._subsets.items())
    except RuntimeError:  # it changed size meanwhile (a collection ran Python code mid-copy): skip the hint
        memo = ()
    found = [names for names, sub in memo if sub.entries is ts.entries]
    return tuple(dict.fromkeys([*reversed(found), *ts.covers]))[:_COVERS_KEPT]


def _copied(entries: Mapping[str, Entry]) -> dict[str, Entry]:
    """A dict copy of a type's entries: the mapping's own copy (a clone of the dict behind a MappingProxyType,
    ~20 µs at 10 000) where `dict(proxy)` would walk it key by key (~550 µs)."""
    copy = getattr(entries, "copy", None)
    found = copy() if copy is not None else None
    return found if isinstance(found, dict) else dict(entries)


def _subset_from(entries: Mapping[str, Entry], names: frozenset[str]) -> Subset:
    wanted = {n: entries[n] for n in sorted(names) if n in entries}
    digest = sum(e.term() for e in wanted.values()) & _SUM_MASK
    return Subset(wanted, digest_version(digest), digest)


EMPTY_VERSION = content_version(())


def subset(ts: TypeSnapshot, names: frozenset[str]) -> tuple[Mapping[str, Entry], str]:
    """`ts.subset(names)`."""
    return ts.subset(names)


class Snapshot(Mapping[str, TypeSnapshot]):
    """Resources for one proxy, per type URL; iteration follows the push order. Types not generated are empty."""

    __slots__ = ("__weakref__", "_types")

    def __init__(self, types: Mapping[str, TypeSnapshot]) -> None:
        self._types = MappingProxyType(dict(sorted(types.items(), key=lambda kv: push_rank(kv[0]))))

    def __getitem__(self, type_url: str) -> TypeSnapshot:
        return self._types[type_url]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def get_type(self, type_url: str) -> TypeSnapshot:
        """The type's resources, empty if the generator produced none of that type."""
        found = self._types.get(type_url)
        return found if found is not None else TypeSnapshot(type_url, MappingProxyType({}), EMPTY_VERSION)

    def messages(self) -> dict[str, dict[str, Message]]:
        return {t: {n: e.message for n, e in ts.entries.items()} for t, ts in self._types.items()}

    def __repr__(self) -> str:
        inner = ", ".join(f"{t.rsplit('.', 1)[-1]}={len(ts.entries)}@{ts.version}" for t, ts in self.items())
        return f"Snapshot({inner})"


EMPTY_SNAPSHOT = Snapshot({})


class SnapshotCache:
    """Builds Snapshots from generated messages and interns identical content.

    Interning is by content hash: storage is shared while some proxy uses it and freed when none does (entries
    at the next sweep of their table, interned.py; type snapshots at once, by weak reference). Not thread-safe:
    one thread (the publisher's worker) builds with it.
    """

    def __init__(self) -> None:
        self._entries: InternTable[tuple[str, str, str], Entry] = InternTable()
        self._types: weakref.WeakValueDictionary[tuple[str, str], TypeSnapshot] = weakref.WeakValueDictionary()

    def build(self, resources: Resources, references: Mapping[str, ReferencesByName] | None = None) -> Snapshot:
        """Serialise and version `resources` (with what they reference, per type URL and name). A duplicate
        name keeps the first resource (and is logged)."""
        references = references or {}
        types: dict[str, TypeSnapshot] = {}
        for type_url, messages in resources.items():
            types[type_url] = self._build_type(type_url, messages, references.get(type_url, {}))
        return Snapshot(types)

    def build_serialized(
        self,
        resources: Mapping[str, Iterable[tuple[str, Message | None, bytes]]],
        previous: Snapshot | None = None,
        references: Mapping[str, ReferencesByName] | None = None,
        on_type: Callable[[str, TypeSnapshot], None] | None = None,
    ) -> Snapshot:
        """Like `build`, for (name, message, deterministic bytes) the caller already has. A resource whose bytes
        are the very object `previous` holds keeps its Entry, and a type with nothing new keeps its TypeSnapshot,
        so an edit costs what it changed, not the size of the config. `references` (per type URL and name) is
        what each resource references: a function of its content, so equal bytes keep their Entry's. `on_type`
        hears of each type as soon as it is built (a caller can send one while the next is made; `resources`
        may then be lazy, one iterable per type)."""
        types: dict[str, TypeSnapshot] = {}
        with self._entries.batch():
            for type_url, ts in self._build_types(resources, previous, references):
                types[type_url] = ts
                if on_type is not None:
                    on_type(type_url, ts)
        if (
            previous is not None
            and len(previous) == len(types)
            and all(previous.get(t) is ts for t, ts in types.items())
        ):
            return previous  # nothing changed: the same value, so everyone downstream sees a no-op by identity
        return Snapshot(types)

    def _build_types(
        self,
        resources: Mapping[str, Iterable[tuple[str, Message | None, bytes]]],
        previous: Snapshot | None,
        references: Mapping[str, ReferencesByName] | None,
    ) -> Iterator[tuple[str, TypeSnapshot]]:
        references = references or {}
        for type_url, items in resources.items():
            before = previous.get(type_url) if previous is not None else None
            old = before.entries if before is not None else {}
            refs = references.get(type_url, {})
            entries, reused = self._entries_of(type_url, items, old, refs)
            if before is not None and reused == len(entries) == len(old):
                yield type_url, before
            else:
                yield type_url, self._type_of(type_url, entries)

    def _entries_of(
        self,
        type_url: str,
        items: Iterable[tuple[str, Message | None, bytes]],
        old: Mapping[str, Entry],
        refs: ReferencesByName,
    ) -> tuple[dict[str, Entry], int]:
        """One type's entries for (name, message, bytes), and how many were `old`'s (the same bytes)."""
        entries: dict[str, Entry] = {}
        reused = 0
        for name, message, data in items:
            if name in entries:
                log.error("duplicate %s resource %r generated; keeping the first", type_url, name)
                continue
            had = old.get(name)
            if had is not None and (had.data is data or had.data == data):  # equal bytes: same version
                entries[name] = had
                reused += 1
            else:
                entries[name] = self._intern_data(type_url, name, message, data, refs.get(name, NO_REFERENCES))
        return entries, reused

    def _build_type(self, type_url: str, messages: Iterable[Message], references: ReferencesByName) -> TypeSnapshot:
        entries: dict[str, Entry] = {}
        for message in messages:
            if type_url_of(message) != type_url:
                raise ValueError(f"{type_url_of(message)} resource generated under {type_url}")
            name = resource_name(message)
            if name in entries:
                # A response must never carry a name twice (xds_protocol.rst); keep the first, deterministically.
                log.error("duplicate %s resource %r generated; keeping the first", type_url, name)
                continue
            data = message.SerializeToString(deterministic=True)
            entries[name] = self._intern_data(type_url, name, message, data, references.get(name, NO_REFERENCES))
        return self._type_of(type_url, entries)

    def _type_of(self, type_url: str, entries: Mapping[str, Entry], digest: int | None = None, *,
                 ordered: bool = False, lineage: tuple[Mapping[str, Entry], frozenset[str], frozenset[str]] | None
                 = None, before: TypeSnapshot | None = None) -> TypeSnapshot:  # fmt: skip
        if digest is None:
            digest = sum(e.term() for e in entries.values()) & _SUM_MASK
        version = digest_version(digest)
        key = (type_url, version)
        found = self._types.get(key)
        if found is None:
            ordered_entries = entries if ordered else dict(sorted(entries.items()))
            base, changed, removed = lineage if lineage is not None else (None, frozenset(), frozenset())
            covers: tuple[frozenset[str], ...] = ()
            if before is not None and base is before.entries and all(n in base for n in changed):
                covers = _covering(before)  # no name came: a name set that covered every one still does
            found = TypeSnapshot(type_url, MappingProxyType(ordered_entries), version, digest=digest, base=base,
                                 changed=changed, removed=removed, covers=covers)  # fmt: skip
            self._types[key] = found
        return found

    def patch(
        self,
        previous: Snapshot,
        changes: Mapping[str, tuple[Iterable[tuple[str, Message | None, bytes]], Iterable[str]]],
        references: Mapping[str, ReferencesByName] | None = None,
    ) -> Snapshot:
        """`previous` with, per type URL, (name, message, bytes) put and names removed: what `build_serialized`
        gives for the whole new content, at the cost of the changed resources (the unchanged types and entries
        are the previous ones; each changed type is one copy of its mapping, re-sorted only when names come or go).
        `references`: what the resources put reference, per type URL and name."""
        references = references or {}
        types = dict(previous.items())
        for type_url, (updated, removed) in changes.items():
            before = previous.get_type(type_url)
            entries = _copied(before.entries)
            refs = references.get(type_url, {})
            digest = before.digest
            if digest is None:
                digest = sum(e.term() for e in entries.values())
            renamed = False
            gone_names: set[str] = set()
            put_names: set[str] = set()
            for name in removed:
                gone = entries.pop(name, None)
                if gone is not None:
                    digest -= gone.term()
                    renamed = True
                    gone_names.add(name)
            for name, message, data in updated:
                had = entries.get(name)
                if had is not None and (had.data is data or had.data == data):
                    continue
                entry = self._intern_data(type_url, name, message, data, refs.get(name, NO_REFERENCES))
                if had is None:
                    renamed = True
                else:
                    digest -= had.term()
                digest += entry.term()
                entries[name] = entry
                put_names.add(name)
            digest &= _SUM_MASK
            if digest == before.digest and not renamed:
                continue
            if renamed:
                entries = dict(sorted(entries.items()))
            lineage = (before.entries, frozenset(put_names), frozenset(gone_names))
            types[type_url] = self._type_of(type_url, entries, digest, ordered=True, lineage=lineage, before=before)
        if all(previous.get(t) is ts for t, ts in types.items()):
            return previous
        return Snapshot(types)

    def _intern_data(
        self, type_url: str, name: str, message: Message | None, data: bytes, references: References
    ) -> Entry:
        version = resource_version(data)
        key = (type_url, name, version)
        found = self._entries.get(key)
        if found is None or found.references != references:
            found = Entry(name, version, data, message, references=references, digest=pair_digest(name, version),
                          type_url=type_url)  # fmt: skip
            self._entries.put(key, found)
        return found

    def _intern_wire(self, type_url: str, item: WireEntry) -> Entry:
        name, version, data, wired, digest = item
        refs: References = wired if wired is not None else NO_REFERENCES
        key = (type_url, name, version)
        found = self._entries.get(key)
        if found is None or found.references != refs:
            found = Entry(name, version, data, None, references=refs, digest=digest, type_url=type_url)
            self._entries.put(key, found)
        return found

    def apply(self, previous: Snapshot | None, patches: Mapping[str, TypePatch]) -> Snapshot:
        """`previous` (None: nothing) with the patches `diff_types` made in the translation worker: the same
        versions and entries (bytes only; messages are parsed when asked for) at the cost of the change."""
        if previous is not None and not patches:
            return previous
        base = previous if previous is not None else EMPTY_SNAPSHOT
        types = dict(base.items())
        for type_url, p in patches.items():
            before = base.get_type(type_url)
            if p.full:
                with self._entries.batch():
                    entries = {item[0]: self._intern_wire(type_url, item) for item in p.put}
                types[type_url] = self._type_of(type_url, entries, ordered=True)
                continue
            entries = _copied(before.entries)
            digest = before.digest if before.digest is not None else sum(e.term() for e in entries.values())
            renamed = False
            for name in p.removed:
                gone = entries.pop(name, None)
                if gone is not None:
                    digest -= gone.term()
                    renamed = True
            for item in p.put:
                entry = self._intern_wire(type_url, item)
                had = entries.get(entry.name)
                if had is None:
                    renamed = True
                else:
                    digest -= had.term()
                digest += entry.term()
                entries[entry.name] = entry
            if renamed:
                entries = dict(sorted(entries.items()))
            lineage = (before.entries, frozenset(item[0] for item in p.put), frozenset(p.removed))
            types[type_url] = self._type_of(
                type_url, entries, digest & _SUM_MASK, ordered=True, lineage=lineage, before=before
            )
        return Snapshot(types)

    def stats(self) -> dict[str, int]:
        """Live interned objects, for debugging memory sharing."""
        self._entries.sweep()
        return {"entries": len(self._entries), "type_snapshots": len(self._types)}
