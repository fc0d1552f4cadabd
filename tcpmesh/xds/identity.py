"""Which node a proxy may claim, from the client certificate it presented on ADS mutual TLS (as istiod authorizes
proxies against their SPIFFE identity).

The rule (README, Security):
- a SPIFFE URI SAN ``spiffe://<trust-domain>/ns/<ns>/sa/<sa>`` lets the proxy claim namespace ``<ns>``, any
  workload in it;
- a DNS SAN ``<workload>.<ns>[.…]`` lets it claim exactly that workload and namespace: the node id's third field
  (``<workload>.<ns>`` in ``router~10.0.0.1~<workload>.<ns>~<ns>.svc.cluster.local``);
- the namespace a node claims is its metadata ``NAMESPACE``, else the node id's (as the control plane reads it);
  when both are given they must agree.
Without a client certificate (plaintext or server-only TLS) nothing is checked: any process that reaches the ADS
port can pose as any proxy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tcpmesh.xds.types import Node

__all__ = ["PeerIdentity", "authorize", "claimed_workload"]


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """The SANs of a verified client certificate."""

    uris: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()

    @classmethod
    def from_auth_context(cls, auth: Mapping[str, Iterable[bytes]]) -> PeerIdentity | None:
        """From grpc's ``context.auth_context()``; None when the peer presented no certificate."""
        if not auth.get("x509_pem_cert"):
            return None
        uris = tuple(v.decode(errors="replace") for v in auth.get("peer_uri", ()) or ())
        spiffe = tuple(v.decode(errors="replace") for v in auth.get("peer_spiffe_id", ()) or ())
        dns = tuple(v.decode(errors="replace").lower() for v in auth.get("peer_dns", ()) or ())
        return cls(uris=tuple(dict.fromkeys(uris + spiffe)), dns=dns)

    def names(self) -> list[str]:
        return [*self.uris, *(f"DNS:{d}" for d in self.dns)]


def claimed_workload(node: Node) -> tuple[str, str, str | None]:
    """(workload, namespace, conflict): what the node id and metadata claim, and a reason if they disagree."""
    parts = node.id.split("~")
    workload, id_namespace = "", ""
    if len(parts) == 4:
        workload, _, id_namespace = parts[2].partition(".")
    meta_namespace = str(node.metadata.get("NAMESPACE") or "")
    if meta_namespace and id_namespace and meta_namespace != id_namespace:
        conflict = f"node id namespace {id_namespace!r} and metadata NAMESPACE {meta_namespace!r} differ"
        return workload, meta_namespace, conflict
    return workload, meta_namespace or id_namespace or "default", None


def _spiffe_namespace(uri: str) -> str | None:
    if not uri.startswith("spiffe://"):
        return None
    segments = uri[len("spiffe://") :].split("/")
    # trust-domain / ns / <ns> / sa / <sa>
    if len(segments) == 5 and segments[1] == "ns" and segments[3] == "sa" and segments[2]:
        return segments[2]
    return None


def authorize(node: Node, peer: PeerIdentity) -> str | None:
    """None if ``peer`` may claim ``node``, else why not (for a PERMISSION_DENIED status)."""
    workload, namespace, conflict = claimed_workload(node)
    if conflict is not None:
        return f"authorization failed: {conflict}"
    for uri in peer.uris:
        if _spiffe_namespace(uri) == namespace:
            return None
    for name in peer.dns:
        labels = name.split(".")
        if len(labels) >= 2 and labels[0] == workload and labels[1] == namespace:
            return None
    ids = peer.names()
    if not ids:
        return "authorization failed: the client certificate has no SPIFFE URI or DNS subject alternative name"
    return f"authorization failed: no identities ({', '.join(ids)}) matched {namespace}/{workload or node.id}"
