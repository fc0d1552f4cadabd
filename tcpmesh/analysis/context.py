"""What every analyzer reads: the config, the translator's index of it, the proxies, and shared lookups.

Binding and match rules are the translator's own (gateway.py, match.py), so the analysis reports exactly
what the generated Envoy config will do, not a second opinion of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tcpmesh.model.config import Config
from tcpmesh.model.resources import Gateway, RouteDestination, Server, TCPRoute, TLSRoute, VirtualService
from tcpmesh.model.resources_http import HTTPRoute
from tcpmesh.translator.gateway import OPAQUE_TCP_PROTOCOLS, bound_virtual_services
from tcpmesh.translator.index import Index, build_index, host_matches_pattern
from tcpmesh.translator.match import l4_multi_match
from tcpmesh.translator.names import resolve_short_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.services import MeshService

__all__ = [
    "Context",
    "Destination",
    "bound_virtual_services",
    "is_passthrough_server",
    "is_tcp_route_server",
    "make_context",
    "route_destinations",
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
    """``spec.tcp[0].route[1]``."""
    rule: TCPRoute | TLSRoute | HTTPRoute
    route: RouteDestination
    host: str


def route_destinations(ctx: Context, vs: VirtualService) -> Iterator[Destination]:
    rules: list[tuple[str, TCPRoute | TLSRoute]] = [(f"spec.tcp[{i}]", r) for i, r in enumerate(vs.tcp)]
    rules += [(f"spec.tls[{i}]", r) for i, r in enumerate(vs.tls)]
    for rule_path, rule in rules:
        for j, route in enumerate(rule.route):
            host = resolve_short_name(route.destination.host, vs.meta.namespace, ctx.domain)
            yield Destination(vs=vs, path=f"{rule_path}.route[{j}]", rule=rule, route=route, host=host)
    for i, http in enumerate(vs.http):
        for j, hd in enumerate(http.route):
            host = resolve_short_name(hd.destination.host, vs.meta.namespace, ctx.domain)
            route = RouteDestination(destination=hd.destination, weight=hd.weight)
            yield Destination(vs=vs, path=f"spec.http[{i}].route[{j}]", rule=http, route=route, host=host)


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


def rule_matches(rule: TCPRoute | TLSRoute, gateway: Gateway, server: Server, vs: VirtualService) -> bool:
    """A rule applies to a server when it has a route and one of its matches (or none) fits port and gateway."""
    return bool(rule.route) and l4_multi_match(rule.match, server.port.number, gateway.meta.key, vs.meta.namespace)


def tcp_winner(ctx: Context, gateway: Gateway, server: Server) -> tuple[VirtualService, int] | None:
    """The (VirtualService, tcp rule index) istiod uses for a TCP server: the first matching rule of the first VS."""
    for vs in bound_virtual_services(ctx.index, gateway, server, any_port=True):
        for i, rule in enumerate(vs.tcp):
            if rule_matches(rule, gateway, server, vs):
                return vs, i
    return None


def rule_servers(ctx: Context, vs: VirtualService, rule: TCPRoute | TLSRoute) -> list[tuple[Gateway, Server]]:
    """Servers of the VS's gateways that a rule applies to: bound by hosts, matched, and of the right kind."""
    fits = is_tcp_route_server if isinstance(rule, TCPRoute) else is_passthrough_server
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
