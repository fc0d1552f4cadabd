"""Gateway API findings: what the conversion's statuses say is not accepted, not resolved or conflicted
(TM06xx), located at the route's parentRef or rules and the Gateway's listener, so ``analyze`` reports offline
what ``tcpmesh get tcproute NAME -o yaml`` shows once applied."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from tcpmesh.analysis.codes import (
    GATEWAY_API_LISTENER_NOT_ACCEPTED,
    GATEWAY_API_PARENT_NOT_FOUND,
    GATEWAY_API_REFS_NOT_RESOLVED,
    GATEWAY_API_ROUTE_NOT_ACCEPTED,
)
from tcpmesh.analysis.context import Context
from tcpmesh.analysis.findings import Code, Finding
from tcpmesh.model.gatewayapi.conditions import ConfigError
from tcpmesh.model.gatewayapi.resources import GROUP, KUBE_GATEWAY, L4Route, display_kind
from tcpmesh.model.resources import Meta

__all__ = ["analyze_gateway_api"]


def _at(code: Code, meta: Meta, path: str, message: str) -> Finding:
    return dataclasses.replace(code.at(meta, path, message), kind=display_kind(meta.kind))


def _false(conds: list[dict[str, Any]], *types: str) -> list[dict[str, Any]]:
    return [c for c in conds if c["type"] in types and c["status"] == "False"] + [
        c for c in conds if c["type"] == "Conflicted" and c["status"] == "True"
    ]


def _route(
    route: L4Route,
    status: dict[str, Any] | None,
    handled: set[tuple[str, str]],
    backend_errors: list[tuple[str, ConfigError]],
) -> Iterator[Finding]:
    parents = (status or {}).get("parents", [])
    for i, ref in enumerate(route.parent_refs):
        path = f"spec.parentRefs[{i}]"
        key = (ref.namespace or route.meta.namespace, ref.name)
        if (ref.group, ref.kind) == (GROUP, "Gateway") and key not in handled:
            yield _at(
                GATEWAY_API_PARENT_NOT_FOUND,
                route.meta,
                path,
                f"no Gateway {key[0]}/{key[1]} of a class tcpmesh handles (istio.io/gateway-controller): the route "
                "is not attached there",
            )
            continue
        for parent in parents:
            p = parent["parentRef"]
            written = (p["group"], p["kind"], p["name"], p.get("namespace", ""), p.get("sectionName", ""))
            if (*written, p.get("port", 0)) != (
                ref.group,
                ref.kind,
                ref.name,
                ref.namespace,
                ref.section_name,
                ref.port,
            ):
                continue
            for c in _false(parent["conditions"], "Accepted"):
                yield _at(GATEWAY_API_ROUTE_NOT_ACCEPTED, route.meta, path, f"{c['reason']}: {c['message']}")
    for path, error in backend_errors:
        yield _at(GATEWAY_API_REFS_NOT_RESOLVED, route.meta, path, f"{error.reason}: {error.message}")


def analyze_gateway_api(ctx: Context) -> Iterator[Finding]:
    config = ctx.config
    if not config.kube_gateways and not config.l4_routes:
        return
    conversion = config.gateway_api()
    statuses = conversion.statuses
    handled = {(ns, name) for kind, ns, name in statuses if kind == KUBE_GATEWAY}
    for gw in config.kube_gateways:
        status = statuses.get((KUBE_GATEWAY, gw.meta.namespace, gw.meta.name))
        for i, listener in enumerate((status or {}).get("listeners", [])):
            for c in _false(listener["conditions"], "Accepted", "ResolvedRefs")[:1]:  # one finding per listener
                message = f"listener {listener['name']}: {c['type']} {c['reason']}: {c['message']}"
                yield _at(GATEWAY_API_LISTENER_NOT_ACCEPTED, gw.meta, f"spec.listeners[{i}]", message)
    for route in config.l4_routes:
        key = (route.meta.kind, route.meta.namespace, route.meta.name)
        yield from _route(route, statuses.get(key), handled, conversion.backend_errors.get(key, []))
