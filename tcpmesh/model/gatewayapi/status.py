"""Gateway API statuses as the API server would show them (`tcpmesh get tcproute NAME -o yaml`) and as one-line
summaries (`tcpmesh status`, `tcpmesh analyze`)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from tcpmesh.model.gatewayapi.convert import Conversion
from tcpmesh.model.gatewayapi.resources import KUBE_GATEWAY, display_kind

__all__ = ["GATEWAY_API_KINDS", "object_status", "status_items", "summary_lines", "with_connected_proxies"]

GATEWAY_API_KINDS = ("GatewayClass", KUBE_GATEWAY, "TCPRoute", "TLSRoute", "ReferenceGrant")
_PENDING = {"status": "Unknown", "reason": "Pending", "message": "Waiting for controller"}


def _with_generation(conds: list[dict[str, Any]], generation: int) -> list[dict[str, Any]]:
    return [{**c, "observedGeneration": generation} for c in conds]


def object_status(conversion: Conversion, kind: str, namespace: str, name: str, generation: int) -> Any:
    """The ``status`` of one stored Gateway API object (None for a ReferenceGrant, which has none). A Gateway or
    GatewayClass of another controller keeps the CRD's default (Pending); a route no handled parent refers to
    has no parents."""
    status = conversion.statuses.get((kind, namespace, name))
    if status is None:
        if kind == "ReferenceGrant":
            return None
        if kind in ("TCPRoute", "TLSRoute"):
            return {"parents": []}
        types = ("Accepted", "Programmed") if kind == KUBE_GATEWAY else ("Accepted",)
        return {"conditions": [{"type": t, **_PENDING} for t in types]}
    out = copy.deepcopy(status)
    if "conditions" in out:
        out["conditions"] = _with_generation(out["conditions"], generation)
    for listener in out.get("listeners", ()):
        listener["conditions"] = _with_generation(listener["conditions"], generation)
    for parent in out.get("parents", ()):
        parent["conditions"] = _with_generation(parent["conditions"], generation)
    return out


def with_connected_proxies(status: dict[str, Any], gateway: str, proxies: int) -> dict[str, Any]:
    """A converted Gateway is Programmed only while some proxy labelled with its name is connected (Istio asks
    the same of the Gateway's deployment, through its Service); the translation alone is not enough."""
    for c in status.get("conditions", ()):
        if c["type"] == "Programmed" and c["status"] == "True":
            if proxies:
                c["message"] = f"Resource programmed, served to {proxies} connected prox{'ies' if proxies > 1 else 'y'}"
            else:
                c.update(
                    status="False",
                    reason="Pending",
                    message=f"no proxy labelled gateway.networking.k8s.io/gateway-name={gateway} is connected",
                )
    return status


def status_items(conversion: Conversion) -> list[dict[str, Any]]:
    """Every status, for /debug/syncz: kind (as written), namespace, name, status."""
    return [
        {"kind": display_kind(kind), "namespace": ns, "name": name, "status": status}
        for (kind, ns, name), status in sorted(conversion.statuses.items())
    ]


def _conds(conds: Iterable[Mapping[str, Any]]) -> str:
    parts = []
    for c in conds:
        healthy = (c["status"] == "True") != (c["type"] == "Conflicted")
        parts.append(c["type"] if healthy else f"{c['type']}={c['status']} {c['reason']}: {c['message']}")
    return ", ".join(parts)


def summary_lines(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per resource, listener and route parent: healthy conditions by name, others with reason and
    message."""
    lines = []
    for item in items:
        what = f"{item['kind']} {item['namespace']}/{item['name']}"
        status = item["status"]
        if "conditions" in status:
            lines.append(f"{what}: {_conds(status['conditions'])}")
        for listener in status.get("listeners", ()):
            routes = listener["attachedRoutes"]
            lines.append(
                f"  listener {listener['name']}: {routes} route{'s' if routes != 1 else ''}; "
                f"{_conds(listener['conditions'])}"
            )
        for parent in status.get("parents", ()):
            ref = parent["parentRef"]
            target = "/".join(filter(None, (ref.get("namespace"), ref["name"])))
            section = ref.get("sectionName") or (str(ref["port"]) if ref.get("port") else "")
            lines.append(f"{what} -> {target}{'/' + section if section else ''}: {_conds(parent['conditions'])}")
    return lines
