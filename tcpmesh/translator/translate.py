"""translate(config, proxy) → Envoy resources: the only composition point of the translator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpmesh.model.config import Config
from tcpmesh.translator.clusters import ServiceClusters, blackhole_cluster, cluster_plans
from tcpmesh.translator.drain import drained_load_assignment
from tcpmesh.translator.drain_filter import add_drain_filters, drain_filter
from tcpmesh.translator.ecds import deliver_by_ecds
from tcpmesh.translator.encoded import Encoded, Resources, kept, kept_name
from tcpmesh.translator.endpoints import PortEndpoints
from tcpmesh.translator.gateway import build_gateway_listeners, http_gateway_routes, merged_servers
from tcpmesh.translator.http_sidecar import build_sidecar_http
from tcpmesh.translator.index import Index, build_index
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.protos import cluster_pb2, endpoint_pb2, listener_pb2
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.refs import Refs, merged
from tcpmesh.translator.secrets import build_secrets, cluster_sds_names, listener_sds_names
from tcpmesh.translator.sidecar import build_sidecar_listeners, passthrough_cluster

__all__ = ["EnvoyResources", "translate", "translate_indexed"]


@dataclass(frozen=True, slots=True)
class EnvoyResources:
    """Listeners, clusters, ClusterLoadAssignments, the listeners' ECDS filter configs, the HTTP listeners'
    RouteConfigurations and the SDS Secrets their TLS contexts name, for one proxy, each sorted by name (no
    extension configs with ``inline_weights``)."""

    listeners: Sequence[Any]
    clusters: Sequence[Any]
    endpoints: Sequence[Any]
    extension_configs: tuple[Any, ...] = ()
    routes: tuple[Any, ...] = ()
    """RouteConfigurations (RDS) of the HTTP listeners."""
    secrets: tuple[Any, ...] = ()
    """envoy.extensions.transport_sockets.tls.v3.Secret: they carry private keys (print them redacted)."""
    references: Mapping[str, Mapping[str, Refs]] = field(default_factory=dict)
    """What the resources name, as the builders reported it: per field of refs.REFERRING_KINDS (all three keys)
    and resource name, for the resources that name anything. Not Envoy config: the publisher hands it to the
    snapshot for make-before-break and the snapshot check."""


def translate(config: Config, proxy: Proxy, options: TranslateOptions | None = None) -> EnvoyResources:
    return translate_indexed(build_index(config, options or TranslateOptions()), proxy)


def translate_indexed(index: Index, proxy: Proxy) -> EnvoyResources:
    """Pure: same index and proxy, same messages (and so the same serialised bytes and versions)."""
    # The connection-preserving mode (the default): tcp_proxies by ECDS, drains by the drain filter and EDS.
    drain_prototype = None if index.options.inline_weights else index.prototype("drain_filter", drain_filter)
    clusters = [blackhole_cluster(index)]
    endpoints = []
    port_endpoints: PortEndpoints | None = None  # the plans of one service port come together: built once for them
    service_clusters: ServiceClusters | None = None  # likewise the clusters of one service port
    for plan in cluster_plans(index, proxy):
        if service_clusters is None or not service_clusters.serves(plan, proxy):
            service_clusters = ServiceClusters(index, plan, proxy)
        cluster = service_clusters.build(plan)
        clusters.append(kept(cluster))
        if isinstance(cluster, Encoded) or cluster.type == cluster_pb2.Cluster.EDS:  # an Encoded one is plain EDS
            if port_endpoints is None or not port_endpoints.serves(plan.service, plan.port):
                port_endpoints = PortEndpoints(index, plan.service, plan.port)
            assignment = port_endpoints.load_assignment(plan.subset_labels, plan.name)
            if drain_prototype is not None:
                drain = index.drain(plan.service.hostname, plan.subset, plan.port.number)
                assignment = assignment if drain is None else drained_load_assignment(assignment, drain)
            endpoints.append(kept(assignment))
    if proxy.role == "sidecar":
        built = build_sidecar_listeners(index, proxy)
        http_listeners, built_routes = build_sidecar_http(index, proxy, {r.name for r, _ in built})
        built.extend(http_listeners)
        clusters.append(passthrough_cluster(index))  # util.PassthroughCluster: sidecars only
    else:
        slots = merged_servers(index, proxy)  # once for both
        built = build_gateway_listeners(index, proxy, slots)
        built_routes = http_gateway_routes(index, proxy, slots)
    listeners = [r for r, _ in built]
    chain_refs = {kept_name(r): chains for r, chains in built}
    routes = [r for r, _ in built_routes]
    extension_configs: tuple[Any, ...] = ()
    config_refs: dict[str, Refs] = {}
    if drain_prototype is not None:
        add_drain_filters(listeners, drain_prototype)
        configs, config_refs, listener_refs = deliver_by_ecds(listeners, chain_refs)
        extension_configs = tuple(configs)
    else:
        listener_refs = {name: found for name, chains in chain_refs.items() if (found := merged(chains))}
    names = [n for r in listeners if not isinstance(r, tuple) for n in listener_sds_names(r)]  # pairs: Encoded
    names += [n for c in clusters if not isinstance(c, tuple) for n in cluster_sds_names(c)]
    return EnvoyResources(
        listeners=Resources(listener_pb2.Listener, sorted(listeners, key=kept_name)),
        clusters=Resources(cluster_pb2.Cluster, sorted(clusters, key=kept_name)),
        endpoints=Resources(endpoint_pb2.ClusterLoadAssignment, sorted(endpoints, key=kept_name)),
        extension_configs=extension_configs,
        routes=tuple(sorted(routes, key=lambda r: r.name)),
        secrets=tuple(build_secrets(names, proxy.namespace, index.config.secrets)) if names else (),
        references={
            "listeners": listener_refs,
            "extension_configs": config_refs,
            "routes": {r.name: {"clusters": c} for r, c in built_routes if c},
        },
    )
