"""Services × ``mesh`` VirtualServices → a sidecar's outbound listeners (pilot listener.go
buildSidecarOutboundListeners, tls.go buildSidecarOutboundTCPFilterChainOpts / buildSidecarOutboundTLSFilterChainOpts).

One listener per (service address, TCP port), named ``<address>_<port>`` as istiod names it. Its filter
chains come from the VirtualServices bound to ``mesh`` whose hosts match the service, in creation order,
with the source predicates resolved for this proxy (see mesh_match.py).

Deliberate differences from istiod:

* **The listeners bind.** istiod's outbound listeners are virtual (``bind_to_port: false``) and reached
  through iptables and the 15001 ``virtualOutbound`` listener. Here there is no interception, so each
  listener binds its service address:port itself, and clients connect to that address directly.
  Addresses that are not loopback get ``freebind`` so a foreign clusterIP cannot make Envoy reject the
  whole update (nothing reaches such an address, though).
* **Every service has an address.** Services without a VIP get a loopback address from the service
  network (service_addresses.py) instead of sharing ``0.0.0.0_<port>``; binding the wildcard would take
  the port on every loopback address, pods included. ServiceEntries naming a CIDR still get
  ``0.0.0.0_<port>`` with ``prefix_ranges``, as in istiod.
* **No listener for ServiceEntries with resolution NONE.** Their cluster is ORIGINAL_DST, and without
  interception the original destination is this listener itself, so every connection would loop back.
* **L4 here.** HTTP-family ports get their HTTP connection manager listeners from http_sidecar.py; UDP
  ports get no listener; no 15001/15006 listeners and no inbound side.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from tcpmesh.model.resources import Destination, Meta, RouteDestination, VirtualService
from tcpmesh.translator.index import Index, host_matches_pattern
from tcpmesh.translator.mesh_match import MESH_GATEWAY, sidecar_match
from tcpmesh.translator.names import WILDCARD_BIND, listener_name, resolve_short_name
from tcpmesh.translator.protos import (
    TLS_INSPECTOR,
    address_pb2,
    base_pb2,
    circuit_breaker_pb2,
    cluster_pb2,
    duration,
    listener_components_pb2,
    listener_pb2,
    pack,
    socket_address,
    struct,
    tls_inspector_pb2,
    u32,
    wrappers_pb2,
)
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.refs import Refs
from tcpmesh.translator.service_addresses import service_addresses
from tcpmesh.translator.services import MeshService, SvcPort
from tcpmesh.translator.tcp_proxy import TcpProxyFilter, tcp_proxy_filter

__all__ = [
    "PASSTHROUGH_CLUSTER",
    "build_sidecar_listeners",
    "config_metadata",
    "mesh_virtual_services_for_host",
    "passthrough_cluster",
]

PASSTHROUGH_CLUSTER = "PassthroughCluster"
_TLS_PROTOCOLS = frozenset({"TLS", "HTTPS"})
_HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
_MAX = 4294967295


@dataclass(frozen=True, slots=True)
class _ChainOpts:
    """istiod's filterChainOpts, reduced to what an L4 outbound chain carries."""

    tcp_proxy: TcpProxyFilter
    cidrs: tuple[str, ...] = ()
    server_names: tuple[str, ...] = ()
    vs: VirtualService | None = None

    def key(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """What Envoy matches on: two chains with the same key on one listener are rejected."""
        return tuple(sorted(self.server_names)), tuple(sorted(self.cidrs))


class _MeshHosts:
    """The ``mesh`` VirtualServices by resolved host, so each service is a lookup (getConfigsForHost)."""

    def __init__(self, index: Index) -> None:
        self.bound = index.virtual_services_for_gateway(MESH_GATEWAY)
        self.exact: dict[str, list[int]] = {}
        self.wildcard: list[tuple[str, int]] = []
        for pos, vs in enumerate(self.bound):
            for raw in dict.fromkeys(resolve_short_name(h, vs.meta.namespace, index.options.domain) for h in vs.hosts):
                if raw.startswith("*"):
                    self.wildcard.append((raw, pos))
                else:
                    self.exact.setdefault(raw, []).append(pos)

    def for_host(self, hostname: str) -> list[VirtualService]:
        positions = set(self.exact.get(hostname, ()))
        positions.update(pos for pattern, pos in self.wildcard if host_matches_pattern(pattern, hostname))
        return [self.bound[pos] for pos in sorted(positions)]


def mesh_virtual_services_for_host(index: Index, hostname: str) -> list[VirtualService]:
    """VirtualServices bound to ``mesh`` with a host matching ``hostname``, in creation order."""
    return _MeshHosts(index).for_host(hostname)


def config_metadata(vs: VirtualService) -> Any:
    """util.BuildConfigInfoMetadata: which VirtualService produced a chain."""
    path = f"/apis/networking.istio.io/v1/namespaces/{vs.meta.namespace}/virtual-service/{vs.meta.name}"
    return base_pb2.Metadata(filter_metadata={"istio": struct({"config": path})})


def _default_port(svc: MeshService, port: SvcPort) -> int:
    """A single-port service routes to that port; otherwise the listener port (istiod's comment: may blackhole)."""
    return svc.ports[0].number if len(svc.ports) == 1 else port.number


def _default_tcp_proxy(index: Index, proxy: Proxy, svc: MeshService, port: SvcPort) -> TcpProxyFilter:
    """buildOutboundNetworkFiltersWithSingleDestination to ``outbound|<port>||<svc>`` with the service's DR."""
    target = _default_port(svc, port)
    synthetic = VirtualService(
        meta=Meta(kind="VirtualService", api_version="networking.istio.io/v1", name=svc.name, namespace=svc.namespace)
    )
    route = (RouteDestination(destination=Destination(host=svc.hostname, port=target)),)
    return tcp_proxy_filter(index, proxy, synthetic, route, port.number)


def _tcp_chain_opts(
    index: Index, proxy: Proxy, svc: MeshService, port: SvcPort, cidrs: tuple[str, ...], vss: list[VirtualService]
) -> list[_ChainOpts]:
    """buildSidecarOutboundTCPFilterChainOpts: the first catch-all rule ends the list; subnet-only matches
    of one rule share a chain; without a catch-all the default chain goes to the service itself."""
    out: list[_ChainOpts] = []
    default_added = False
    for vs in vss:
        for rule in vs.tcp:
            if not rule.match:  # implicit match: catch-all
                out.append(_ChainOpts(tcp_proxy_filter(index, proxy, vs, rule.route, port.number), cidrs, vs=vs))
                return out
            subnets: list[str] = []
            for match in rule.match:
                if not sidecar_match(match, proxy, port.number):
                    continue
                if not match.destination_subnets:
                    out.append(_ChainOpts(tcp_proxy_filter(index, proxy, vs, rule.route, port.number), cidrs, vs=vs))
                    return out
                subnets.extend(match.destination_subnets)
            if subnets:
                # istiod attaches no config metadata to these chains.
                out.append(_ChainOpts(tcp_proxy_filter(index, proxy, vs, rule.route, port.number), tuple(subnets)))
                if sorted(subnets) == sorted(cidrs):
                    default_added = True  # "Existing filter chain with same matching CIDR"
    if not default_added:
        out.append(_ChainOpts(_default_tcp_proxy(index, proxy, svc, port), cidrs))
    return out


def _tls_chain_opts(
    index: Index,
    proxy: Proxy,
    svc: MeshService,
    port: SvcPort,
    cidrs: tuple[str, ...],
    vss: list[VirtualService],
    wildcard: bool,
) -> list[_ChainOpts]:
    """buildSidecarOutboundTLSFilterChainOpts: one chain per matching ``tls.match``, runtime duplicates once."""
    out: list[_ChainOpts] = []
    handled: set[str] = set()
    for vs in vss:
        for rule in vs.tls:
            for match in rule.match:
                if not sidecar_match(match, proxy, port.number):
                    continue
                if match.destination_subnets:
                    cidrs = match.destination_subnets  # istiod overwrites it for the later matches too
                runtime = ",".join(match.sni_hosts) + "|" + ",".join(match.destination_subnets)
                if runtime not in handled:
                    tcp = tcp_proxy_filter(index, proxy, vs, rule.route, port.number)
                    out.append(_ChainOpts(tcp, cidrs, tuple(sorted(match.sni_hosts)), vs))
                handled.add(runtime)
    if not out:
        # Match on SNI only when the destination address cannot tell services apart.
        sni = (svc.hostname,) if cidrs or wildcard else ()
        out.append(_ChainOpts(_default_tcp_proxy(index, proxy, svc, port), cidrs, sni))
    return out


def _cidr_range(text: str) -> Any:
    """util.ConvertAddressToCidr: an address keeps its written form; a bare IP is a full-length prefix."""
    addr, sep, length = text.partition("/")
    ip = ipaddress.ip_address(addr)
    return address_pb2.CidrRange(address_prefix=str(ip), prefix_len=u32(int(length) if sep else ip.max_prefixlen))


def _filter_chain(opts: _ChainOpts) -> Any:
    chain = listener_components_pb2.FilterChain(filters=[opts.tcp_proxy.filter])
    if opts.server_names:
        chain.filter_chain_match.server_names.extend(opts.server_names)
    if opts.cidrs:
        chain.filter_chain_match.prefix_ranges.extend(_cidr_range(c) for c in opts.cidrs)
    if opts.vs is not None:
        chain.metadata.CopyFrom(config_metadata(opts.vs))
    return chain


def _listener(bind: str, port: int, chains: list[_ChainOpts]) -> tuple[Any, tuple[Refs, ...]]:
    """The listener, and what each of its chains names (its tcp_proxy's clusters)."""
    listener = listener_pb2.Listener(
        name=listener_name(bind, port),
        address=socket_address(bind, port),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[_filter_chain(c) for c in chains],
    )
    if bind != WILDCARD_BIND and not ipaddress.ip_address(bind).is_loopback:
        listener.freebind.CopyFrom(wrappers_pb2.BoolValue(value=True))
    if any(c.server_names for c in chains):
        listener.listener_filters.add(
            name=TLS_INSPECTOR,
            typed_config=pack(tls_inspector_pb2.TlsInspector(initial_read_buffer_size=u32(512))),
        )
    return listener, tuple({"clusters": c.tcp_proxy.clusters} for c in chains)


def build_sidecar_listeners(index: Index, proxy: Proxy) -> list[tuple[Any, tuple[Refs, ...]]]:
    """Outbound listeners for a sidecar, one per (service address, L4 port), each with what its chains name;
    see the module docstring."""
    addresses = service_addresses(index.services, index.options.service_network)
    hosts = _MeshHosts(index)
    slots: dict[tuple[str, int], list[_ChainOpts]] = {}
    for svc in index.services:
        address = addresses.get(svc.hostname)
        if address is None or index.service(svc.hostname) is not svc:
            continue  # beyond the service network, or a later duplicate of the hostname
        if svc.kind == "ServiceEntry" and svc.resolution == "NONE":
            continue  # ORIGINAL_DST back to this very listener: see the module docstring
        wildcard = "/" in address
        bind = WILDCARD_BIND if wildcard else address
        cidrs = (address,) if wildcard else ()
        vss = hosts.for_host(svc.hostname)
        for port in svc.ports:
            if port.protocol == "UDP" or port.protocol in _HTTP_PROTOCOLS:
                continue
            if port.protocol in _TLS_PROTOCOLS:
                chains = _tls_chain_opts(index, proxy, svc, port, cidrs, vss, wildcard)
            else:
                chains = _tcp_chain_opts(index, proxy, svc, port, cidrs, vss)
            existing = slots.get((bind, port.number))
            if existing is None:
                slots[(bind, port.number)] = chains
            elif wildcard:
                # listener.go mergeTCPFilterChains: a later service's chain that conflicts is dropped.
                seen = {c.key() for c in existing}
                existing.extend(c for c in chains if c.key() not in seen)
            # else: two services on one VIP and port; istiod keeps the first ("conflicts with ... omitting").
    return [_listener(bind, port, chains) for (bind, port), chains in sorted(slots.items())]


def passthrough_cluster(index: Index) -> Any:
    """util.PassthroughCluster (cluster_builder.go buildDefaultPassthroughCluster): ORIGINAL_DST, sidecars only.

    istiod also sets HTTP protocol options on it (use_downstream_protocol_config); tcpmesh is L4 and omits them.
    """
    c = cluster_pb2.Cluster
    return c(
        name=PASSTHROUGH_CLUSTER,
        type=c.ORIGINAL_DST,
        connect_timeout=duration(index.options.connect_timeout_ms),
        lb_policy=c.CLUSTER_PROVIDED,
        circuit_breakers=circuit_breaker_pb2.CircuitBreakers(
            thresholds=[
                circuit_breaker_pb2.CircuitBreakers.Thresholds(
                    max_connections=u32(_MAX),
                    max_pending_requests=u32(_MAX),
                    max_requests=u32(_MAX),
                    max_retries=u32(_MAX),
                )
            ]
        ),
    )
