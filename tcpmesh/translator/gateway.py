"""Gateway servers × bound VirtualServices → Envoy listeners (pilot gateway.go buildGatewayListeners).

Servers of every Gateway selecting the proxy are merged per (bind, port) as istiod's mergeGateways does;
each opaque TCP server becomes one match-all filter chain carrying the first matching ``tcp:`` rule of the
first bound VirtualService; TLS PASSTHROUGH servers get one chain per matching ``tls:`` match (by SNI);
SIMPLE / MUTUAL servers terminate TLS (tls.py) in one chain matching the server's hosts, then follow the
``tcp:`` rule like an opaque server; HTTPS servers doing so get an HTTP connection manager instead, with the
server's own RDS route config (http_gateway.py). A listener that ends up with no filter chain is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from tcpmesh.model.resources import Gateway, Server, VirtualService
from tcpmesh.translator.encoded import kept
from tcpmesh.translator.gateway_wire import chain_bytes, chain_chunks, chain_message, encoded_listener, listener_chunks
from tcpmesh.translator.http_gateway import (
    connection_manager,
    gateway_route_name,
    http_gateway_listener,
    http_route_config,
    is_http_server,
    sanitized_hosts,
)
from tcpmesh.translator.index import Index, host_matches_pattern
from tcpmesh.translator.match import l4_multi_match
from tcpmesh.translator.names import WILDCARD_BIND, listener_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.protos import (
    TLS_INSPECTOR,
    base_pb2,
    duration,
    listener_components_pb2,
    listener_pb2,
    pack,
    tls_inspector_pb2,
    u32,
)
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.refs import Refs
from tcpmesh.translator.tcp_proxy import TcpProxyFilter, tcp_proxy_filter
from tcpmesh.translator.tls import downstream_tls_context, transport_socket

__all__ = [
    "OPAQUE_TCP_PROTOCOLS",
    "bound_virtual_services",
    "build_gateway_listeners",
    "http_gateway_routes",
    "merged_servers",
    "sanitized_hosts",
]

OPAQUE_TCP_PROTOCOLS = frozenset({"TCP", "MONGO", "REDIS", "MYSQL"})


@dataclass
class _Slot:
    """The servers that share one (bind, port) after merging, in gateway then server order."""

    bind: str
    port: int
    servers: list[tuple[Gateway, Server]] = field(default_factory=list)


_is_http = is_http_server


def _is_tls(server: Server) -> bool:
    """pkg/config/gateway IsTLSServer: TLS settings on a non-HTTP server."""
    return server.tls is not None and not _is_http(server)


def _is_passthrough(server: Server) -> bool:
    return server.tls is not None and server.tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH")


def _rds_route_name(server: Server) -> str:
    """gatewayRDSRouteName is empty for every server that is not HTTP or terminated HTTPS."""
    if _is_http(server):
        return "http"
    if server.port.protocol.upper() == "HTTPS" and server.tls is not None and not _is_passthrough(server):
        return "https"
    return ""


def _duplicates(hosts: tuple[str, ...], bind: str, known: dict[str, str]) -> list[str]:
    """model.CheckDuplicates: hosts already taken on this port and bind; records them only when none is."""
    dups = [h for h in hosts if known.get(h) == bind]
    if not dups:
        known.update(dict.fromkeys(hosts, bind))
    return dups


def merged_servers(index: Index, proxy: Proxy) -> list[_Slot]:
    """model/gateway.go mergeGateways, per server port across binds.

    The first server on a port decides: if it is plaintext it keeps its (bind, port), and a later server on the
    same bind is merged only when both are HTTP ("conflict with existing server"); other binds get their own
    listener. If a TLS server came first, later TLS servers share the port by SNI, and so does the *first* later
    plaintext server per bind (istiod only records binds once a second server arrives), which becomes a
    match-all chain after the SNI chains. A TLS server repeating a host already served on the port and bind is
    skipped whole ("duplicate host names").
    """
    slots: dict[tuple[str, int], _Slot] = {}
    plaintext: dict[int, tuple[str, Server]] = {}
    tls_hosts: dict[int, dict[str, str]] = {}
    non_plaintext_binds: dict[int, set[str]] = {}
    seen_ports: set[int] = set()
    for gw in index.config.gateways:
        if not proxy.serves(gw):
            continue
        for server in gw.servers:
            port, bind = server.port.number, server.bind or WILDCARD_BIND
            known = tls_hosts.setdefault(port, {})
            if server.tls is not None and _duplicates(sanitized_hosts(server, gw), bind, known):
                continue  # "skipping server on gateway ..., duplicate host names"
            key = (bind, port)
            if port not in seen_ports:
                if not _is_tls(server):
                    plaintext[port] = (bind, server)
            elif port in plaintext:
                current_bind, current = plaintext[port]
                if current_bind == bind and not (_is_http(current) and _is_http(server)):
                    continue  # canMergeProtocols is false: "conflict with existing server"
                if current_bind == bind and not _rds_route_name(server):
                    continue  # "could not build RDS name from server"
            else:
                binds = non_plaintext_binds.get(port)
                new_bind = binds is None or bind not in binds
                non_plaintext_binds.setdefault(port, set()).add(bind)
                if server.tls is None and not new_bind:
                    continue  # "TLS server without TLS options"
            slots.setdefault(key, _Slot(bind=bind, port=port)).servers.append((gw, server))
            seen_ports.add(port)
    return [slots[k] for k in sorted(slots)]


def _server_hosts_match(server: Server, gateway: Gateway, vs: VirtualService) -> bool:
    """pickMatchingGatewayHosts: a VS host must match a server host whose namespace part admits the VS."""
    for raw in server.hosts:
        ns, _, host = raw.rpartition("/")
        if ns == ".":
            ns = gateway.meta.namespace
        if ns not in ("", "*", vs.meta.namespace):
            continue
        if any(host_matches_pattern(host, h) or host_matches_pattern(h, host) for h in vs.hosts):
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


def _chain_prototype(options: TranslateOptions) -> Any:
    return listener_components_pb2.FilterChain(
        transport_socket_connect_timeout=duration(options.gateway_transport_socket_connect_timeout_ms)
    )


def _chain(index: Index, tcp: Any, server_names: tuple[str, ...] = (), tls_context: Any = None) -> Any:
    """toFilterChainMatch: no match at all when there are no SNI names or one of them is ``*``."""
    chain = listener_components_pb2.FilterChain()
    chain.CopyFrom(index.prototype("gateway_chain", _chain_prototype))
    chain.filters.append(tcp)
    if server_names and "*" not in server_names:
        chain.filter_chain_match.server_names.extend(sorted(server_names))
    if tls_context is not None:
        chain.transport_socket.CopyFrom(transport_socket(tls_context))
    return chain


def _chain_chunks(options: TranslateOptions) -> list[bytes]:
    return chain_chunks(_chain_prototype(options))


def _listener_chunks(options: TranslateOptions) -> list[bytes]:
    return listener_chunks(_listener_prototype(options))


def _listener_prototype(options: TranslateOptions) -> Any:
    listener = listener_pb2.Listener(
        traffic_direction=base_pb2.OUTBOUND, max_connections_to_accept_per_socket_event=u32(1)
    )
    listener.address.socket_address.SetInParent()
    return listener


def _tcp_filter(index: Index, proxy: Proxy, gateway: Gateway, server: Server) -> TcpProxyFilter | None:
    """buildGatewayNetworkFiltersFromTCPRoutes: the first tcp rule (of the first bound VS) matching port and
    gateway wins; a second VS is ignored. A TLSRoute's tls rules count on a terminating server (TLSRoute
    termination)."""
    for vs in bound_virtual_services(index, gateway, server):
        for rule in vs.tcp:
            if rule.route and l4_multi_match(rule.match, server.port.number, gateway.meta.key, vs.meta.namespace):
                return tcp_proxy_filter(index, proxy, vs, rule.route, server.port.number)
        # A TLSRoute's VirtualService has only tls: blocks; on a server that terminates TLS they route like tcp:.
        if dict(vs.meta.annotations).get("internal.istio.io/parents", "").startswith("TLSRoute/") and not (
            _is_passthrough(server)
        ):
            for tls_rule in vs.tls:
                for match in tls_rule.match:
                    if tls_rule.route and l4_multi_match(
                        [match], server.port.number, gateway.meta.key, vs.meta.namespace
                    ):
                        return tcp_proxy_filter(index, proxy, vs, tls_rule.route, server.port.number)
    return None


def _tcp_chains(index: Index, proxy: Proxy, gateway: Gateway, server: Server) -> list[_ChainOpts]:
    tcp = _tcp_filter(index, proxy, gateway, server)
    if tcp is None:
        return []
    chain = chain_bytes(index.prototype("gateway_chain.chunks", _chain_chunks), tcp.data)  # no match, no TLS
    return [_ChainOpts(chain, (), False, {"clusters": tcp.clusters})]


def _terminated_chains(index: Index, proxy: Proxy, gateway: Gateway, server: Server) -> list[_ChainOpts]:
    """TLS terminated at the gateway, then the server's ``tcp:`` route: one chain, SNI = the server's hosts
    (GetSNIHostsForServer: ``ns/`` stripped, deduplicated, sorted)."""
    assert server.tls is not None
    context = downstream_tls_context(server.tls)
    if context is None:
        return []  # ISTIO_MUTUAL: only istio-agent's SDS can serve the workload certificate
    tcp = _tcp_filter(index, proxy, gateway, server)
    if tcp is None:
        return []
    sni = tuple(sorted({h.rpartition("/")[2] for h in server.hosts}))
    chain = _chain(index, tcp.filter, sni, context)
    return [_ChainOpts(chain, sni, True, {"clusters": tcp.clusters})]


def _https_chains(index: Index, gateway: Gateway, server: Server, bind: str, listener_port: int) -> list[_ChainOpts]:
    """An HTTPS server terminating TLS: one chain (SNI = the server's hosts) whose connection manager fetches the
    server's own route config; stat prefix the server's name (istiod), else the listener's."""
    assert server.tls is not None
    context = downstream_tls_context(server.tls)
    if context is None:
        return []  # ISTIO_MUTUAL: only istio-agent's SDS can serve the workload certificate
    route_name = gateway_route_name(server, listener_port, gateway)
    hcm = connection_manager(route_name, server.name or f"outbound_{bind}_{listener_port}")
    sni = tuple(sorted({h.rpartition("/")[2] for h in server.hosts}))
    return [_ChainOpts(_chain(index, hcm, sni, context), sni, True, {"routes": frozenset((route_name,))})]


def _passthrough_chains(
    index: Index, proxy: Proxy, gateway: Gateway, server: Server, known_sni: dict[str, str]
) -> list[_ChainOpts]:
    """buildGatewayNetworkFiltersFromTLSRoutes: one chain per matching ``tls.match`` entry, SNI = its sniHosts.

    A match naming any SNI host already used on this listener port and bind is skipped whole (CheckDuplicates);
    Envoy would otherwise reject the listener for overlapping filter chain matches.
    """
    chains = []
    bind = server.bind or WILDCARD_BIND
    for vs in bound_virtual_services(index, gateway, server):
        for rule in vs.tls:
            if not rule.route:
                continue
            for match in rule.match:
                if not l4_multi_match([match], server.port.number, gateway.meta.key, vs.meta.namespace):
                    continue
                # Repeats inside one match are dropped: Envoy rejects a chain listing a server name twice.
                sni = tuple(dict.fromkeys(match.sni_hosts))
                if _duplicates(sni, bind, known_sni):
                    continue  # "skipping VirtualService ... duplicate SNI host names"
                tcp = tcp_proxy_filter(index, proxy, vs, rule.route, server.port.number)
                chain = _chain(index, tcp.filter, sni)
                chains.append(_ChainOpts(chain, sni, False, {"clusters": tcp.clusters}))
    return chains


class _ChainOpts(NamedTuple):  # not a frozen dataclass: one per chain, built several times faster
    chain: Any
    """A FilterChain: a message, or its bytes (gateway_wire.chain_bytes)."""
    sni_hosts: tuple[str, ...]
    has_alpn: bool
    refs: Refs
    """What the chain's filters name (its tcp_proxy's clusters, its connection manager's route config)."""


def _port_translation(index: Index, proxy: Proxy) -> dict[int, int]:
    """gateway.go resolvePorts: a Service selecting the gateway pod may translate a port to its targetPort."""
    out: dict[int, int] = {}
    for svc in index.config.services:
        if svc.selector and svc.meta.namespace == proxy.namespace and proxy.selected_by(svc.selector):
            for p in svc.ports:
                if isinstance(p.target_port, int) and p.target_port:
                    out.setdefault(p.port, p.target_port)
    return out


def http_gateway_routes(
    index: Index, proxy: Proxy, slots: list[_Slot] | None = None
) -> list[tuple[Any, frozenset[str]]]:
    """The RouteConfiguration of each connection manager build_gateway_listeners makes: one per HTTP listener
    (its HTTP servers), one per terminated HTTPS server that got a chain; each with the clusters it sends to.
    ``slots``: ``merged_servers(index, proxy)``, when the caller has it."""
    out = []
    ports = _port_translation(index, proxy)
    for slot in merged_servers(index, proxy) if slots is None else slots:
        if not slot.servers:
            continue
        port = ports.get(slot.port, slot.port)
        first_gateway, first = slot.servers[0]
        if _is_http(first):
            servers = [
                (gw, s, bound_virtual_services(index, gw, s, any_port=True)) for gw, s in slot.servers if _is_http(s)
            ]
            out.append(http_route_config(index, proxy, gateway_route_name(first, port, first_gateway), servers))
            continue
        for gw, server in slot.servers:
            if _is_https_terminated(server) and server.tls and downstream_tls_context(server.tls) is not None:
                bound = bound_virtual_services(index, gw, server, any_port=True)
                out.append(http_route_config(index, proxy, gateway_route_name(server, port, gw), [(gw, server, bound)]))
    return out


def _is_https_terminated(server: Server) -> bool:
    """IsHTTPSServerWithTLSTermination."""
    return server.port.protocol.upper() == "HTTPS" and server.tls is not None and not _is_passthrough(server)


def build_gateway_listeners(
    index: Index, proxy: Proxy, slots: list[_Slot] | None = None
) -> list[tuple[Any, tuple[Refs, ...]]]:
    """buildGatewayListeners / buildGatewayTCPBasedFilterChains for the TCP-based servers of each slot; each
    listener (a message, or an Encoded one in its ``kept`` form) with what its filter chains name, in order.

    A port whose first server is plaintext HTTP gets an HTTP connection manager with RDS (http_gateway.py), so
    does each terminated HTTPS server (its own chain and route config); AUTO_PASSTHROUGH servers (SNI-DNAT
    chains) are not translated. ``slots``: ``merged_servers(index, proxy)``, when the caller has it (only read).
    """
    listeners: list[tuple[Any, tuple[Refs, ...]]] = []
    ports = _port_translation(index, proxy)
    known_sni: dict[int, dict[str, str]] = {}  # tlsHostsByPort: listener port → SNI host → bind
    for slot in merged_servers(index, proxy) if slots is None else slots:
        if not slot.servers:
            continue
        port = ports.get(slot.port, slot.port)
        if _is_http(slot.servers[0][1]):  # the port's first server decides p.IsHTTP() for the whole listener
            route_name = gateway_route_name(slot.servers[0][1], port, slot.servers[0][0])
            # Its route config comes from http_gateway_routes.
            listeners.append(
                (http_gateway_listener(slot.bind, port, route_name), ({"routes": frozenset((route_name,))},))
            )
            continue
        opts: list[_ChainOpts] = []
        for gateway, server in slot.servers:
            if _is_https_terminated(server):
                opts.extend(_https_chains(index, gateway, server, slot.bind, port))
                continue
            if server.port.protocol.upper() == "UDP" or _rds_route_name(server):
                continue
            if server.tls is None:
                opts.extend(_tcp_chains(index, proxy, gateway, server))
            elif server.tls.mode == "PASSTHROUGH":
                opts.extend(_passthrough_chains(index, proxy, gateway, server, known_sni.setdefault(port, {})))
            elif not _is_passthrough(server):
                opts.extend(_terminated_chains(index, proxy, gateway, server))
        if not opts:
            continue  # "must have more than 0 chains in listener"
        inspector = any(o.sni_hosts or o.has_alpn for o in opts)
        if index.options.inline_weights and not inspector and all(isinstance(o.chain, bytes) for o in opts):
            # Plain TCP chains, delivered inline: nothing changes the listener after this, so it stays bytes.
            chunks = index.prototype("gateway_listener.chunks", _listener_chunks)
            listener_bytes = encoded_listener(chunks, slot.bind, port, [o.chain for o in opts])
            listeners.append((kept(listener_bytes), tuple(o.refs for o in opts)))
            continue
        listener = listener_pb2.Listener()
        listener.CopyFrom(index.prototype("gateway_listener", _listener_prototype))
        listener.name = listener_name(slot.bind, port)
        address = listener.address.socket_address
        address.address = slot.bind
        address.port_value = port
        listener.filter_chains.extend([chain_message(o.chain) for o in opts])
        if inspector:
            # buildGatewayListener: SNI to match (even ``*``) or ALPN to negotiate needs the TLS inspector.
            listener.listener_filters.add(
                name=TLS_INSPECTOR,
                typed_config=pack(tls_inspector_pb2.TlsInspector(initial_read_buffer_size=u32(512))),
            )
        listeners.append((listener, tuple(o.refs for o in opts)))
    return listeners
