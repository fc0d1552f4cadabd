"""Is a snapshot safe to publish? go-control-plane's Snapshot.Consistent(), for the references tcpmesh emits.

A snapshot is consistent when every cluster a listener, ECDS filter config or route config sends to is in it,
every filter config a listener names by `config_discovery` and every route config it names by RDS is in it,
every EDS cluster has its ClusterLoadAssignment, every ClusterLoadAssignment belongs to a cluster, and every SDS
Secret served is named by one of the snapshot's listeners or clusters (a proxy gets only the Secrets its own
config references). Envoy would accept the inconsistent ones and then fail connections (tcp_proxy to a missing
cluster, envoy #2075) or keep a cluster (or a listener waiting for its routes) warming forever,
so an inconsistent snapshot is a translator fault the publisher refuses, keeping the last good one.

One exception is Istio's: a route to a host, port or subset the config does not define names an ``outbound|``
cluster nobody defines, on purpose (istio-l4-semantics.md, "No existence check is made"; ``tcpmesh analyze``
reports it). Such names may dangle; every other name (BlackHoleCluster, PassthroughCluster, ...) must resolve.
Likewise an SDS name for a Secret that does not exist (``kubernetes://…``): istiod serves nothing for it and the
listener keeps naming it, so applying the Secret later completes the listener without changing it; analyze and
status report the missing Secret.

What a listener, filter config or route config names is its Entry's `references`, which the translator reported
where it built the resource: nothing here parses a message or unpacks its `Any` fields to find them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tcpmesh.model.credentials import KUBERNETES_GATEWAY_PREFIX, KUBERNETES_PREFIX
from tcpmesh.translator.secrets import cluster_sds_names, listener_sds_names
from tcpmesh.xds.cache import Snapshot, message_class
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, EXTENSION_CONFIG_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE

__all__ = ["Inconsistency", "check_changed", "check_snapshot", "istio_may_dangle", "secret_may_dangle"]

_EDS = 3  # envoy.config.cluster.v3.Cluster.DiscoveryType.EDS
_REFERRING = (
    (LISTENER_TYPE, "Listener"),
    (EXTENSION_CONFIG_TYPE, "TypedExtensionConfig"),
    (ROUTE_TYPE, "RouteConfiguration"),
)
_WHAT = {
    CLUSTER_TYPE: "sends to cluster {!r}, which is not defined",
    EXTENSION_CONFIG_TYPE: "names filter config {!r}, which is not served",
    ROUTE_TYPE: "names route config {!r}, which is not served",
}


@dataclass(frozen=True, slots=True)
class Inconsistency:
    """One broken reference: the resource holding it (short type name and resource name) and why."""

    kind: str
    name: str
    message: str


def istio_may_dangle(cluster: str) -> bool:
    """Route targets Istio emits without an existence check (see the module docstring)."""
    return cluster.startswith("outbound|")


def secret_may_dangle(name: str) -> bool:
    """SDS names of Kubernetes Secrets: a missing Secret is served as nothing (see the module docstring)."""
    return name.startswith((KUBERNETES_PREFIX, KUBERNETES_GATEWAY_PREFIX))


def check_snapshot(snapshot: Snapshot, may_dangle: Callable[[str], bool] = istio_may_dangle) -> list[Inconsistency]:
    """Every broken reference in `snapshot` (empty: consistent)."""
    names = {t: snapshot.get_type(t).entries.keys() for t in (CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE,
                                                                EXTENSION_CONFIG_TYPE, ROUTE_TYPE)}  # fmt: skip
    return check_changed(snapshot, names, may_dangle)


def check_changed(
    snapshot: Snapshot, changed: Mapping[str, Iterable[str]], may_dangle: Callable[[str], bool] = istio_may_dangle
) -> list[Inconsistency]:
    """The broken references of the resources named in `changed` (per type URL). When the snapshot was made
    from a consistent one by adding or changing only those resources (none removed), this is the whole check
    at the cost of the change: a resource nobody changed can only be broken by a removal."""
    clusters = snapshot.get_type(CLUSTER_TYPE).entries
    endpoints = snapshot.get_type(ENDPOINT_TYPE).entries
    found: list[Inconsistency] = []
    cluster_type = message_class(CLUSTER_TYPE)
    for name in _present(changed.get(CLUSTER_TYPE, ()), clusters):
        message = clusters[name].peek(cluster_type)
        eds = message.WhichOneof("cluster_discovery_type") == "type" and getattr(message, "type") == _EDS  # noqa: B009
        if eds and name not in endpoints:
            found.append(Inconsistency("Cluster", name, "EDS cluster without a ClusterLoadAssignment"))
    for name in _present(changed.get(ENDPOINT_TYPE, ()), endpoints):
        if name not in clusters:
            found.append(Inconsistency("ClusterLoadAssignment", name, "no cluster of that name"))
    for type_url, kind in _REFERRING:
        entries = snapshot.get_type(type_url).entries
        for name in _present(changed.get(type_url, ()), entries):
            for named_type, named in sorted(entries[name].references.items()):
                served = snapshot.get_type(named_type).entries
                dangles = may_dangle if named_type == CLUSTER_TYPE else _never
                what = _WHAT.get(named_type, "names {!r}, which is not served")
                for other in sorted(named):
                    if other not in served and not dangles(other):
                        found.append(Inconsistency(kind, name, what.format(other)))
    found.extend(_check_secrets(snapshot))
    return found


def _never(name: str) -> bool:
    return False


def _check_secrets(snapshot: Snapshot) -> list[Inconsistency]:
    secrets = snapshot.get_type(SECRET_TYPE).entries
    if not secrets:
        # Nothing served: every name left is a Kubernetes one that may dangle (the translator emits no other),
        # so skip walking every listener and cluster (~7 ms per 1000 services).
        return []
    named: set[str] = set()
    found: list[Inconsistency] = []
    for type_url, kind, names_of in (
        (LISTENER_TYPE, "Listener", listener_sds_names),
        (CLUSTER_TYPE, "Cluster", cluster_sds_names),
    ):
        for name, entry in snapshot.get_type(type_url).entries.items():
            for secret in sorted(set(names_of(entry.message))):
                named.add(secret)
                if secret not in secrets and not secret_may_dangle(secret):
                    found.append(Inconsistency(kind, name, f"names SDS secret {secret!r}, which is not served"))
    for name in sorted(secrets.keys() - named):
        found.append(Inconsistency("Secret", name, "served but named by no listener or cluster of this proxy"))
    return found


def _present(names: Iterable[str], entries: Mapping[str, Any]) -> list[str]:
    return sorted(n for n in names if n in entries)
