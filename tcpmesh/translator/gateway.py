"""Gateway servers × bound VirtualServices → Envoy listeners (pilot gateway.go buildGatewayListeners).

Servers of every Gateway selecting the proxy are merged per (bind, port) as istiod's mergeGateways does;
each opaque TCP server becomes one match-all filter chain carrying the first matching ``tcp:`` rule of the
first bound VirtualService; TLS PASSTHROUGH servers get one chain per matching ``tls:`` match (by SNI).
A listener that ends up with no filter chain is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tcpmesh.model.resources import Gateway, Server, VirtualService
from tcpmesh.translator.index import Index, host_matches
from tcpmesh.translator.match import l4_multi_match
from tcpmesh.translator.names import WILDCARD_BIND, listener_name
from tcpmesh.translator.protos import (
    base_pb2,
    duration,
    listener_components_pb2,
    listener_pb2,
    pack,
    socket_address,
    tls_inspector_pb2,
    u32,
)
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.tcp_proxy import tcp_proxy_filter

__all__ = ["OPAQUE_TCP_PROTOCOLS", "bound_virtual_services", "build_gateway_listeners", "merged_servers"]

OPAQUE_TCP_PROTOCOLS = frozenset({"TCP", "MONGO", "REDIS", "MYSQL"})
_TLS_PROTOCOLS = frozenset({"TLS", "HTTPS"})
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"


@dataclass
class _Slot:
    """The servers that share one (bind, port) after merging, in gateway then server order."""

    bind: str
    port: int
    servers: list[tuple[Gateway, Server]] = field(default_factory=list)


def _is_tls(server: Server) -> bool:
    return server.port.protocol.upper() in _TLS_PROTOCOLS and server.tls is not None


def merged_servers(index: Index, proxy: Proxy) -> list[_Slot]:
    """mergeGateways: the first plaintext server on a port keeps it; TLS servers share it by host."""
    slots: dict[tuple[str, int], _Slot] = {}
    for gw in index.config.gateways:
        if not proxy.selected_by(gw.selector):
            continue
        for server in gw.servers:
            key = (server.bind or WILDCARD_BIND, server.port.number)
            slot = slots.setdefault(key, _Slot(bind=key[0], port=key[1]))
            if any(not _is_tls(s) for _, s in slot.servers):
                continue  # a plaintext server already owns this port ("conflict with existing server")
            if _is_tls(server):
                used = {h for _, s in slot.servers for h in s.hosts}
                if used.intersection(server.hosts):
                    continue  # "skipping server on gateway ..., duplicate host names"
            slot.servers.append((gw, server))
    return [slots[k] for k in sorted(slots)]


def _server_hosts_match(server: Server, gateway: Gateway, vs: VirtualService) -> bool:
    """pickMatchingGatewayHosts: a VS host must match a server host whose namespace part admits the VS."""
    for raw in server.hosts:
        ns, _, host = raw.rpartition("/")
        if ns == ".":
            ns = gateway.meta.namespace
        if ns not in ("", "*", vs.meta.namespace):
            continue
        if any(host_matches(host, h) or host_matches(h, host) for h in vs.hosts):
            return True
    return False


def bound_virtual_services(
    index: Index, gateway: Gateway, server: Server, *, any_port: bool = False
) -> list[VirtualService]:
    """VirtualServices bound to the gateway whose hosts admit this server and whose rules may match its port,
    in creation order (``any_port`` skips the port filter, for analysis)."""
    return [
        vs
        for vs in index.virtual_services_for_gateway(gateway.meta.key, None if any_port else server.port.number)
        if _server_hosts_match(server, gateway, vs)
    ]


def _chain(filters: list[Any], timeout_ms: int, server_names: tuple[str, ...] = ()) -> Any:
    chain = listener_components_pb2.FilterChain(filters=filters, transport_socket_connect_timeout=duration(timeout_ms))
    if server_names:
        chain.filter_chain_match.server_names.extend(server_names)
    return chain


def _tcp_chains(index: Index, proxy: Proxy, gateway: Gateway, server: Server) -> list[Any]:
    """The first tcp rule (of the first bound VS) that matches port and gateway wins; a second VS is ignored."""
    for vs in bound_virtual_services(index, gateway, server):
        for rule in vs.tcp:
            if rule.route and l4_multi_match(rule.match, server.port.number, gateway.meta.key, vs.meta.namespace):
                tcp = tcp_proxy_filter(index, proxy, vs, rule.route, server.port.number)
                return [_chain([tcp], index.options.gateway_transport_socket_connect_timeout_ms)]
    return []


def _passthrough_chains(
    index: Index, proxy: Proxy, gateway: Gateway, server: Server, seen_sni: set[tuple[str, ...]]
) -> list[Any]:
    """One chain per matching ``tls.match`` entry, ``server_names`` = its sorted sniHosts; duplicates skipped."""
    chains = []
    for vs in bound_virtual_services(index, gateway, server):
        for rule in vs.tls:
            if not rule.route:
                continue
            for match in rule.match:
                if not l4_multi_match([match], server.port.number, gateway.meta.key, vs.meta.namespace):
                    continue
                sni = tuple(sorted(set(match.sni_hosts)))
                if sni in seen_sni:
                    continue  # model.CheckDuplicates: Envoy would reject two identical matches
                seen_sni.add(sni)
                tcp = tcp_proxy_filter(index, proxy, vs, rule.route, server.port.number)
                chains.append(_chain([tcp], index.options.gateway_transport_socket_connect_timeout_ms, sni))
    return chains


def _port_translation(index: Index, proxy: Proxy) -> dict[int, int]:
    """gateway.go resolvePorts: a Service selecting the gateway pod may translate a port to its targetPort."""
    out: dict[int, int] = {}
    for svc in index.config.services:
        if svc.selector and proxy.selected_by(svc.selector) and svc.meta.namespace == proxy.namespace:
            for p in svc.ports:
                if isinstance(p.target_port, int) and p.target_port:
                    out.setdefault(p.port, p.target_port)
    return out


def build_gateway_listeners(index: Index, proxy: Proxy) -> list[Any]:
    listeners = []
    ports = _port_translation(index, proxy)
    for slot in merged_servers(index, proxy):
        chains: list[Any] = []
        seen_sni: set[tuple[str, ...]] = set()
        for gateway, server in slot.servers:
            protocol = server.port.protocol.upper()
            if protocol in OPAQUE_TCP_PROTOCOLS and server.tls is None:
                chains.extend(_tcp_chains(index, proxy, gateway, server))
            elif protocol in _TLS_PROTOCOLS and server.tls is not None and server.tls.mode == "PASSTHROUGH":
                chains.extend(_passthrough_chains(index, proxy, gateway, server, seen_sni))
        if not chains:
            continue  # "must have more than 0 chains in listener"
        port = ports.get(slot.port, slot.port)
        listener = listener_pb2.Listener(
            name=listener_name(slot.bind, port),
            address=socket_address(slot.bind, port),
            traffic_direction=base_pb2.OUTBOUND,
            max_connections_to_accept_per_socket_event=u32(1),
            filter_chains=chains,
        )
        if any(c.filter_chain_match.server_names for c in chains):
            listener.listener_filters.add(
                name=TLS_INSPECTOR,
                typed_config=pack(tls_inspector_pb2.TlsInspector(initial_read_buffer_size=u32(512))),
            )
        listeners.append(listener)
    return listeners
