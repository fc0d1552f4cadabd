"""The Gateway API resources of a config → internal Istio Gateways and VirtualServices, plus every Gateway API
resource's status. Pure (model → model): the translator, ECDS, drains and the traffic view then serve both APIs
the same way, as istiod does by converting Gateway API objects into its own config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpmesh.model.gatewayapi.conditions import ConfigError
from tcpmesh.model.gatewayapi.grants import Grants
from tcpmesh.model.gatewayapi.listeners import CONTROLLER, ParentInfo, build_gateway, gateway_class_status
from tcpmesh.model.gatewayapi.resources import KUBE_GATEWAY, GatewayClass, KubeGateway, L4Route, ReferenceGrant
from tcpmesh.model.gatewayapi.routes import Backends, build_route
from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.resources import Gateway, Service, ServiceEntry, VirtualService

__all__ = ["BUILTIN_CLASS", "Conversion", "StatusKey", "convert", "is_generated"]

BUILTIN_CLASS = "istio"
"""The GatewayClass istiod creates for itself (controllerName istio.io/gateway-controller)."""
StatusKey = tuple[str, str, str]
"""(kind as in Meta.kind, namespace, name)."""


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class Conversion:
    gateways: tuple[Gateway, ...] = ()
    virtual_services: tuple[VirtualService, ...] = ()
    statuses: dict[StatusKey, dict[str, Any]] = field(default_factory=dict)
    """The status of each Gateway API resource tcpmesh handles (a Gateway of another class has none)."""
    backend_errors: dict[StatusKey, list[tuple[str, ConfigError]]] = field(default_factory=dict)
    """Each route's unresolved backendRefs by field path (for analyze)."""


def is_generated(meta_annotations: Sequence[tuple[str, str]]) -> bool:
    """Whether an Istio resource was generated from Gateway API ones (Istio's ``internal.istio.io/parents``)."""
    return any(k == "internal.istio.io/parents" for k, _ in meta_annotations)


def convert(
    classes: Sequence[GatewayClass],
    gateways: Sequence[KubeGateway],
    routes: Sequence[L4Route],
    reference_grants: Sequence[ReferenceGrant],
    services: Sequence[Service],
    service_entries: Sequence[ServiceEntry],
    secrets: frozenset[tuple[str, str]] | None = None,
) -> Conversion:
    """``secrets`` lists the (namespace, name) of every Secret, or None where the model has none to check."""
    if not gateways and not routes and not classes:
        return Conversion()
    controllers = {BUILTIN_CLASS: CONTROLLER} | {c.meta.name: c.controller_name for c in classes}
    grants = Grants(reference_grants)
    namespaces = sorted({r.meta.namespace for group in (gateways, routes, services, service_entries) for r in group})
    statuses: dict[StatusKey, dict[str, Any]] = {}
    for c in classes:
        status = gateway_class_status(c.controller_name)
        if status is not None:
            statuses[("GatewayClass", c.meta.namespace, c.meta.name)] = dict(status)
    internal: list[Gateway] = []
    listeners: dict[tuple[str, str], list[ParentInfo]] = {}
    for gw in gateways:
        # Over the CRD's 64 listeners the change is refused anyway; conflict detection is quadratic.
        if controllers.get(gw.gateway_class_name) != CONTROLLER or len(gw.listeners) > 64:
            continue
        built = build_gateway(gw, grants, namespaces, secrets)
        internal.extend(built.gateways)
        listeners[(gw.meta.namespace, gw.meta.name)] = built.parents
        statuses[(KUBE_GATEWAY, gw.meta.namespace, gw.meta.name)] = built.status
    backends = Backends(
        services=frozenset((s.meta.namespace, s.meta.name) for s in services),
        hostnames=frozenset(
            [f"{s.meta.name}.{s.meta.namespace}.svc.cluster.local" for s in services]
            + [h for se in service_entries for h in se.hosts]
        ),
    )
    virtual_services: list[VirtualService] = []
    attached: dict[tuple[str, str, str], int] = {}
    backend_errors: dict[StatusKey, list[tuple[str, ConfigError]]] = {}
    for route in routes:
        if len(route.parent_refs) > 32 or len(route.rules) > 16 or any(len(r) > 16 for r in route.rules):
            continue  # refused by validation; not worth converting
        built_route = build_route(route, listeners, grants, backends)
        virtual_services.extend(built_route.virtual_services)
        if built_route.status["parents"]:
            statuses[(route.meta.kind, route.meta.namespace, route.meta.name)] = built_route.status
        if built_route.backend_errors:
            backend_errors[(route.meta.kind, route.meta.namespace, route.meta.name)] = built_route.backend_errors
        for key in built_route.attachments:
            attached[key] = attached.get(key, 0) + 1
    for (kind, ns, name), status in statuses.items():
        if kind == KUBE_GATEWAY:
            for listener in status["listeners"]:
                listener["attachedRoutes"] = attached.get((ns, name, listener["name"]), 0)
    return Conversion(
        gateways=tuple(internal),
        virtual_services=tuple(virtual_services),
        statuses=statuses,
        backend_errors=backend_errors,
    )
