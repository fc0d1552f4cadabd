"""Serialised, versioned resources: what a proxy should have, as immutable values.

Versions are hashes of deterministic serialisations, so a restarted server re-serves the same version strings
and Envoy sees no change. Identical content is interned, so proxies with byte-identical resources share storage.
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from google.protobuf.message import Message

from tcpmesh.xds.types import Resources, push_rank, resource_name, type_url_of

log = logging.getLogger(__name__)

_DIGEST_SIZE = 8  # 16 hex characters: short in logs, collisions irrelevant at mesh sizes


def resource_version(data: bytes) -> str:
    """Version of one resource: a short hash of its deterministic serialisation."""
    return hashlib.blake2b(data, digest_size=_DIGEST_SIZE).hexdigest()


def content_version(versions: Iterable[tuple[str, str]]) -> str:
    """Version of a set of resources: a hash over the sorted (name, resource version) pairs."""
    h = hashlib.blake2b(digest_size=_DIGEST_SIZE)
    for name, version in sorted(versions):
        h.update(name.encode())
        h.update(b"\0")
        h.update(version.encode())
        h.update(b"\n")
    return h.hexdigest()


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Entry:
    """One resource: its name, version (hash of `data`), deterministic bytes and the message itself."""

    name: str
    version: str
    data: bytes
    message: Message
    # Wire encodings as a response element, made on first use by payload.py (type URL, bytes): shared by every
    # stream and group that sends this resource.
    encoded_any: tuple[str, bytes] | None = field(default=None, compare=False, repr=False)
    encoded_resource: tuple[str, bytes] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, weakref_slot=True, slots=True)
class TypeSnapshot:
    """All resources of one type for one proxy, by name, plus the type's version string."""

    type_url: str
    entries: Mapping[str, Entry]
    version: str

    def versions(self) -> dict[str, str]:
        return {name: e.version for name, e in self.entries.items()}


EMPTY_VERSION = content_version(())

_SUBSETS_KEPT = 32
_subsets: dict[tuple[int, frozenset[str]], tuple[TypeSnapshot, Mapping[str, Entry], str]] = {}


def subset(ts: TypeSnapshot, names: frozenset[str]) -> tuple[Mapping[str, Entry], str]:
    """The named resources of `ts` (in its name order) and their content version, computed once per type snapshot
    and name set: every stream of a group subscribes to the same names, so this is shared across them. Treat the
    mapping as read-only."""
    key = (id(ts), names)
    found = _subsets.get(key)
    if found is not None and found[0] is ts:  # the snapshot is held in the value, so its id is not reused
        return found[1], found[2]
    entries = ts.entries
    wanted = {n: entries[n] for n in sorted(names) if n in entries}
    version = content_version((n, e.version) for n, e in wanted.items())
    if len(_subsets) >= _SUBSETS_KEPT:
        del _subsets[next(iter(_subsets))]
    _subsets[key] = (ts, wanted, version)
    return wanted, version


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

    Interning is by content hash with weak references: storage is shared while some proxy uses it and freed
    when none does. Not thread-safe; use it from the event loop.
    """

    def __init__(self) -> None:
        self._entries: weakref.WeakValueDictionary[tuple[str, str, str], Entry] = weakref.WeakValueDictionary()
        self._types: weakref.WeakValueDictionary[tuple[str, str], TypeSnapshot] = weakref.WeakValueDictionary()

    def build(self, resources: Resources) -> Snapshot:
        """Serialise and version `resources`. A duplicate name keeps the first resource (and is logged)."""
        types: dict[str, TypeSnapshot] = {}
        for type_url, messages in resources.items():
            types[type_url] = self._build_type(type_url, messages)
        return Snapshot(types)

    def _build_type(self, type_url: str, messages: Iterable[Message]) -> TypeSnapshot:
        entries: dict[str, Entry] = {}
        for message in messages:
            if type_url_of(message) != type_url:
                raise ValueError(f"{type_url_of(message)} resource generated under {type_url}")
            name = resource_name(message)
            if name in entries:
                # A response must never carry a name twice (xds_protocol.rst); keep the first, deterministically.
                log.error("duplicate %s resource %r generated; keeping the first", type_url, name)
                continue
            entries[name] = self._intern_entry(type_url, name, message)
        version = content_version((n, e.version) for n, e in entries.items())
        key = (type_url, version)
        found = self._types.get(key)
        if found is None:
            found = TypeSnapshot(type_url, MappingProxyType(dict(sorted(entries.items()))), version)
            self._types[key] = found
        return found

    def _intern_entry(self, type_url: str, name: str, message: Message) -> Entry:
        data = message.SerializeToString(deterministic=True)
        version = resource_version(data)
        key = (type_url, name, version)
        found = self._entries.get(key)
        if found is None:
            found = Entry(name, version, data, message)
            self._entries[key] = found
        return found

    def stats(self) -> dict[str, int]:
        """Live interned objects, for debugging memory sharing."""
        return {"entries": len(self._entries), "type_snapshots": len(self._types)}
