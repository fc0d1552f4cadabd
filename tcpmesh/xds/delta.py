"""Sans-I/O state of one incremental (delta) ADS stream.

Same shape as sotw.py: requests and snapshots in, DeltaDiscoveryResponses out. Each resource carries its own
version (the hash from the cache), so only changed resources travel, and deletions go in removed_resources.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from tcpmesh.xds.cache import Snapshot, content_version
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
        nonce: str = request.response_nonce
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
        responses: list[DeltaResponse] = []
        self._respond(type_url, st, changed_at=None, out=responses)
        return responses

    def on_resources_changed(self, snapshot: Snapshot, *, changed_at: float | None = None) -> list[DeltaResponse]:
        self.snapshot = snapshot
        responses: list[DeltaResponse] = []
        for type_url in sorted(self._types, key=push_rank):
            self._respond(type_url, self._types[type_url], changed_at=changed_at, out=responses)
        return responses

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
        st.explicit = st.explicit or bool(subscribe)
        st.names = frozenset(names)

    def _respond(self, type_url: str, st: _DeltaType, *, changed_at: float | None, out: list[DeltaResponse]) -> None:
        if self.snapshot is None:
            return
        ts = self.snapshot.get_type(type_url)
        wanted = ts.entries if st.wildcard else {n: e for n, e in ts.entries.items() if n in st.names}
        updates = [e for n, e in wanted.items() if st.known.get(n) != e.version or n in st.force]
        removed = sorted({n for n in st.known if n not in wanted} | {n for n in st.force if n not in wanted})
        # A wildcard's first answer goes out even when empty, so Envoy can finish initialising.
        if not updates and not removed and (st.answered or not st.wildcard):
            st.force.clear()
            return
        version = ts.version if st.wildcard else content_version((n, e.version) for n, e in wanted.items())
        nonce = self._next_nonce()
        response = discovery_pb2.DeltaDiscoveryResponse(system_version_info=version, type_url=type_url, nonce=nonce)
        for entry in updates:
            r = response.resources.add(name=entry.name, version=entry.version)
            r.resource.type_url = type_url
            r.resource.value = entry.data
            st.known[entry.name] = entry.version
        response.removed_resources.extend(removed)
        for name in removed:
            st.known.pop(name, None)
        st.force.clear()
        st.answered = True
        self._mark_sent(st, version=version, nonce=nonce, count=len(updates), changed_at=changed_at)
        out.append(response)
        log.debug("%s <- delta %s: %d updated, %d removed", self.node_id, type_url, len(updates), len(removed))
        if type_url == CLUSTER_TYPE and updates and ENDPOINT_TYPE in self._types:
            # Updated clusters only finish warming once their endpoints arrive, even unchanged ones.
            eds = self._types[ENDPOINT_TYPE]
            eds.force.update(n for n in eds.names if n in self.snapshot.get_type(ENDPOINT_TYPE).entries)
            self._respond(ENDPOINT_TYPE, eds, changed_at=changed_at, out=out)
