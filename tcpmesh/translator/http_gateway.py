"""Gateway HTTP and HTTPS servers → http_connection_managers fetching their routes by RDS over ADS, and the
RouteConfigurations they name (pilot gateway.go createGatewayHTTPFilterChainOpts and buildGatewayHTTPRouteConfig).

Route names are istiod's (model/gateway.go gatewayRDSRouteName): every plaintext HTTP server on a listener port
shares ``http.<port>``; each terminated HTTPS server has its own ``https.<port>.<portName>.<gateway>.<namespace>``
(one filter chain per server, matched by SNI, so a server's certificates only ever serve its own hosts); either
gets ``.<bind>`` appended when the server has a bind. An HTTP server with ``tls.httpsRedirect`` marks its virtual
hosts ``require_tls: ALL`` (Envoy answers 301 to https), adding one for each server host that has none.

Virtual hosts: for each server and bound VirtualService, the VS hosts ∩ the server's hosts (the more specific
of each matching pair), one virtual host per host named ``host:port`` with domains ``[host]``
(``ignore_port_in_host_matching``, as istiod sets it); the routes of several VirtualServices for one host are
appended in creation order with catch-all routes moved last (SortVHostRoutes). No host at all: one
``blackhole:<port>`` virtual host without routes, so Envoy answers 404.

A route change is an RDS update only: the listener names the route config and never changes with it, so
connections are not drained (the HTTP counterpart of the ECDS mode for tcp_proxy).
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import config_source_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import wrappers_pb2

from tcpmesh.model.resources import Gateway, Server, VirtualService
from tcpmesh.translator.http_route import CORS_FILTER, FAULT_FILTER, http_routes, is_catch_all
from tcpmesh.translator.index import Index, host_matches_pattern
from tcpmesh.translator.names import listener_name
from tcpmesh.translator.protos import base_pb2, listener_components_pb2, listener_pb2, pack, u32
from tcpmesh.translator.proxy import Proxy

__all__ = [
    "HCM_FILTER",
    "HTTP_PROTOCOLS",
    "connection_manager",
    "gateway_route_name",
    "http_gateway_listener",
    "http_route_config",
    "is_http_server",
    "sanitized_hosts",
]

HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"
HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"})
"""protocol.Instance.IsHTTP (HTTPS is not)."""


def is_http_server(server: Server) -> bool:
    return server.port.protocol.upper() in HTTP_PROTOCOLS


def gateway_route_name(server: Server, listener_port: int, gateway: Gateway) -> str:
    """gatewayRDSRouteName: ``http.<listener port>`` for HTTP, ``https.<server port>.<port name>.<gateway>.<ns>``
    for HTTPS that is not passthrough, ``.<bind>`` appended with a bind; empty for every other server."""
    bind = f".{server.bind}" if server.bind else ""
    if is_http_server(server):
        return f"http.{listener_port}{bind}"
    tls = server.tls
    passthrough = tls is None or tls.mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH")
    if server.port.protocol.upper() == "HTTPS" and not passthrough:
        meta = gateway.meta
        return f"https.{server.port.number}.{server.port.name}.{meta.name}.{meta.namespace}{bind}"
    return ""


def connection_manager(route_name: str, stat_prefix: str, *, gateway: bool = True) -> Any:
    """buildHTTPConnectionManager with istiod's defaults: RDS over ADS, ``server: istio-envoy``, paths normalised
    (meshConfig's BASE) with escaped slashes kept, websocket upgrades, no stream idle timeout, and the HTTP
    filters the routes' typed_per_filter_config need (fault, cors) before the router. A gateway's
    (buildGatewayConnectionManager) also trusts the remote address and sanitises and sets the client
    certificate details (SANITIZE_SET; only an mTLS connection has any); a sidecar's outbound one does neither."""
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix,
        server_name="istio-envoy",
        normalize_path=wrappers_pb2.BoolValue(value=True),
        path_with_escaped_slashes_action=hcm_pb2.HttpConnectionManager.KEEP_UNCHANGED,
    )
    if gateway:
        hcm.use_remote_address.value = True
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
        details = hcm.set_current_client_cert_details
        details.subject.value, details.cert, details.dns, details.uri = True, True, True, True
    hcm.http_protocol_options.SetInParent()
    hcm.upgrade_configs.add(upgrade_type="websocket")
    hcm.stream_idle_timeout.SetInParent()  # 0s: disabled
    hcm.rds.route_config_name = route_name
    hcm.rds.config_source.ads.SetInParent()
    hcm.rds.config_source.resource_api_version = config_source_pb2.V3
    hcm.http_filters.add(name=FAULT_FILTER, typed_config=pack(fault_pb2.HTTPFault()))
    hcm.http_filters.add(name=CORS_FILTER, typed_config=pack(cors_pb2.Cors()))
    hcm.http_filters.add(name=ROUTER_FILTER, typed_config=pack(router_pb2.Router()))
    return listener_components_pb2.Filter(name=HCM_FILTER, typed_config=pack(hcm))


def http_gateway_listener(bind: str, listener_port: int, route_name: str) -> Any:
    """A plaintext HTTP port: one match-all filter chain with the connection manager for ``route_name``."""
    listener = listener_pb2.Listener(
        name=listener_name(bind, listener_port),
        traffic_direction=base_pb2.OUTBOUND,
        max_connections_to_accept_per_socket_event=u32(1),
    )
    listener.address.socket_address.address = bind
    listener.address.socket_address.port_value = listener_port
    chain = listener.filter_chains.add()
    chain.filters.append(connection_manager(route_name, f"outbound_{bind}_{listener_port}"))
    return listener


def _intersection(server: Server, gateway: Gateway, vs_namespace: str, vs_hosts: tuple[str, ...]) -> list[str]:
    """host.NamesForNamespace(server.Hosts) ∩ VS hosts: the more specific name of each matching pair."""
    out: list[str] = []
    for raw in server.hosts:
        ns, _, host = raw.rpartition("/")
        if ns == ".":
            ns = gateway.meta.namespace
        if ns not in ("", "*", vs_namespace):
            continue
        for h in vs_hosts:
            if host_matches_pattern(host, h):  # the server's host covers the VS host
                pick = h
            elif host_matches_pattern(h, host):  # the VS host covers the server's host
                pick = host
            else:
                continue
            if pick.lower() not in out:
                out.append(pick.lower())
    return out


def sanitized_hosts(server: Server, gateway: Gateway) -> tuple[str, ...]:
    """model/gateway.go sanitizeServerHostNamespace: ``./h`` → ``<gw-ns>/h``, ``*/h`` → ``h``, ``*/*`` → ``*``."""
    out = []
    for raw in server.hosts:
        ns, slash, host = raw.partition("/")
        if not slash:
            out.append(raw)
        elif ns == ".":
            out.append(f"{gateway.meta.namespace}/{host}")
        elif ns == "*":
            out.append(host)
        else:
            out.append(raw)
    return tuple(out)


def http_route_config(
    index: Index, proxy: Proxy, route_name: str, servers: list[tuple[Gateway, Server, list[VirtualService]]]
) -> tuple[Any, frozenset[str]]:
    """buildGatewayHTTPRouteConfig for the servers sharing ``route_name`` (non-empty: the HTTP servers of one
    listener, or one HTTPS server), each with the VirtualServices bound to it (gateway.py
    bound_virtual_services); and the clusters its routes send to."""
    port = servers[0][1].port.number
    labels = dict(proxy.labels)
    vhosts: dict[str, Any] = {}
    clusters: set[str] = set()
    for gateway, server, bound in servers:
        redirect = server.tls is not None and server.tls.https_redirect
        for vs in bound:
            if not vs.http:
                continue
            hosts = _intersection(server, gateway, vs.meta.namespace, vs.hosts)
            if not hosts:
                continue
            routes, sends_to = http_routes(vs, port, gateway.meta.key, labels, index, is_tls=server.tls is not None)
            clusters |= sends_to  # every host gets the routes (there is at least one)
            for host in hosts:
                vhost = vhosts.get(host)
                if vhost is None:
                    vhost = vhosts[host] = _vhost(host, port)
                vhost.routes.extend(routes)
                if redirect:
                    vhost.require_tls = route_components_pb2.VirtualHost.ALL
        if redirect:
            # Every server host redirects, routed or not (istiod takes the sanitized names as they are).
            for host in (h.lower() for h in sanitized_hosts(server, gateway)):
                vhost = vhosts.get(host)
                if vhost is None:
                    vhost = vhosts[host] = _vhost(host, port)
                vhost.require_tls = route_components_pb2.VirtualHost.ALL
    config = route_pb2.RouteConfiguration(
        name=route_name,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,
        max_direct_response_body_size_bytes=u32(1024 * 1024),
    )
    if not vhosts:
        config.virtual_hosts.add(name=f"blackhole:{port}", domains=["*"])
        return config, frozenset()
    for name in sorted(vhosts, key=_vhost_order):
        vhost = vhosts[name]
        ordered = [r for r in vhost.routes if not is_catch_all(r)] + [r for r in vhost.routes if is_catch_all(r)]
        del vhost.routes[:]
        vhost.routes.extend(ordered)
        config.virtual_hosts.append(vhost)
    return config, frozenset(clusters)


def _vhost(host: str, port: int) -> Any:
    """A virtual host as istiod makes one for a gateway (x-envoy-attempt-count sent upstream)."""
    return route_components_pb2.VirtualHost(name=f"{host}:{port}", domains=[host], include_request_attempt_count=True)


def _vhost_order(host: str) -> tuple[bool, str]:
    """util.SortVirtualHosts: by name, with ``*`` last so Envoy's most-specific matching is not in doubt."""
    return (host == "*", host)
