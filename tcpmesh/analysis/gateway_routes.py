"""What each gateway server actually routes, as the translator builds it:

- TM0303: a server no VirtualService rule applies to gets no filter chain (and alone, no listener);
- TM0401: on a TCP server only the first matching rule of the first bound VirtualService (creation order)
  is used; every later VirtualService with a matching rule is silently ignored there;
- TM0403: on a TLS PASSTHROUGH server a ``tls`` match repeating SNI hosts an earlier VirtualService already
  claimed is skipped (model.CheckDuplicates). Repeats inside one VirtualService are the webhook's.
"""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import GATEWAY_SERVER_UNUSED, TLS_MATCH_SHADOWED, VIRTUAL_SERVICE_IGNORED
from tcpmesh.analysis.context import (
    Context,
    bound_virtual_services,
    is_passthrough_server,
    is_tcp_route_server,
    rule_matches,
    tcp_winner,
)
from tcpmesh.analysis.findings import Finding
from tcpmesh.analysis.gateway_conflicts import skipped_servers
from tcpmesh.model.resources import Gateway, Server, VirtualService
from tcpmesh.translator.match import l4_multi_match

__all__ = ["analyze_gateway_routes"]


def analyze_gateway_routes(ctx: Context) -> Iterator[Finding]:
    skipped = skipped_servers(ctx)
    for gw in ctx.config.gateways:
        for i, server in enumerate(gw.servers):
            if (gw.meta.key, i) in skipped:
                continue  # TM0302 already says this server is not used
            where = f"{gw.meta.key} port {server.port.number}"
            if is_tcp_route_server(server):
                yield from _tcp_server(ctx, gw, i, server, where)
            elif is_passthrough_server(server):
                yield from _passthrough_server(ctx, gw, i, server, where)


def _unused(gw: Gateway, i: int, server: Server, what: str) -> Finding:
    return GATEWAY_SERVER_UNUSED.at(
        gw.meta,
        f"spec.servers[{i}]",
        f"no VirtualService {what} applies to port {server.port.number} ({server.port.protocol}); "
        "it gets no filter chain",
    )


def _tcp_server(ctx: Context, gw: Gateway, i: int, server: Server, where: str) -> Iterator[Finding]:
    winner = tcp_winner(ctx, gw, server)
    if winner is None:
        yield _unused(gw, i, server, "tcp rule")
        return
    win_vs, win_rule = winner
    seen_winner = False
    for vs in bound_virtual_services(ctx.index, gw, server, any_port=True):
        if vs is win_vs:
            seen_winner = True
            continue
        if not seen_winner:
            continue  # earlier VirtualServices had no matching rule
        rule = next((k for k, r in enumerate(vs.tcp) if rule_matches(r, gw, server, vs)), None)
        if rule is not None:
            yield VIRTUAL_SERVICE_IGNORED.at(
                vs.meta,
                f"spec.tcp[{rule}]",
                f"ignored on gateway {where}: VirtualService {win_vs.meta.key} spec.tcp[{win_rule}] comes first "
                "and istiod uses only the first matching VirtualService per TCP server",
            )


def _passthrough_server(ctx: Context, gw: Gateway, i: int, server: Server, where: str) -> Iterator[Finding]:
    claimed: dict[tuple[str, ...], tuple[VirtualService, str]] = {}
    for vs in bound_virtual_services(ctx.index, gw, server, any_port=True):
        for r, rule in enumerate(vs.tls):
            if not rule.route:
                continue
            for m, match in enumerate(rule.match):
                if not l4_multi_match([match], server.port.number, gw.meta.key, vs.meta.namespace):
                    continue
                sni = tuple(sorted(set(match.sni_hosts)))
                path = f"spec.tls[{r}].match[{m}]"
                first = claimed.setdefault(sni, (vs, path))
                if first[0] is not vs:
                    yield TLS_MATCH_SHADOWED.at(
                        vs.meta,
                        f"{path}.sniHosts",
                        f"skipped on gateway {where}: SNI hosts {list(sni)} are already routed by VirtualService "
                        f"{first[0].meta.key} {first[1]}",
                    )
    if not claimed:
        yield _unused(gw, i, server, "tls match")
