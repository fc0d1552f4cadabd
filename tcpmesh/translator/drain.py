"""Which clusters a drain applies to, and the endpoint metadata that tells the proxies' drain filter about it.

A drain (``tcpmesh.model.drain``) reaches Envoy as EDS metadata on the subset's endpoints,
``filter_metadata["tcpmesh.drain"] = {since, fraction}``: an EDS update, so neither a listener nor a cluster
changes and nothing drains but what the drain filter (``drain_filter``) closes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tcpmesh.model.drain import Drain, drains_of
from tcpmesh.model.resources import VirtualService
from tcpmesh.translator.encoded import as_message
from tcpmesh.translator.names import resolve_short_name
from tcpmesh.translator.protos import endpoint_pb2

__all__ = ["DRAIN_METADATA", "DrainTarget", "drain_for", "drain_targets", "drained_load_assignment"]

DRAIN_METADATA = "tcpmesh.drain"


@dataclass(frozen=True, slots=True)
class DrainTarget:
    """The clusters ``outbound|<port>|<subset>|<host>`` a drain covers (every port when ``port`` is None)."""

    host: str
    subset: str
    port: int | None
    drain: Drain


def drain_targets(vs: VirtualService, domain: str) -> tuple[DrainTarget, ...]:
    """What the drains of ``vs`` cover: the destinations of its tcp and tls routes with the drained subset, and
    the backends named by the drains of the Gateway API route it was generated from."""
    drains = drains_of(vs)
    if not drains:
        return ()
    out: dict[tuple[str, str, int | None], DrainTarget] = {}
    for drain in drains:
        if drain.host:  # a Gateway API backend's: its host and port, routed or (at weight 0) not
            out[(drain.host, "", drain.port)] = DrainTarget(drain.host, "", drain.port, drain)
            continue
        for d in vs.l4_destinations():
            if d.destination.subset == drain.subset:
                host = resolve_short_name(d.destination.host, vs.meta.namespace, domain)
                key = (host, drain.subset, d.destination.port or None)
                out[key] = DrainTarget(host, drain.subset, key[2], drain)
    return tuple(out.values())


def drain_for(targets: Iterable[Sequence[DrainTarget]], host: str, subset: str, port: int) -> Drain | None:
    """The drain of cluster ``outbound|port|subset|host``: the most recent one when several cover it."""
    found: Drain | None = None
    for group in targets:
        for t in group:
            if t.host != host or t.subset != subset or t.port not in (None, port):
                continue
            if found is None or (t.drain.since, t.drain.fraction) > (found.since, found.fraction):
                found = t.drain
    return found


def drained_load_assignment(assignment: Any, drain: Drain) -> Any:
    """A copy of ``assignment`` whose endpoints carry the drain's metadata."""
    out = endpoint_pb2.ClusterLoadAssignment()
    out.CopyFrom(as_message(assignment))
    for locality in out.endpoints:
        for lb in locality.lb_endpoints:
            fields = lb.metadata.filter_metadata[DRAIN_METADATA].fields
            fields["since"].string_value = drain.since
            fields["fraction"].number_value = drain.fraction
    return out
