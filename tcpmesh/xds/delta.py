"""Sans-I/O state of one incremental (delta) ADS stream.

Same shape as sotw.py: requests and snapshots in, DeltaDiscoveryResponses out. Each resource carries its own
version (the hash from the cache), so only changed resources travel, and deletions go in removed_resources.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tcpmesh.xds.cache import Entry, Snapshot, subset
from tcpmesh.xds.ordering import Held
from tcpmesh.xds.payload import DeltaResponse as SharedDeltaResponse
from tcpmesh.xds.stream import StreamBase, TypeTracking
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, push_rank

log = logging.getLogger(__name__)

DeltaRequest = Any  # discovery_pb2.DeltaDiscoveryRequest; xds-protos has no stubs
DeltaResponse = Any  # discovery_pb2.DeltaDiscoveryResponse


@dataclass
class _DeltaType(TypeTracking):
    known: dict[str, str] = field(default_factory=dict)
    """name -> version the client holds, as far as we know (sent by us, or its initial_resource_versions)."""
    force: set[str] = field(default_factory=set)
    """Names to send (or report missing) on the next response even if the client seems to have them."""
    answered: bool = False
    """A response for this type went out on this stream."""


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
            st.known = dict(request.initial_resource_versions)
            # The client holds these: count them as ACKed (content resolved against the snapshot when needed).
            st.sent_entries = dict.fromkeys(st.known)
            st.acked_entries = dict.fromkeys(st.known)
            # A client that already holds resources is initialised: an empty answer would only make Envoy count
            # a needless update (and a control-plane restart must look like nothing happened).
            st.answered = bool(st.known)
        nonce: str = request.response_nonce
        self._note_answer(st, nonce, nack=request.HasField("error_detail"))
        if nonce and nonce == st.nonce:
            if request.HasField("error_detail"):
                version = st.sent_version or ""
                self._record_nack(type_url, st, version=version, message=request.error_detail.message, nonce=nonce)
            else:
                self._record_ack(type_url, st, nonce)
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
            sent = _resolve(st.sent_entries, entries, st.known) if st.awaiting else {}
            acked = _resolve(st.acked_entries, entries, st.known)
            in_flight = tuple(_resolve(m, entries, st.known) for m in st.history.values())
            out[type_url] = Held(acked=acked, sent=sent, awaiting=st.awaiting, in_flight=in_flight)
        return out

    def known_resources(self) -> dict[str, dict[str, str]]:
        """name -> version each type's client holds, as far as this stream knows."""
        return {t: dict(st.known) for t, st in self._types.items()}

    def _subscribe(self, st: _DeltaType, subscribe: list[str], unsubscribe: list[str], *, first: bool) -> None:
        if first and not subscribe:
            st.wildcard = True  # legacy wildcard: a first request naming nothing means "all"
        names = set(st.names)
        for name in subscribe:
            if name == "*":
                st.wildcard = True
            else:
                names.add(name)
                # The server must provide subscribed resources even if the client should have them already.
                st.force.add(name)
        for name in unsubscribe:
            if name == "*":
                st.wildcard = False
                continue
            if name not in names:
                continue  # stray unsubscribe: ignore
            names.discard(name)
            if st.wildcard:
                # Still covered by the wildcard: the client drops its copy, so it must be told again
                # (the wildcard-plus-name exception of the spec).
                st.force.add(name)
            else:
                st.known.pop(name, None)  # the client forgets it; no removal to send
        if not st.wildcard and not first:
            # Without the wildcard the client forgets what it no longer names. (On the first request such
            # initial_resource_versions stay known, so _respond reports them removed.)
            st.known = {n: v for n, v in st.known.items() if n in names}
        st.sent_entries = {n: e for n, e in st.sent_entries.items() if n in st.known}
        st.acked_entries = {n: e for n, e in st.acked_entries.items() if n in st.known}
        st.explicit = st.explicit or bool(subscribe)
        st.names = frozenset(names)

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
        if st.wildcard:
            wanted, version = ts.entries, ts.version
        else:
            wanted, version = subset(ts, st.names)
        updates = [e for n, e in wanted.items() if st.known.get(n) != e.version or n in st.force]
        gone = {n for n in st.known if n not in wanted} | {n for n in st.force if n not in wanted}
        removed = sorted(gone - retain)
        # A wildcard's first answer goes out even when empty, so Envoy can finish initialising.
        if not updates and not removed and (st.answered or not st.wildcard):
            st.force.clear()
            if st.sent_version is None and st.known and set(st.known) == set(wanted):
                # Reconnect: the client already holds exactly this; count it as sent and ACKed, like SotW does.
                st.sent_version = st.acked_version = version
                st.sent_entries = dict(wanted)
                st.acked_entries = dict(wanted)
            return
        nonce = self._next_nonce()
        # Each resource's Resource wrapper is encoded once (cached on its Entry) and shared by every stream.
        response = SharedDeltaResponse(
            type_url=type_url, system_version_info=version, nonce=nonce, updates=updates, removed=removed
        )
        for entry in updates:
            st.known[entry.name] = entry.version
            st.sent_entries[entry.name] = entry
        for name in removed:
            st.known.pop(name, None)
            st.sent_entries.pop(name, None)
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


def _resolve(
    held: Mapping[str, Entry | None], entries: Mapping[str, Entry], known: Mapping[str, str]
) -> dict[str, Entry | None]:
    """Content for names the client announced by version only (reconnect), when the snapshot has that version."""
    out: dict[str, Entry | None] = {}
    for name, entry in held.items():
        if entry is None:
            candidate = entries.get(name)
            entry = candidate if candidate is not None and candidate.version == known.get(name) else None
        out[name] = entry
    return out
