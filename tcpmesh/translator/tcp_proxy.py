"""The tcp_proxy network filter for a route (pilot networkfilter.go buildOutboundNetworkFilters)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from tcpmesh.model.resources import RouteDestination, VirtualService
from tcpmesh.translator.index import Index
from tcpmesh.translator.names import resolve_short_name
from tcpmesh.translator.protos import any_pb2, duration, listener_components_pb2, tcp_proxy_pb2, type_url
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.wire import key, number, submessage, text, varint_field, varint_key

__all__ = ["TCP_PROXY_FILTER", "TCP_PROXY_TYPE_URL", "TcpProxyFilter", "destination_cluster", "tcp_proxy_filter"]

TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
_T = tcp_proxy_pb2.TcpProxy
TCP_PROXY_TYPE_URL = type_url(_T)
_FILTER_NAME = text(key(number(listener_components_pb2.Filter, "name")), TCP_PROXY_FILTER)
_TYPED_CONFIG = key(number(listener_components_pb2.Filter, "typed_config"))
_TYPE_URL = text(key(number(any_pb2.Any, "type_url")), TCP_PROXY_TYPE_URL)
_ANY_VALUE = key(number(any_pb2.Any, "value"))
_STAT_PREFIX, _CLUSTER = key(number(_T, "stat_prefix")), key(number(_T, "cluster"))
_WEIGHTED_CLUSTERS = key(number(_T, "weighted_clusters"))
_WEIGHTED = key(number(_T.WeightedCluster, "clusters"))
_CW = _T.WeightedCluster.ClusterWeight
_CW_NAME, _CW_WEIGHT = key(number(_CW, "name")), varint_key(number(_CW, "weight"))


class TcpProxyFilter(NamedTuple):
    """A tcp_proxy network filter and the clusters it sends to (what its chain, listener or ECDS config names)."""

    data: bytes
    """The Filter, serialised (deterministic: a TcpProxy has no map)."""
    clusters: frozenset[str]

    @property
    def filter(self) -> Any:
        """The Filter message (a new one on each read)."""
        return listener_components_pb2.Filter.FromString(self.data)


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
    # Filter{name, typed_config: Any{type_url, value}} as bytes, in field order (wire.py).
    value, clusters = _tcp_proxy(index, proxy, vs, route, listener_port)
    typed_config = _TYPE_URL + submessage(_ANY_VALUE, value)
    return TcpProxyFilter(_FILTER_NAME + submessage(_TYPED_CONFIG, typed_config), clusters)


def _tcp_proxy(
    index: Index, proxy: Proxy, vs: VirtualService, route: Sequence[RouteDestination], listener_port: int
) -> tuple[bytes, frozenset[str]]:
    """The serialised TcpProxy of ``tcp_proxy_filter`` and the clusters it names."""
    namespace, domain = vs.meta.namespace, index.options.domain
    first = route[0].destination
    host = resolve_short_name(first.host, namespace, domain)
    if len(route) == 1:
        name = _cluster(index, host, route[0], listener_port)
        head = text(_STAT_PREFIX, name) + text(_CLUSTER, name)
        names = frozenset((name,))
    else:
        weighted = []
        named = []
        for i, d in enumerate(route):
            if d.weight > 0:
                h = host if i == 0 else resolve_short_name(d.destination.host, namespace, domain)
                named.append(_cluster(index, h, d, listener_port))
                weighted.append(submessage(_WEIGHTED, text(_CW_NAME, named[-1]) + varint_field(_CW_WEIGHT, d.weight)))
        head = text(_STAT_PREFIX, f"{vs.meta.name}.{namespace}")
        if weighted:
            head += submessage(_WEIGHTED_CLUSTERS, b"".join(weighted))
        names = frozenset(named)
    rule = index.destination_rule(host, proxy.namespace)
    if rule is None:
        return head, names  # TcpProxy{stat_prefix, cluster | weighted_clusters} in field order (wire.py)
    proxy_cfg = _T.FromString(head)
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
