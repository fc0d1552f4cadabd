"""Responses whose resources are serialised once and shared by every stream that sends the same content.

A DiscoveryResponse for a group's snapshot carries the same resources on every stream; only version and nonce
differ. Building one protobuf message per stream (Any-wrapping every resource again) cost a full copy of the
payload per stream, for the whole time it waited in the stream's queue. Here a response is a small object:
its header fields, plus a shared `SotwBody` (the encoded `resources` field, built once per type snapshot and
subscription) or, for delta, the entries whose encoded `Resource` wrappers are cached on each Entry (so per
(name, version)). The bytes exist only while gRPC serialises the response.

Protobuf fields may come in any order on the wire, so `header + body` parses as the message built field by field.
The objects quack like the protobuf messages (attribute reads fall through to a message parsed on first use),
so tests and callbacks can inspect them; `message` gives the real protobuf.
"""

from __future__ import annotations

import collections
import itertools
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from tcpmesh.xds.cache import Entry, TypeSnapshot

_STRONG_BODIES = 8
"""Recent SotW bodies kept even while no queued response holds them (a burst of initial syncs reuses them)."""


def _sotw_items(entries: Iterable[Entry], type_url: str) -> Iterator[bytes]:
    """The encoded `resources` elements (Anys) of a DiscoveryResponse for these entries; cached on each entry.
    The Any's type_url field is encoded once for all of them: per element, a first push of 10 000 services
    spent 1.7 µs (0.12 s of 70 000), most of it encoding the same type URL again."""
    head = _string(_ANY_TYPE_URL, type_url) + _ANY_VALUE
    bare = _delimited(_RESOURCES, head[:-1])  # an empty value is left out, as protobuf does
    width = len(head)
    for entry in entries:
        wire = entry.wire
        cached = wire.sotw
        if cached is None or cached[0] != type_url:
            data = entry.data
            n = len(data)
            if n:
                size = _VARINTS[n] if n < _SHORT else _varint(n)
                inner = width + len(size) + n
                item = b"".join((_RESOURCES, _VARINTS[inner] if inner < _SHORT else _varint(inner), head, size, data))
            else:
                item = bare
            cached = wire.sotw = (type_url, item)
        yield cached[1]


def encode_ahead(ts: TypeSnapshot) -> None:
    """Encode the SotW element of every resource of `ts` now, cached on its entry, for a snapshot about to be
    served: a thread that has the time (the translation worker's mirror, while the next type is being built)
    spares the event loop the encoding of a first push (30 001 clusters: 0.03-0.09 s)."""
    collections.deque(_sotw_items(ts.entries.values(), ts.type_url), maxlen=0)


def _delta_item(entry: Entry, type_url: str) -> bytes:
    """The encoded `resources` element (a Resource) of a DeltaDiscoveryResponse; cached on the entry."""
    wire = entry.wire
    cached = wire.delta
    if cached is None or cached[0] != type_url:
        resource = (
            _string(_RESOURCE_VERSION, entry.version)
            + _delimited(_RESOURCE_ANY, _any(type_url, entry.data))
            + _string(_RESOURCE_NAME, entry.name)
        )
        cached = wire.delta = (type_url, _delimited(_RESOURCES, resource))
    return cached[1]


# Written by hand, as protobuf's deterministic serialisation writes them (fields in number order, empty ones
# left out; tests/xds/test_shared_payload.py compares): building a DiscoveryResponse and an Any per resource to
# serialise one element cost ~2.5 µs, 0.19 s of the 70 000 resources of a 10 000-service first push.
_RESOURCES = b"\x12"
"""DiscoveryResponse.resources and DeltaDiscoveryResponse.resources (field 2, length-delimited)."""
_ANY_TYPE_URL, _ANY_VALUE = b"\x0a", b"\x12"
_RESOURCE_VERSION, _RESOURCE_ANY, _RESOURCE_NAME = b"\x0a", b"\x12", b"\x1a"
"""envoy.service.discovery.v3.Resource: version = 1, resource = 2, name = 3."""


_SHORT = 1 << 14
_VARINTS = tuple(bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(_SHORT))
"""The varints of 0 to 16 383 (one and two bytes), looked up instead of encoded: most resources are shorter."""


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(tag: bytes, data: bytes) -> bytes:
    return tag + _varint(len(data)) + data


def _string(tag: bytes, text: str) -> bytes:
    return _delimited(tag, text.encode()) if text else b""


def _any(type_url: str, value: bytes) -> bytes:
    return _string(_ANY_TYPE_URL, type_url) + (_delimited(_ANY_VALUE, value) if value else b"")


class SotwBody:
    """The `resources` of a SotW response for one type snapshot and subscription, encoded once (on first use)."""

    __slots__ = ("__weakref__", "_data", "_sent", "entries", "part", "snapshot", "type_url")

    def __init__(self, snapshot: TypeSnapshot, entries: Sequence[Entry], part: tuple[str, ...] | None = None) -> None:
        self.snapshot = snapshot  # keeps the id() in the cache key valid while this body lives
        self.type_url = snapshot.type_url
        self.entries = tuple(entries)
        self.part = part
        """None: every subscribed resource; else the names of a partial response (a subscription's new ones)."""
        self._data: bytes | None = None
        self._sent = False

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = b"".join(_sotw_items(self.entries, self.type_url))
        return self._data

    def prefixed(self, header: bytes) -> bytes:
        """`header + data`. The first time in one join, without keeping `data`: most bodies go to one stream (a
        group's only proxy), and copying them twice (body, then response) made encoding a 10 000-service first
        push (27 MB) take 0.046-0.068 s instead of 0.031-0.039 s. A body serialised again keeps its bytes."""
        if self._data is None and not self._sent:
            self._sent = True
            return b"".join(itertools.chain((header,), _sotw_items(self.entries, self.type_url)))
        return header + self.data


_BodyKey = tuple[int, bool, frozenset[str], tuple[str, ...] | None]


class BodyCache:
    """SotW bodies by (type snapshot, subscription): one per group and content, shared by its streams.

    Keys use the type snapshot's id(), which is safe because each body holds its snapshot and a hit is only
    taken when `body.snapshot is ts`. One per server (its streams share it)."""

    def __init__(self) -> None:
        self._live: weakref.WeakValueDictionary[_BodyKey, SotwBody] = weakref.WeakValueDictionary()
        self._recent: OrderedDict[_BodyKey, SotwBody] = OrderedDict()

    def get(
        self,
        ts: TypeSnapshot,
        wildcard: bool,
        names: frozenset[str],
        entries: Iterable[Entry],
        *,
        part: tuple[str, ...] | None = None,
    ) -> SotwBody:
        """The body for `entries`: all of the subscription's resources, or (`part`) those of the names given."""
        key = (id(ts), wildcard, frozenset() if wildcard else names, part)
        body = self._live.get(key)
        if body is None or body.snapshot is not ts:
            body = SotwBody(ts, list(entries), part)
            self._live[key] = body
        self._recent[key] = body
        self._recent.move_to_end(key)
        while len(self._recent) > _STRONG_BODIES:
            self._recent.popitem(last=False)
        return body


class _Lazy:
    """Attribute reads the slots do not answer go to the protobuf message, parsed once from the wire bytes."""

    __slots__ = ("_message",)
    _message_type: Any

    def SerializeToString(self, deterministic: bool = False) -> bytes:
        raise NotImplementedError

    def ByteSize(self) -> int:
        return len(self.SerializeToString())

    @property
    def message(self) -> Any:
        found = getattr(self, "_message", None)
        if found is None:
            found = self._message_type.FromString(self.SerializeToString())
            self._message = found
        return found

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_message":
            raise AttributeError(name)
        return getattr(self.message, name)

    def __eq__(self, other: object) -> bool:
        other_message = other.message if isinstance(other, _Lazy) else other
        return bool(self.message == other_message)

    __hash__ = None  # type: ignore[assignment]  # like protobuf messages

    def __str__(self) -> str:
        return str(self.message)


class SotwResponse(_Lazy):
    """A DiscoveryResponse: version and nonce of this stream, resources shared through `body`."""

    __slots__ = ("body", "complete", "nonce", "type_url", "version_info")
    _message_type = discovery_pb2.DiscoveryResponse

    def __init__(self, *, type_url: str, version_info: str, nonce: str, body: SotwBody, complete: bool = True) -> None:
        self.type_url = type_url
        self.version_info = version_info
        self.nonce = nonce
        self.body = body
        self.complete = complete
        """Carries every subscribed resource, so it supersedes an unsent response of its type (a partial one,
        the names a subscription gained, does not)."""

    def after(self, queued: SotwResponse) -> SotwResponse:
        """This partial response merged with the unsent one of its type it follows (the names it adds are new to
        that one), under this one's version and nonce: what the client holds once it applies both."""
        part = None if queued.body.part is None or self.body.part is None else queued.body.part + self.body.part
        body = SotwBody(self.body.snapshot, queued.body.entries + self.body.entries, part)
        return SotwResponse(type_url=self.type_url, version_info=self.version_info, nonce=self.nonce, body=body,
                            complete=queued.complete)  # fmt: skip

    def SerializeToString(self, deterministic: bool = False) -> bytes:
        header = discovery_pb2.DiscoveryResponse(
            version_info=self.version_info, type_url=self.type_url, nonce=self.nonce
        )
        data: bytes = header.SerializeToString()
        return self.body.prefixed(data)

    def __repr__(self) -> str:
        kind = self.type_url.rsplit(".", 1)[-1]
        return f"SotwResponse({kind}, {self.version_info}, {self.nonce}, {len(self.body.entries)})"


class DeltaResponse(_Lazy):
    """A DeltaDiscoveryResponse: each updated resource's `Resource` encoding is shared through its Entry."""

    __slots__ = ("nonce", "removed", "system_version_info", "type_url", "updates")
    _message_type = discovery_pb2.DeltaDiscoveryResponse

    def __init__(
        self, *, type_url: str, system_version_info: str, nonce: str, updates: Sequence[Entry], removed: Sequence[str]
    ) -> None:
        self.type_url = type_url
        self.system_version_info = system_version_info
        self.nonce = nonce
        self.updates = tuple(updates)
        self.removed = tuple(removed)

    def SerializeToString(self, deterministic: bool = False) -> bytes:
        header = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self.system_version_info,
            type_url=self.type_url,
            nonce=self.nonce,
            removed_resources=self.removed,
        )
        type_url = self.type_url
        data: bytes = header.SerializeToString()
        return data + b"".join(_delta_item(e, type_url) for e in self.updates)

    def __repr__(self) -> str:
        kind = self.type_url.rsplit(".", 1)[-1]
        return f"DeltaResponse({kind}, {self.nonce}, +{len(self.updates)} -{len(self.removed)})"


def serialize(response: Any) -> bytes:
    """gRPC response serializer for both shared responses and plain protobuf messages."""
    return bytes(response.SerializeToString())
