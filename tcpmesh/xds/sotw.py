"""Sans-I/O state of one State-of-the-World ADS stream.

Data in, data out, in the style of h2: `on_request` and `on_resources_changed` return the DiscoveryResponses to
send, in order. No grpc and no asyncio, so every SotW rule of xds_protocol.rst can be tested directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tcpmesh.xds.cache import Entry, Snapshot, Subset, TypeSnapshot
from tcpmesh.xds.payload import BodyCache, SotwResponse
from tcpmesh.xds.stream import NameSets, StreamBase, TypeTracking
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, FULL_STATE_TYPES, push_rank

log = logging.getLogger(__name__)

DiscoveryRequest = Any  # discovery_pb2.DiscoveryRequest; xds-protos has no stubs
DiscoveryResponse = Any  # discovery_pb2.DiscoveryResponse


@dataclass
class _SotwType(TypeTracking):
    client_version: str = ""
    """version_info of the client's first request for the type: what it kept from an earlier stream."""
    has_sent: bool = False
    """A response went out (or the client's content was adopted on reconnect): `sent_entries` is meaningful."""
    decided_on: tuple[TypeSnapshot, bool, frozenset[str]] | None = None
    """Inputs of the last decision that sent nothing new; TypeSnapshots are interned, so `is` spots no-ops."""


class SotwStream(StreamBase[_SotwType]):
    """Protocol state for one SotW ADS stream.

    Feed it every request (`on_request`) and every new snapshot for its node (`on_resources_changed`), and
    send what they return, in order. Until the first snapshot arrives requests are recorded, nothing is sent.
    `bodies` (and `name_sets`) are shared by the server's streams so equal responses are encoded once.
    """

    def __init__(self, *, bodies: BodyCache | None = None, name_sets: NameSets | None = None, **kw: Any) -> None:
        super().__init__(name_sets=name_sets, **kw)
        self._bodies = bodies if bodies is not None else BodyCache()

    def on_request(self, request: DiscoveryRequest) -> list[DiscoveryResponse]:
        """Handle one DiscoveryRequest; returns the responses to send (maybe none)."""
        self._take_node(request)
        type_url: str = request.type_url
        if not type_url:
            # Required on ADS: nothing says which type the client means (go-control-plane rejects it too).
            log.warning("ADS request without type_url from %r ignored", self.node_id)
            return []
        st = self._types.get(type_url)
        nonce: str = request.response_nonce
        if st is not None:
            self._note_answer(st, nonce, nack=request.HasField("error_detail"))
        if st is not None and st.nonce is not None and nonce and nonce != st.nonce:
            # Stale: it answers a response that a newer one superseded, and the client will answer the newer
            # one too; the spec says not to respond (xds_protocol.rst, Resource updates).
            log.debug("%s: stale nonce %s for %s (latest %s)", self.node_id, nonce, type_url, st.nonce)
            return []
        if st is None:
            st = self._types[type_url] = _SotwType(client_version=request.version_info)
        if request.HasField("error_detail"):
            # NACK, detected by error_detail as the spec prefers. Without our nonce it is about an earlier
            # stream's response, whose version only the client knows.
            version = (st.sent_version or "") if nonce and nonce == st.nonce else request.version_info
            self._record_nack(type_url, st, version=version, message=request.error_detail.message, nonce=nonce)
        elif nonce and nonce == st.nonce:
            self._record_ack(type_url, st, nonce)
        newly = self._subscribe(st, request.resource_names)
        return self._evaluate(requested=type_url, force=newly)

    def on_resources_changed(self, snapshot: Snapshot, *, changed_at: float | None = None) -> list[DiscoveryResponse]:
        """Adopt a new snapshot for this stream's node; returns the pushes, clusters first."""
        self.snapshot = snapshot
        self._changed_at = changed_at
        return self._evaluate()

    def poll(self) -> list[DiscoveryResponse]:
        """Pushes that flow control held back and whose failsafe timeout has passed."""
        return self._evaluate() if self.timed_out() else []

    def _evaluate(self, *, requested: str | None = None, force: bool = False) -> list[DiscoveryResponse]:
        """Decide every type in push order; the requested type is answered regardless of flow control."""
        self._restage()
        responses: list[DiscoveryResponse] = []
        for type_url in sorted(self._types, key=push_rank):
            st = self._types[type_url]
            if type_url == requested:
                self._respond(type_url, st, force=force, changed_at=None, out=responses)
            elif not self._flow_blocked(st):
                self._respond(type_url, st, force=False, changed_at=self._changed_at, out=responses)
        return responses

    def sent_resources(self) -> dict[str, dict[str, str]]:
        """name -> resource version of the last response, per type."""
        return {
            t: {n: e.version for n, e in st.sent_entries.items() if e is not None}
            for t, st in self._types.items()
            if st.has_sent
        }

    def _subscribe(self, st: _SotwType, names: Sequence[str]) -> bool:
        """Apply a request's resource_names; True if the client now wants something it did not before."""
        old_wildcard, old_names = st.wildcard, st.names
        if not names and not st.explicit:
            # Legacy wildcard: an empty list means "all" until the client names something.
            st.wildcard, st.names = True, frozenset()
        else:
            st.explicit = True
            named = frozenset(names)
            st.wildcard = "*" in named
            st.names = self._name_sets.intern(named - {"*"} if st.wildcard else named, like=old_names)
        if st.wildcard:
            return not old_wildcard
        # Newly requested names are sent even if sent before (xds_protocol.rst; go-control-plane #431, #608).
        return bool(st.names - old_names)

    def _difference(
        self, type_url: str, st: _SotwType, ts: TypeSnapshot, sub: Subset | None, *, force: bool
    ) -> tuple[str, ...] | None:
        """The names to send when the client needs only some of its subscription (None: send all of it).

        Only Listener and Cluster responses must carry the whole state (xds_protocol.rst, "Grouping Resources
        into Responses"); for other types a client holding exactly what the change started from gets the names
        that differ: those a subscription gained (Envoy asks for one more filter config per listener it builds,
        which whole would be n²/2 resources at n listeners) or those an edit changed (one weight at 10 000
        services is one filter config, not 10 000). Endpoints after a cluster push go whole: warming needs them,
        and so does everything after a NACK (the client may hold less than was sent). A response NACKed after
        a difference went out leaves its rejected content unsent until it changes, as delta streams do."""
        if type_url in FULL_STATE_TYPES or st.resend or not st.has_sent or st.nacked_version is not None:
            return None
        held = st.sent_entries
        if sub is not None and sub.base is not None and held is sub.base:
            return sub.added
        wanted = ts.entries if sub is None else sub.entries
        if not force and wanted is ts.entries and held is ts.base and ts.changed and not ts.removed:
            return tuple(sorted(ts.changed))
        return None

    def _respond(
        self,
        type_url: str,
        st: _SotwType,
        *,
        force: bool,
        changed_at: float | None,
        out: list[DiscoveryResponse],
    ) -> None:
        if self.snapshot is None:
            return
        ts = self._view(type_url)
        if ts is None:
            return  # make-before-break: waits until the clusters it names are ACKed
        force = force or st.resend
        inputs = (ts, st.wildcard, st.names)
        if not force and st.decided_on is not None and all(a is b for a, b in zip(inputs, st.decided_on, strict=True)):
            return  # nothing changed since the last decision (the common case on a config change)
        st.decided_on = inputs
        sub = None if st.wildcard else ts.subset_of(st.names)
        wanted: Mapping[str, Entry] = ts.entries if sub is None else sub.entries
        version = ts.version if sub is None else sub.version
        if st.has_sent and not force and st.sent_version == version:
            return  # versions are content hashes: same content as the last response
        part = self._difference(type_url, st, ts, sub, force=force)
        if not st.has_sent:
            if st.wildcard and st.client_version == version:
                # Reconnect: the client already holds exactly this content and re-sending would make Envoy
                # redo work for nothing. Only safe for wildcard, where we know what it subscribed to.
                log.debug("%s already has %s version %s", self.node_id, type_url, version)
                st.has_sent, st.sent_version, st.acked_version = True, version, version
                st.sent_entries = wanted  # shared with the snapshot: read-only
                st.acked_entries = wanted
                return
            # Named resources that do not exist yet stay in st.names and are sent when they appear. A wildcard
            # gets an answer even when empty, so Envoy can finish initialising.
            send = st.wildcard or bool(wanted)
        elif part is not None:
            if not part:
                return  # it gained only names that do not exist (yet): nothing to add
            send = True
        elif type_url in FULL_STATE_TYPES:
            # Omission means deletion, so a removal is a change.
            send = len(wanted) != len(st.sent_entries) or _changed(wanted, st.sent_entries)
        else:
            send = _changed(wanted, st.sent_entries)
        if not (send or (force and wanted)):
            return
        nonce = self._next_nonce()
        # The resources are encoded once per (type snapshot, subscription) and shared by every stream sending them.
        if part is not None:
            body = self._bodies.get(ts, st.wildcard, st.names, [wanted[n] for n in part], part=part)
        else:
            body = self._bodies.get(ts, st.wildcard, st.names, wanted.values())
        response = SotwResponse(type_url=type_url, version_info=version, nonce=nonce, body=body,
                                complete=body.part is None)  # fmt: skip
        st.has_sent = True
        st.sent_entries = wanted  # the snapshot's (or shared subset's) mapping: referenced, never copied
        st.resend = False
        self._mark_sent(st, version=version, nonce=nonce, count=len(wanted), changed_at=changed_at)  # held after it
        out.append(response)
        log.debug("%s <- %s version %s (%d resources)", self.node_id, type_url, version, len(body.entries))
        if type_url == CLUSTER_TYPE and ENDPOINT_TYPE in self._types:
            # Cluster warming only completes when a ClusterLoadAssignment arrives, even an unchanged one
            # (xds_protocol.rst, Resource warming), so every CDS push is followed by an EDS push, now or as soon
            # as flow control lets it go.
            eds = self._types[ENDPOINT_TYPE]
            eds.resend = True
            if not self._flow_blocked(eds):
                self._respond(ENDPOINT_TYPE, eds, force=True, changed_at=changed_at, out=out)


def _changed(wanted: Mapping[str, Entry], sent: Mapping[str, Entry | None]) -> bool:
    """Some wanted resource is missing from `sent` or at another version (entries are interned: `is` first)."""
    if wanted is sent:
        return False
    for name, entry in wanted.items():
        had = sent.get(name)
        if had is not entry and (had is None or had.version != entry.version):
            return True
    return False
