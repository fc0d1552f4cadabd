"""The tcp_proxy network filter for a route (pilot networkfilter.go buildOutboundNetworkFilters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tcpmesh.model.resources import RouteDestination, VirtualService
from tcpmesh.translator.index import Index
from tcpmesh.translator.names import resolve_short_name
from tcpmesh.translator.protos import any_pb2, duration, listener_components_pb2, tcp_proxy_pb2, type_url
from tcpmesh.translator.proxy import Proxy

__all__ = ["TCP_PROXY_FILTER", "TCP_PROXY_TYPE_URL", "TcpProxyFilter", "destination_cluster", "tcp_proxy_filter"]

TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
_T = tcp_proxy_pb2.TcpProxy
TCP_PROXY_TYPE_URL = type_url(_T)


class TcpProxyFilter(NamedTuple):
    """A tcp_proxy network filter and the clusters it sends to (what its chain, listener or ECDS config names)."""

    filter: Any
    clusters: frozenset[str]


def destination_cluster(index: Index, vs: VirtualService, dest: RouteDestination, listener_port: int) -> str:
    """route.go GetDestinationCluster: the destination port, else the service's only port, else the listener port.

    No existence check is made: a route to an unknown host or subset names a cluster nobody defines,
    and Envoy closes such connections (reported by ``tcpmesh analyze``).
    """
    host = resolve_short_name(dest.destination.host, vs.meta.namespace, index.options.domain)
    return _cluster(index, host, dest, listener_port)


def _cluster(index: Index, host: str, dest: RouteDestination, listener_port: int) -> str:
    """destination_cluster for ``dest`` whose host resolves to ``host``."""
    port = dest.destination.port
    if not port:
        svc = index.service(host)
        port = svc.ports[0].number if svc is not None and len(svc.ports) == 1 else listener_port
    return f"outbound|{port}|{dest.destination.subset}|{host}"  # names.cluster_name, inlined (hot path)


def tcp_proxy_filter(
    index: Index, proxy: Proxy, vs: VirtualService, route: Sequence[RouteDestination], listener_port: int
) -> TcpProxyFilter:
    """One destination → ``cluster``; several → ``weighted_clusters`` in route order with weight-0 ones dropped.

    Weights pass through unnormalised. idle_timeout, max_downstream_connection_duration and the
    source-IP hash policy come from the top-level DestinationRule of the first destination's host.
    """
    # Any.Pack, without its pure-Python helper: the same type URL and (non-deterministic) serialisation.
    value, clusters = _tcp_proxy(index, proxy, vs, route, listener_port)
    typed_config = any_pb2.Any(type_url=TCP_PROXY_TYPE_URL, value=value)
    return TcpProxyFilter(listener_components_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=typed_config), clusters)


def _tcp_proxy(
    index: Index, proxy: Proxy, vs: VirtualService, route: Sequence[RouteDestination], listener_port: int
) -> tuple[bytes, frozenset[str]]:
    """The serialised TcpProxy of ``tcp_proxy_filter`` and the clusters it names."""
    namespace, domain = vs.meta.namespace, index.options.domain
    first = route[0].destination
    host = resolve_short_name(first.host, namespace, domain)
    if len(route) == 1:
        name = _cluster(index, host, route[0], listener_port)
        proxy_cfg = _T(cluster=name, stat_prefix=name)
        names = frozenset((name,))
    else:
        proxy_cfg = _T(stat_prefix=f"{vs.meta.name}.{namespace}")
        clusters = proxy_cfg.weighted_clusters.clusters
        named = []
        for i, d in enumerate(route):
            if d.weight > 0:
                h = host if i == 0 else resolve_short_name(d.destination.host, namespace, domain)
                named.append(_cluster(index, h, d, listener_port))
                clusters.add(name=named[-1], weight=d.weight)
        names = frozenset(named)
    rule = index.destination_rule(host, proxy.namespace)
    if rule is not None:
        policy = rule.traffic_policy
        pool = policy.connection_pool if policy else None
        tcp = pool.tcp if pool else None
        if tcp is not None:
            if tcp.idle_timeout_ms is not None:
                proxy_cfg.idle_timeout.CopyFrom(duration(tcp.idle_timeout_ms))
            if tcp.max_connection_duration_ms is not None:
                proxy_cfg.max_downstream_connection_duration.CopyFrom(duration(tcp.max_connection_duration_ms))
        if _source_ip_hash(index, rule, first.subset, single=len(route) == 1):
            proxy_cfg.hash_policy.add().source_ip.SetInParent()
    return proxy_cfg.SerializeToString(), names


def _source_ip_hash(index: Index, rule: Any, subset: str, *, single: bool) -> bool:
    """maybeSetHashPolicy: top-level consistentHash.useSourceIp; a subset LB overrides it for one destination."""
    if rule is None:
        return False
    lb = rule.traffic_policy.load_balancer if rule.traffic_policy else None
    if single and subset:
        sub = next((s for s in rule.subsets if s.name == subset), None)
        if sub is not None and sub.traffic_policy is not None and sub.traffic_policy.load_balancer is not None:
            lb = sub.traffic_policy.load_balancer
    return bool(lb is not None and lb.consistent_hash is not None and lb.consistent_hash.use_source_ip)
