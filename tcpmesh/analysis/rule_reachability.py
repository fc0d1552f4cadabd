"""tcp/tls/http rules of gateway-bound VirtualServices that match no server of their gateways (TM0402): wrong
port, a match gateway the rule can never see, or a server of the wrong kind (tcp rules on a PASSTHROUGH server,
http rules on a TCP one)."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import RULE_MATCHES_NO_SERVER
from tcpmesh.analysis.context import Context, bound_virtual_services, rule_kind, rule_servers
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.resources import Gateway, TCPRoute, TLSRoute, VirtualService
from tcpmesh.model.resources_http import HTTPRoute

__all__ = ["analyze_rule_reachability"]


def analyze_rule_reachability(ctx: Context) -> Iterator[Finding]:
    for vs in ctx.config.virtual_services:
        keys = ctx.index.vs_gateways(vs)
        if "mesh" in keys:
            continue  # the rule may still apply on sidecars
        gateways = [g for g in (ctx.gateway(k) for k in keys) if g is not None]
        if not gateways or not any(_bound_anywhere(ctx, vs, g) for g in gateways):
            continue  # TM0102 / TM0107 already cover a VirtualService bound to nothing
        rules: list[tuple[str, TCPRoute | TLSRoute | HTTPRoute]] = [(f"spec.tcp[{i}]", r) for i, r in enumerate(vs.tcp)]
        rules += [(f"spec.tls[{i}]", r) for i, r in enumerate(vs.tls)]
        rules += [(f"spec.http[{i}]", r) for i, r in enumerate(vs.http)]
        for path, rule in rules:
            routed = rule.route or (
                isinstance(rule, HTTPRoute) and (rule.redirect or rule.direct_response or rule.delegate)
            )
            if not routed or rule_servers(ctx, vs, rule):
                continue
            kind, fits = rule_kind(rule)
            ports = sorted({s.port.number for g in gateways for s in g.servers if fits(s)})
            shown = ", ".join(map(str, ports)) or "none"
            yield RULE_MATCHES_NO_SERVER.at(
                vs.meta,
                f"{path}.match" if rule.match else path,
                f"matches no {kind} server of gateways {', '.join(g.meta.key for g in gateways)} "
                f"(ports: {shown}); the rule never applies",
            )


def _bound_anywhere(ctx: Context, vs: VirtualService, gateway: Gateway) -> bool:
    return any(vs in bound_virtual_services(ctx.index, gateway, s, any_port=True) for s in gateway.servers)
