"""Gateway HTTP servers → a listener with an http_connection_manager fetching its routes by RDS over ADS, and
the RouteConfiguration ``http.<port>`` it names (pilot gateway.go buildGatewayHTTPFilterChainOpts and
buildGatewayHTTPRouteConfig).

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
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import wrappers_pb2

from tcpmesh.model.resources import Gateway, Server, VirtualService
from tcpmesh.translator.http_route import FAULT_FILTER, http_routes, is_catch_all
from tcpmesh.translator.index import Index, host_matches_pattern
from tcpmesh.translator.names import listener_name
from tcpmesh.translator.protos import base_pb2, listener_components_pb2, listener_pb2, pack, u32
from tcpmesh.translator.proxy import Proxy

__all__ = ["HCM_FILTER", "gateway_route_name", "http_gateway_listener", "http_route_config"]

HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"


def gateway_route_name(port: int) -> str:
    """gatewayRDSRouteName for a plaintext HTTP server."""
    return f"http.{port}"


def http_gateway_listener(bind: str, listener_port: int, server_port: int) -> Any:
    """One filter chain: the HCM with RDS over ADS, the fault filter (per-route configs enable it) and the router."""
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=f"outbound_{bind}_{server_port}", use_remote_address=wrappers_pb2.BoolValue(value=True)
    )
    hcm.rds.route_config_name = gateway_route_name(server_port)
    hcm.rds.config_source.ads.SetInParent()
    hcm.rds.config_source.resource_api_version = config_source_pb2.V3
    hcm.http_filters.add(name=FAULT_FILTER, typed_config=pack(fault_pb2.HTTPFault()))
    hcm.http_filters.add(name=ROUTER_FILTER, typed_config=pack(router_pb2.Router()))
    listener = listener_pb2.Listener(
        name=listener_name(bind, listener_port),
        traffic_direction=base_pb2.OUTBOUND,
        max_connections_to_accept_per_socket_event=u32(1),
    )
    listener.address.socket_address.address = bind
    listener.address.socket_address.port_value = listener_port
    chain = listener.filter_chains.add()
    chain.filters.append(listener_components_pb2.Filter(name=HCM_FILTER, typed_config=pack(hcm)))
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


def http_route_config(index: Index, proxy: Proxy, servers: list[tuple[Gateway, Server, list[VirtualService]]]) -> Any:
    """buildGatewayHTTPRouteConfig for the HTTP servers sharing one port (``servers`` non-empty), each with the
    VirtualServices bound to it (gateway.py bound_virtual_services)."""
    port = servers[0][1].port.number
    labels = dict(proxy.labels)
    vhosts: dict[str, Any] = {}
    for gateway, server, bound in servers:
        for vs in bound:
            if not vs.http:
                continue
            hosts = _intersection(server, gateway, vs.meta.namespace, vs.hosts)
            if not hosts:
                continue
            routes = http_routes(vs, port, gateway.meta.key, labels, index)
            for host in hosts:
                vhost = vhosts.get(host)
                if vhost is None:
                    vhost = vhosts[host] = route_components_pb2.VirtualHost(name=f"{host}:{port}", domains=[host])
                vhost.routes.extend(routes)
    config = route_pb2.RouteConfiguration(
        name=gateway_route_name(port),
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,
        max_direct_response_body_size_bytes=u32(1024 * 1024),
    )
    if not vhosts:
        config.virtual_hosts.add(name=f"blackhole:{port}", domains=["*"])
        return config
    for name in sorted(vhosts, key=_vhost_order):
        vhost = vhosts[name]
        ordered = [r for r in vhost.routes if not is_catch_all(r)] + [r for r in vhost.routes if is_catch_all(r)]
        del vhost.routes[:]
        vhost.routes.extend(ordered)
        config.virtual_hosts.append(vhost)
    return config


def _vhost_order(host: str) -> tuple[bool, str]:
    """util.SortVirtualHosts: by name, with ``*`` last so Envoy's most-specific matching is not in doubt."""
    return (host == "*", host)
