"""HTTP-family service ports → a sidecar's outbound HTTP listeners and their RouteConfigurations (pilot
listener.go buildSidecarOutboundHTTPListenerOpts, httproute.go buildSidecarOutboundHTTPRouteConfig /
BuildSidecarOutboundVirtualHosts, route.go BuildSidecarVirtualHostWrapper).

One listener per (service address, HTTP port), named ``<address>_<port>`` and binding it like the TCP ones
(sidecar.py), with an http_connection_manager fetching the route config ``<port>`` by RDS over ADS: the one
istiod shares between every service on that port. Its virtual hosts, as istiod builds them for a sidecar:

* each ``mesh`` VirtualService (creation order) with routes for this proxy and port — ``gateways`` must name
  ``mesh`` or be absent, ``sourceLabels`` / ``sourceNamespace`` must fit the proxy (ignored when ``gateways``
  is given, as sourceMatchHTTP does), ``port`` must be the listener's; the routes stop at the first catch-all —
  gets one virtual host ``<svc>:<port>`` per matching service with an HTTP port here, domains from
  sidecar_domains.py, and one ``<host>:<port>`` (domain ``host``) per VS host naming no service, kept only when
  the VS matched a service on the port (or the port is 80, istiod's "gross HACK");
* every other service with an HTTP port here gets a ``default`` route to ``outbound|<port>||<svc>``;
* a virtual host or domain already taken is dropped (the earlier VirtualService wins, "duplicate domain");
  wildcard VS hosts take the services they match unless a more specific wildcard VS does.

A route change is an RDS update only: the listener never changes with it, so nothing drains.

Deliberate differences from istiod:

* **The catch-all virtual host is ``block_all`` (502).** istiod's default (ALLOW_ANY) routes unknown hosts to
  PassthroughCluster, an ORIGINAL_DST cluster; without interception the original destination is this listener
  itself, so tcpmesh answers as REGISTRY_ONLY does (seed 001 switches the mesh to REGISTRY_ONLY anyway).
* **Every service's own address is a domain**, as a Service's clusterIP is in istiod: tcpmesh gives every
  service an address (service_addresses.py), so ``http://<address>:<port>/`` reaches the service.
* No sniffed (``auto``) ports, no ``Sidecar`` egress scoping, no consistent-hash policies, no decorators nor
  HCM tracing/telemetry filters; services whose address is a CIDR and
  ServiceEntries with resolution NONE get no HTTP listener (see sidecar.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from envoy.config.route.v3 import route_components_pb2, route_pb2

from tcpmesh.model.resources import Destination, Meta, VirtualService
from tcpmesh.model.resources_http import HTTPMatch, HTTPRoute, HTTPRouteDestination
from tcpmesh.translator.http_gateway import connection_manager
from tcpmesh.translator.http_route import http_routes
from tcpmesh.translator.index import Index, host_matches_pattern
from tcpmesh.translator.mesh_match import MESH_GATEWAY, source_labels_match, source_namespace_match
from tcpmesh.translator.names import listener_name, resolve_short_name
from tcpmesh.translator.protos import base_pb2, listener_pb2, u32, wrappers_pb2
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.refs import Refs
from tcpmesh.translator.service_addresses import service_addresses
from tcpmesh.translator.services import MeshService
from tcpmesh.translator.sidecar_domains import proxy_dns_domain, service_domains

__all__ = ["HTTP_PROTOCOLS", "build_sidecar_http", "sidecar_route_name"]

HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
"""protocol.Instance.IsHTTP for service ports (HTTP_PROXY is a Sidecar egress listener protocol only)."""
BLOCK_ALL = "block_all"
_MAX_DIRECT_BODY = 1024 * 1024


def sidecar_route_name(port: int) -> str:
    """buildSidecarOutboundHTTPListenerOpts: the route config shared by every service on one port."""
    return str(port)


def _listener(bind: str, port: int) -> Any:
    """The gateway's connection manager (RDS over ADS, istiod's defaults and filters) with istiod's sidecar
    naming and without the gateway's remote-address trust and client-certificate details."""
    listener = listener_pb2.Listener(
        name=listener_name(bind, port),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.address.socket_address.address = bind
    listener.address.socket_address.port_value = port
    if not ipaddress.ip_address(bind).is_loopback:
        listener.freebind.CopyFrom(wrappers_pb2.BoolValue(value=True))
    chain = listener.filter_chains.add()
    chain.filters.append(
        connection_manager(sidecar_route_name(port), f"outbound_{listener_name(bind, port)}", gateway=False)
    )
    return listener


def _source_match(match: HTTPMatch, proxy: Proxy) -> bool:
    """route.go sourceMatchHTTP for the ``mesh`` gateway: with ``gateways`` only they count."""
    if match.gateways:
        return MESH_GATEWAY in match.gateways
    return source_labels_match(match.source_labels, proxy) and source_namespace_match(match.source_namespace, proxy)


def _for_proxy(vs: VirtualService, proxy: Proxy) -> VirtualService:
    """``vs`` with the matches that cannot apply to this sidecar removed (a rule left without any is dropped) and
    the source predicates of the others cleared, so http_routes only checks ports."""
    rules: list[HTTPRoute] = []
    for rule in vs.http:
        if not rule.match:
            rules.append(rule)
            continue
        kept = tuple(
            replace(m, gateways=(), source_labels=(), source_namespace="")
            for m in rule.match
            if _source_match(m, proxy)
        )
        if kept:
            rules.append(replace(rule, match=kept))
    return replace(vs, http=tuple(rules))


def _default_route(index: Index, svc: MeshService, port: int) -> tuple[Any, frozenset[str]]:
    """BuildDefaultHTTPOutboundRoute: ``default``, prefix ``/``, no timeout, the default retry policy; and the
    cluster it sends to."""
    synthetic = VirtualService(
        meta=Meta(kind="VirtualService", api_version="networking.istio.io/v1", name=svc.name, namespace=svc.namespace),
        http=(HTTPRoute(route=(HTTPRouteDestination(destination=Destination(host=svc.hostname, port=port)),)),),
    )
    (route,), clusters = http_routes(synthetic, port, MESH_GATEWAY, {}, index)
    route.name = "default"
    return route, clusters


@dataclass
class _Wrapper:
    """route.go VirtualHostWrapper for one port."""

    routes: list[Any]
    services: list[MeshService]
    vs_hosts: list[str] = field(default_factory=list)
    clusters: frozenset[str] = frozenset()
    """What ``routes`` send to."""


class _PortRoutes:
    """The virtual hosts of route config ``<port>`` for one proxy."""

    def __init__(self, index: Index, proxy: Proxy, port: int, services: list[MeshService], addresses: dict[str, str]):
        self.index, self.proxy, self.port, self.addresses = index, proxy, port, addresses
        self.by_host = {s.hostname.lower(): s for s in services}
        self.wildcard_services = [h for h in self.by_host if h.startswith("*")]

    def _http_here(self, svc: MeshService) -> bool:
        p = svc.port(self.port)
        return p is not None and p.protocol in HTTP_PROTOCOLS

    def _vs_hosts(self, vs: VirtualService) -> list[str]:
        domain = self.index.options.domain
        return [resolve_short_name(h, vs.meta.namespace, domain).lower() for h in vs.hosts]

    def _selected(self, hosts: list[str]) -> bool:
        """selectVirtualServices: a host naming a service on this port, exactly or by a wildcard either way."""
        for h in hosts:
            if h in self.by_host:
                return True
            if h.startswith("*"):
                if any(host_matches_pattern(h, s) for s in self.by_host):
                    return True
            elif any(host_matches_pattern(s, h) for s in self.wildcard_services):
                return True  # only a wildcard service host can cover an exact VS host: a lookup otherwise
        return False

    def _most_specific_wildcard(self, bound: list[tuple[VirtualService, list[str]]]) -> dict[str, int]:
        """MostSpecificWildcardVirtualServiceIndex: per service, the VS of the longest wildcard host matching it."""
        best: dict[str, tuple[int, int]] = {}
        for pos, (_, hosts) in enumerate(bound):
            for h in hosts:
                if not h.startswith("*"):
                    continue
                for svc_host in self.by_host:
                    if host_matches_pattern(h, svc_host):
                        current = best.get(svc_host)
                        if current is None or len(h) > current[0]:
                            best[svc_host] = (len(h), pos)
        return {h: pos for h, (_, pos) in best.items()}

    def _separate(
        self, pos: int, hosts: list[str], wildcard_owner: dict[str, int]
    ) -> tuple[list[str], list[MeshService]]:
        """separateVSHostsAndServices: (hosts naming no service, the services the VS's hosts name)."""
        others: list[str] = []
        matched: list[MeshService] = []
        for h in hosts:
            if h.startswith("*"):
                continue
            svc = self.by_host.get(h)
            if svc is not None:
                matched.append(svc)
            else:
                others.append(h)
        for h in hosts:
            if not h.startswith("*"):
                continue
            found = False
            for svc_host, svc in self.by_host.items():
                if not host_matches_pattern(h, svc_host):
                    continue
                found = True
                if wildcard_owner.get(svc_host) == pos:
                    matched.append(svc)
            if not found:
                others.append(h)
        return others, matched

    def wrappers(self) -> list[_Wrapper]:
        """BuildSidecarVirtualHostWrapper: the VirtualServices' hosts first, then every other service's default."""
        bound = [(vs, self._vs_hosts(vs)) for vs in self.index.virtual_services_for_gateway(MESH_GATEWAY) if vs.http]
        if self.port != 80:
            bound = [(vs, hosts) for vs, hosts in bound if self._selected(hosts)]
        owners = self._most_specific_wildcard(bound)
        out: list[_Wrapper] = []
        for pos, (vs, hosts) in enumerate(bound):
            # The proxy's labels still matter for rules http_routes adds itself (delegates' rules).
            rules = _for_proxy(vs, self.proxy)
            routes, clusters = http_routes(rules, self.port, MESH_GATEWAY, dict(self.proxy.labels), self.index)
            if not routes:
                continue
            others, matched = self._separate(pos, hosts, owners)
            services = [s for s in matched if self._http_here(s)]
            if services or self.port == 80:
                out.append(_Wrapper(routes, services, others, clusters))
        routed = {s.hostname for w in out for s in w.services}
        for svc in self.by_host.values():
            if svc.hostname not in routed and self._http_here(svc):
                route, clusters = _default_route(self.index, svc, self.port)
                out.append(_Wrapper([route], [svc], clusters=clusters))
        return out

    def virtual_hosts(self) -> tuple[list[Any], frozenset[str]]:
        """The virtual hosts, and the clusters the routes of those kept send to."""
        wrappers = self.wrappers()
        clusters: set[str] = set()
        known_fqdn = {n for w in wrappers for s in w.services for n in (s.hostname, f"{s.hostname}:{self.port}")}
        names: set[str] = set()
        taken: set[str] = set()
        proxy_domain = proxy_dns_domain(self.proxy.namespace, self.index.options.domain)
        out: list[Any] = []

        def build(host: str, w: _Wrapper, domains: list[str], alts: Iterable[str] = ()) -> None:
            name = f"{host}:{self.port}"
            if name in names:
                return  # "duplicate domain from virtual service / service"
            names.add(name)
            alt = set(alts)
            kept = [d for d in domains if d.lower() not in taken and not (d in alt and d in known_fqdn)]
            taken.update(d.lower() for d in kept)
            if kept:
                vhost = route_components_pb2.VirtualHost(name=name, domains=kept, routes=w.routes)
                vhost.include_request_attempt_count = True  # ProxyHeaders' default for sidecar outbound
                out.append(vhost)
                clusters.update(w.clusters)

        for w in wrappers:
            for host in w.vs_hosts:
                build(host, w, [host])
            for svc in w.services:
                domains, alts = service_domains(svc.hostname, self.addresses.get(svc.hostname), proxy_domain)
                build(svc.hostname, w, domains, alts)
        out.sort(key=lambda v: v.name)  # util.SortVirtualHosts
        if "*" not in taken:
            out.append(_block_all())
        return out, frozenset(clusters)


def _block_all() -> Any:
    """buildCatchAllVirtualHost under REGISTRY_ONLY: 502 for any host no virtual host names."""
    vhost = route_components_pb2.VirtualHost(name=BLOCK_ALL, domains=["*"], include_request_attempt_count=True)
    route = vhost.routes.add(name=BLOCK_ALL)
    route.match.prefix = "/"
    route.direct_response.status = 502
    return vhost


def _route_config(port: int, virtual_hosts: list[Any]) -> Any:
    return route_pb2.RouteConfiguration(
        name=sidecar_route_name(port),
        virtual_hosts=virtual_hosts,
        validate_clusters=wrappers_pb2.BoolValue(value=False),
        ignore_port_in_host_matching=True,
        max_direct_response_body_size_bytes=u32(_MAX_DIRECT_BODY),
    )


def build_sidecar_http(
    index: Index, proxy: Proxy, taken: set[str]
) -> tuple[list[tuple[Any, tuple[Refs, ...]]], list[tuple[Any, frozenset[str]]]]:
    """(listeners, route configs) for the HTTP ports of every service, each listener with what its chain names
    (its route config), each route config with the clusters it sends to; a listener name in ``taken`` (a TCP
    listener on the same address and port) is left to that listener, as istiod keeps the first."""
    services = [s for s in index.services if index.service(s.hostname) is s]
    if not any(p.protocol in HTTP_PROTOCOLS for s in services for p in s.ports):
        return [], []  # the common L4 case: skip the address assignment
    addresses = service_addresses(index.services, index.options.service_network)
    listeners: dict[str, tuple[Any, tuple[Refs, ...]]] = {}
    ports: set[int] = set()
    for svc in services:
        address = addresses.get(svc.hostname)
        if address is None or "/" in address or (svc.kind == "ServiceEntry" and svc.resolution == "NONE"):
            continue
        for p in svc.ports:
            name = listener_name(address, p.number)
            if p.protocol in HTTP_PROTOCOLS and name not in taken and name not in listeners:
                listeners[name] = (
                    _listener(address, p.number),
                    ({"routes": frozenset((sidecar_route_name(p.number),))},),
                )
                ports.add(p.number)
    routes = []
    for port in sorted(ports):
        on_port = [s for s in services if s.port(port) is not None]
        virtual_hosts, clusters = _PortRoutes(index, proxy, port, on_port, addresses).virtual_hosts()
        routes.append((_route_config(port, virtual_hosts), clusters))
    return list(listeners.values()), routes
