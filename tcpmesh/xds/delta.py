"""Sans-I/O state of one incremental (delta) ADS stream.

Same shape as sotw.py: requests and snapshots in, DeltaDiscoveryResponses out. Each resource carries its own
version (the hash from the cache), so only changed resources travel, and deletions go in removed_resources.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tcpmesh.xds.cache import Entry, Snapshot
from tcpmesh.xds.ordering import Held
from tcpmesh.xds.payload import DeltaResponse as SharedDeltaResponse
from tcpmesh.xds.stream import StreamBase, TypeTracking
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, push_rank

log = logging.getLogger(__name__)

DeltaRequest = Any  # discovery_pb2.DeltaDiscoveryRequest; xds-protos has no stubs
DeltaResponse = Any  # discovery_pb2.DeltaDiscoveryResponse


@dataclass
class _DeltaType(TypeTracking):
    initial: dict[str, str] = field(default_factory=dict)
    """The first request's initial_resource_versions (reconnect): versions of names whose `sent_entries` value is
    None. What the client holds is `sent_entries` (names, with content), so there is no per-stream version map."""
    force: set[str] = field(default_factory=set)
    """Names to send (or report missing) on the next response even if the client seems to have them."""
    answered: bool = False
    """A response for this type went out on this stream."""
    pruned: bool = False
    """`sent_entries` and `acked_entries` hold subscribed names only (responses never add unsubscribed ones), so a
    request that only subscribes needs no pass over them."""


class DeltaStream(StreamBase[_DeltaType]):
    """Protocol state for one delta ADS stream; drive it like SotwStream."""

    def on_request(self, request: DeltaRequest) -> list[DeltaResponse]:
        self._take_node(request)
        type_url: str = request.type_url
        if not type_url:
            log.warning("delta ADS request without type_url from %r ignored", self.node_id)
            return []
        st = self._types.get(type_url)
        first = st is None
        if st is None:
            st = self._types[type_url] = _DeltaType()
            # Reconnect: start from what the client says it has, so unchanged resources are not re-sent and
            # ones deleted meanwhile are reported removed (istio #41494).
            st.initial = dict(request.initial_resource_versions)
            # The client holds these: count them as ACKed (content resolved against the snapshot when needed).
            st.sent_entries = dict.fromkeys(st.initial)
            st.acked_entries = st.sent_entries
            # A client that already holds resources is initialised: an empty answer would only make Envoy count
            # a needless update (and a control-plane restart must look like nothing happened).
            st.answered = bool(st.initial)
        nonce: str = request.response_nonce
        self._note_answer(st, nonce, nack=request.HasField("error_detail"))
        if nonce and nonce == st.nonce:
            if request.HasField("error_detail"):
                version = st.sent_version or ""
                self._record_nack(type_url, st, version=version, message=request.error_detail.message, nonce=nonce)
            else:
                self._record_ack(type_url, st, nonce)
                if st.initial and not st.history and None not in st.acked_entries.values():
                    st.initial.clear()  # every version-only name now has content: nothing left to resolve
        # Unlike SotW, subscription changes count even with a stale nonce (xds_protocol.rst, Incremental xDS).
        self._subscribe(
            st, list(request.resource_names_subscribe), list(request.resource_names_unsubscribe), first=first
        )
        return self._evaluate(requested=type_url)

    def on_resources_changed(self, snapshot: Snapshot, *, changed_at: float | None = None) -> list[DeltaResponse]:
        self.snapshot = snapshot
        self._changed_at = changed_at
        return self._evaluate()

    def poll(self) -> list[DeltaResponse]:
        """Pushes that flow control held back and whose failsafe timeout has passed."""
        return self._evaluate() if self.timed_out() else []

    def _evaluate(self, *, requested: str | None = None) -> list[DeltaResponse]:
        self._restage()
        responses: list[DeltaResponse] = []
        for type_url in sorted(self._types, key=push_rank):
            st = self._types[type_url]
            if type_url == requested:
                self._respond(type_url, st, changed_at=None, out=responses)
            elif not self._flow_blocked(st):
                self._respond(type_url, st, changed_at=self._changed_at, out=responses)
        return responses

    def _held(self) -> dict[str, Held]:
        out: dict[str, Held] = {}
        for type_url, st in self._types.items():
            entries = self.snapshot.get_type(type_url).entries if self.snapshot is not None else {}
            sent = _resolve(st.sent_entries, entries, st.initial) if st.awaiting else {}
            acked = _resolve(st.acked_entries, entries, st.initial)
            in_flight = tuple(_resolve(m, entries, st.initial) for m in st.history.values())
            out[type_url] = Held(acked=acked, sent=sent, awaiting=st.awaiting, in_flight=in_flight)
        return out

    def known_resources(self) -> dict[str, dict[str, str]]:
        """name -> version each type's client holds, as far as this stream knows."""
        return {t: {n: _version(st, n, e) for n, e in st.sent_entries.items()} for t, st in self._types.items()}

    def _subscribe(self, st: _DeltaType, subscribe: list[str], unsubscribe: list[str], *, first: bool) -> None:
        if not first and not subscribe and not unsubscribe:
            return  # an ACK or NACK: the subscription stays as it is
        if first and not subscribe:
            st.wildcard = True  # legacy wildcard: a first request naming nothing means "all"
        added: list[str] = []
        for name in subscribe:
            if name == "*":
                st.wildcard = True
            else:
                added.append(name)
        # The server must provide subscribed resources even if the client should have them already.
        st.force.update(added)
        removed: list[str] = []
        dropped: set[str] = set()
        added_now = set(added) if unsubscribe else set()
        for name in unsubscribe:
            if name == "*":
                st.wildcard = False
                continue
            if name not in st.names and name not in added_now:
                continue  # stray unsubscribe: ignore
            removed.append(name)
            if st.wildcard:
                # Still covered by the wildcard: the client drops its copy, so it must be told again
                # (the wildcard-plus-name exception of the spec).
                st.force.add(name)
            else:
                dropped.add(name)  # the client forgets it; no removal to send
                st.force.discard(name)
        if removed:  # a name both subscribed and unsubscribed in one request ends unsubscribed
            unsubscribed = set(removed)
            added = [n for n in added if n not in unsubscribed]
        names = self._name_sets.derive(st.names, added, removed)
        # Without the wildcard the client forgets what it no longer names. (On the first request such
        # initial_resource_versions stay known, so _respond reports them removed.)
        forget_unnamed = not st.wildcard and not first
        if forget_unnamed and st.pruned and not removed:
            st.explicit = st.explicit or bool(subscribe)
            st.names = names  # only names came: what the client holds is still all subscribed
            return
        st.pruned = forget_unnamed
        for attr in ("sent_entries", "acked_entries"):
            held: Mapping[str, Entry | None] = getattr(st, attr)
            if not held:
                continue
            # C-level set operations: a subscription growing by one name must not cost a loop over every name.
            gone = held.keys() - names if forget_unnamed else held.keys() & dropped
            if gone:  # copy only when something goes (never an in-place edit: the mapping may be shared)
                setattr(st, attr, {n: e for n, e in held.items() if n not in gone})
        st.explicit = st.explicit or bool(subscribe)
        st.names = names

    def _respond(self, type_url: str, st: _DeltaType, *, changed_at: float | None, out: list[DeltaResponse]) -> None:
        if self.snapshot is None:
            return
        ts = self._view(type_url)
        if ts is None:
            return  # make-before-break: waits until the clusters it names are ACKed
        if st.resend:
            st.force.update(n for n in st.names if n in ts.entries)
            st.resend = False
        retain = self.staged.retain.get(type_url, frozenset())
        sub = None if st.wildcard else ts.subset_of(st.names)
        wanted, version = (ts.entries, ts.version) if sub is None else (sub.entries, sub.version)
        held = st.sent_entries
        force = st.force
        patched = held is ts.base and wanted is ts.entries and not force and not retain
        # Whether the client holds exactly `wanted` once it applies this response (no comparison needed).
        exact = patched
        if patched:  # in sync with the snapshot this one was patched from: its changes are the difference
            updates = [wanted[n] for n in sorted(ts.changed)]
            gone = set(ts.removed)
        elif sub is not None and sub.base is not None and held is sub.base and not retain:
            # In sync with the subscription before its last change (one more listener's filter config): the
            # names it gained, plus any other forced name.
            fresh = set(sub.added)
            updates = [wanted[n] for n in sub.added]
            updates += [wanted[n] for n in force if n in wanted and n not in fresh]
            gone = {*sub.removed, *(n for n in force if n not in wanted)}
            exact = True
        elif held is wanted:  # in sync with the group: only forced names can differ
            updates = [e for n, e in wanted.items() if n in force] if force else []
            gone = {n for n in force if n not in wanted}
        else:
            updates = [e for n, e in wanted.items() if n in force or not _holds(st, held, n, e)]
            gone = {n for n in held if n not in wanted} | {n for n in force if n not in wanted}
        removed = sorted(gone - retain)
        # A wildcard's first answer goes out even when empty, so Envoy can finish initialising.
        if not updates and not removed and (st.answered or not st.wildcard):
            st.force.clear()
            if st.sent_version is None and held and len(held) == len(wanted) and all(n in wanted for n in held):
                # Reconnect: the client already holds exactly this; count it as sent and ACKed, like SotW does.
                st.sent_version = st.acked_version = version
                st.sent_entries = wanted  # shared with the snapshot, read-only
                st.acked_entries = wanted
                st.initial.clear()
            return
        nonce = self._next_nonce()
        # Each resource's Resource wrapper is encoded once (cached on its Entry) and shared by every stream.
        response = SharedDeltaResponse(
            type_url=type_url, system_version_info=version, nonce=nonce, updates=updates, removed=removed
        )
        st.sent_entries = wanted if exact else _after(st, held, wanted, updates, removed)
        st.force.clear()
        st.answered = True
        self._mark_sent(st, version=version, nonce=nonce, count=len(updates), changed_at=changed_at)
        out.append(response)
        log.debug("%s <- delta %s: %d updated, %d removed", self.node_id, type_url, len(updates), len(removed))
        if type_url == CLUSTER_TYPE and updates and ENDPOINT_TYPE in self._types:
            # Updated clusters only finish warming once their endpoints arrive, even unchanged ones.
            eds = self._types[ENDPOINT_TYPE]
            eds.resend = True
            if not self._flow_blocked(eds):
                self._respond(ENDPOINT_TYPE, eds, changed_at=changed_at, out=out)


def _version(st: _DeltaType, name: str, entry: Entry | None) -> str:
    return entry.version if entry is not None else st.initial.get(name, "")


def _holds(st: _DeltaType, held: Mapping[str, Entry | None], name: str, entry: Entry) -> bool:
    """The client holds `entry`'s version of `name` (entries are interned, so `is` settles most cases)."""
    had = held.get(name, _MISSING)
    if had is entry:
        return True
    if had is _MISSING:
        return False
    if had is None:
        return st.initial.get(name) == entry.version
    return bool(had.version == entry.version)


def _after(
    st: _DeltaType,
    held: Mapping[str, Entry | None],
    wanted: Mapping[str, Entry],
    updates: list[Entry],
    removed: list[str],
) -> Mapping[str, Entry | None]:
    """What the client holds once it applies a response. When that is exactly `wanted` (a stream in sync with its
    group), the shared mapping itself, so the stream stores no copy; otherwise a new dict (never an in-place edit:
    the old mapping may be referenced by `acked_entries` and `history`)."""
    updated = {e.name for e in updates}
    gone = set(removed)
    retained = any(n not in gone and n not in wanted for n in held)  # the client keeps them
    if not retained and all(n in updated or held.get(n) is e for n, e in wanted.items()):
        return wanted
    out: dict[str, Entry | None] = {n: e for n, e in held.items() if n not in gone}
    for entry in updates:
        out[entry.name] = entry
    return out


def _resolve(
    held: Mapping[str, Entry | None], entries: Mapping[str, Entry], initial: Mapping[str, str]
) -> Mapping[str, Entry | None]:
    """Content for names the client announced by version only (reconnect), when the snapshot has that version."""
    if not initial:
        return held  # no version-only names: nothing to resolve, no copy
    out: dict[str, Entry | None] = {}
    for name, entry in held.items():
        if entry is None:
            candidate = entries.get(name)
            entry = candidate if candidate is not None and candidate.version == initial.get(name) else None
        out[name] = entry
    return out


_MISSING: Any = object()
