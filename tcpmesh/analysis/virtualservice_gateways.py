"""VirtualService ``gateways``: unknown gateways (TM0102), match gateways outside the binding (TM0106) and
gateways none of whose server hosts admit the VirtualService (TM0107)."""

from __future__ import annotations

from collections.abc import Iterator

from tcpmesh.analysis.codes import GATEWAY_NOT_FOUND, MATCH_GATEWAY_NOT_BOUND, VIRTUAL_SERVICE_HOST_NOT_IN_GATEWAY
from tcpmesh.analysis.context import Context, bound_virtual_services
from tcpmesh.analysis.findings import Finding
from tcpmesh.model.resources import L4Match, TLSMatch, VirtualService
from tcpmesh.model.resources_http import HTTPMatch
from tcpmesh.translator.names import resolve_gateway_name

__all__ = ["analyze_virtualservice_gateways"]

MESH = "mesh"


def analyze_virtualservice_gateways(ctx: Context) -> Iterator[Finding]:
    known = {g.meta.key for g in ctx.config.gateways}
    for vs in ctx.config.virtual_services:
        bound = set(ctx.index.vs_gateways(vs))
        for i, name in enumerate(vs.gateways):
            key = resolve_gateway_name(name, vs.meta.namespace)
            path = f"spec.gateways[{i}]"
            if key == MESH:
                continue
            if key not in known:
                hint = f" (legacy name {name!r})" if "." in name else ""
                yield GATEWAY_NOT_FOUND.at(
                    vs.meta, path, f"gateway {key} not found{hint}; the VirtualService is bound to nothing there"
                )
            else:
                yield from _hosts_on_gateway(ctx, vs, key, path)
        for path, match in _matches(vs):
            for k, name in enumerate(match.gateways):
                key = resolve_gateway_name(name, vs.meta.namespace)
                where = f"{path}.gateways[{k}]"
                if key != MESH and key not in known:
                    yield GATEWAY_NOT_FOUND.at(vs.meta, where, f"gateway {key} not found")
                elif key not in bound:
                    # Binding comes only from spec.gateways; a match can narrow it but never widen it.
                    yield MATCH_GATEWAY_NOT_BOUND.at(
                        vs.meta, where, f"gateway {key} is not in spec.gateways, so this match never applies there"
                    )


def _hosts_on_gateway(ctx: Context, vs: VirtualService, key: str, path: str) -> Iterator[Finding]:
    gateway = ctx.gateway(key)
    if gateway is None or not gateway.servers:
        return
    if not any(vs in bound_virtual_services(ctx.index, gateway, s, any_port=True) for s in gateway.servers):
        hosts = sorted({h for s in gateway.servers for h in s.hosts})
        yield VIRTUAL_SERVICE_HOST_NOT_IN_GATEWAY.at(
            vs.meta,
            path,
            f"no host of the VirtualService {list(vs.hosts)} matches a server host of gateway {key} {hosts}; "
            "it is not bound to any of its servers",
        )


def _matches(vs: VirtualService) -> Iterator[tuple[str, L4Match | TLSMatch | HTTPMatch]]:
    for i, tcp in enumerate(vs.tcp):
        for j, m in enumerate(tcp.match):
            yield f"spec.tcp[{i}].match[{j}]", m
    for i, tls in enumerate(vs.tls):
        for j, t in enumerate(tls.match):
            yield f"spec.tls[{i}].match[{j}]", t
    for i, http in enumerate(vs.http):
        for j, h in enumerate(http.match):
            yield f"spec.http[{i}].match[{j}]", h
