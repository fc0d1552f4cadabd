"""What every analyzer reads: the config, the translator's index of it, the proxies, and shared lookups.

Binding and match rules are the translator's own (gateway.py, match.py), so the analysis reports exactly
what the generated Envoy config will do, not a second opinion of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from tcpmesh.model.config import Config
from tcpmesh.model.resources import Gateway, RouteDestination, Server, TCPRoute, TLSRoute, VirtualService
from tcpmesh.model.resources_http import HTTPRoute
from tcpmesh.translator.gateway import OPAQUE_TCP_PROTOCOLS, bound_virtual_services
from tcpmesh.translator.http_gateway import is_http_server
from tcpmesh.translator.index import Index, build_index, host_matches_pattern
from tcpmesh.translator.match import l4_multi_match
from tcpmesh.translator.names import resolve_gateway_name, resolve_short_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.services import MeshService

__all__ = [
    "Context",
    "Destination",
    "bound_virtual_services",
    "is_http_route_server",
    "is_passthrough_server",
    "is_tcp_route_server",
    "make_context",
    "route_destinations",
    "rule_kind",
    "rule_matches",
    "rule_servers",
    "services_for_host",
    "tcp_winner",
]

_TERMINATING = frozenset({"SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"})


@dataclass(frozen=True, kw_only=True, eq=False)
class Context:
    config: Config
    index: Index
    proxies: tuple[Proxy, ...]

    @property
    def domain(self) -> str:
        return self.index.options.domain

    @property
    def proxy_namespace(self) -> str:
        """The namespace DestinationRules are looked up from: the first proxy's, as the translator does."""
        return self.proxies[0].namespace if self.proxies else "istio-system"

    def gateway(self, key: str) -> Gateway | None:
        return next((g for g in self.config.gateways if g.meta.key == key), None)


def make_context(config: Config, options: TranslateOptions, proxies: Sequence[Proxy]) -> Context:
    return Context(config=config, index=build_index(config, options), proxies=tuple(proxies))


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """One route destination of a VirtualService with its field path and resolved FQDN."""

    vs: VirtualService
    path: str
    """``spec.tcp[0].route[1]`` (for a mirror, ``spec.http[0].mirror``)."""
    rule: TCPRoute | TLSRoute | HTTPRoute
    route: RouteDestination
    host: str
    at: str = ""
    """The path of the ``destination`` itself: ``spec.tcp[0].route[1].destination``, ``spec.http[0].mirror``,
    ``spec.http[0].mirrors[1].destination``."""


def route_destinations(ctx: Context, vs: VirtualService) -> Iterator[Destination]:
    rules: list[tuple[str, TCPRoute | TLSRoute]] = [(f"spec.tcp[{i}]", r) for i, r in enumerate(vs.tcp)]
    rules += [(f"spec.tls[{i}]", r) for i, r in enumerate(vs.tls)]
    for rule_path, rule in rules:
        for j, route in enumerate(rule.route):
            host = resolve_short_name(route.destination.host, vs.meta.namespace, ctx.domain)
            path = f"{rule_path}.route[{j}]"
            yield Destination(vs=vs, path=path, rule=rule, route=route, host=host, at=f"{path}.destination")
    for i, http in enumerate(vs.http):
        # istiod's analyzers look at the mirrors as at the route destinations (getHTTPMirrorDestinations).
        targets = [
            (f"spec.http[{i}].route[{j}]", ".destination", hd.destination, hd.weight) for j, hd in enumerate(http.route)
        ]
        if http.mirror is not None:
            targets.append((f"spec.http[{i}].mirror", "", http.mirror, 0))
        for k, m in enumerate(http.mirrors):
            if m is not None and m.destination is not None:
                targets.append((f"spec.http[{i}].mirrors[{k}]", ".destination", m.destination, 0))
        for path, suffix, destination, weight in targets:
            host = resolve_short_name(destination.host, vs.meta.namespace, ctx.domain)
            route = RouteDestination(destination=destination, weight=weight)
            yield Destination(vs=vs, path=path, rule=http, route=route, host=host, at=path + suffix)


def services_for_host(ctx: Context, host: str) -> list[MeshService]:
    """Services a (possibly wildcard) host names: exact, a wildcard ServiceEntry covering it, or covered by it."""
    exact = ctx.index.service(host)
    if exact is not None:
        return [exact]
    return [
        s
        for s in ctx.index.services
        if host_matches_pattern(s.hostname, host) or host_matches_pattern(host, s.hostname)
    ]


def is_passthrough_server(server: Server) -> bool:
    return (
        server.port.protocol.upper() in ("TLS", "HTTPS") and server.tls is not None and server.tls.mode == "PASSTHROUGH"
    )


def is_tcp_route_server(server: Server) -> bool:
    """Servers whose filter chain is built from ``tcp:`` rules: opaque TCP, or TLS terminated then TCP (§2)."""
    protocol = server.port.protocol.upper()
    if protocol in OPAQUE_TCP_PROTOCOLS:
        return server.tls is None
    return protocol == "TLS" and server.tls is not None and server.tls.mode in _TERMINATING


def is_http_route_server(server: Server) -> bool:
    """Servers whose routes are built from ``http:`` rules: HTTP-family, or HTTPS terminated (§ gateway.go)."""
    if is_http_server(server):
        return True
    return server.port.protocol.upper() == "HTTPS" and server.tls is not None and server.tls.mode in _TERMINATING


def rule_matches(rule: TCPRoute | TLSRoute | HTTPRoute, gateway: Gateway, server: Server, vs: VirtualService) -> bool:
    """A rule applies to a server when it has a route and one of its matches (or none) fits port and gateway
    (an http rule's source labels are the proxy's business, not looked at here)."""
    if isinstance(rule, HTTPRoute):
        if not (rule.route or rule.redirect or rule.direct_response or rule.delegate):
            return False
        port, key, ns = server.port.number, gateway.meta.key, vs.meta.namespace
        return not rule.match or any(
            (not m.port or m.port == port)
            and (not m.gateways or key in {resolve_gateway_name(g, ns) for g in m.gateways})
            for m in rule.match
        )
    return bool(rule.route) and l4_multi_match(rule.match, server.port.number, gateway.meta.key, vs.meta.namespace)


def tcp_winner(ctx: Context, gateway: Gateway, server: Server) -> tuple[VirtualService, int] | None:
    """The (VirtualService, tcp rule index) istiod uses for a TCP server: the first matching rule of the first VS."""
    for vs in bound_virtual_services(ctx.index, gateway, server, any_port=True):
        for i, rule in enumerate(vs.tcp):
            if rule_matches(rule, gateway, server, vs):
                return vs, i
    return None


def rule_kind(rule: TCPRoute | TLSRoute | HTTPRoute) -> tuple[str, Callable[[Server], bool]]:
    """The kind of gateway server a rule is for, and its test."""
    if isinstance(rule, HTTPRoute):
        return "HTTP/HTTPS-terminating", is_http_route_server
    if isinstance(rule, TCPRoute):
        return "TCP/TLS-terminating", is_tcp_route_server
    return "TLS PASSTHROUGH", is_passthrough_server


def rule_servers(
    ctx: Context, vs: VirtualService, rule: TCPRoute | TLSRoute | HTTPRoute
) -> list[tuple[Gateway, Server]]:
    """Servers of the VS's gateways that a rule applies to: bound by hosts, matched, and of the right kind."""
    _, fits = rule_kind(rule)
    out = []
    for key in ctx.index.vs_gateways(vs):
        gateway = ctx.gateway(key)
        if gateway is None:
            continue
        for server in gateway.servers:
            if (
                fits(server)
                and rule_matches(rule, gateway, server, vs)
                and vs in bound_virtual_services(ctx.index, gateway, server, any_port=True)
            ):
                out.append((gateway, server))
    return out
