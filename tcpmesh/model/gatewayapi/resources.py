"""Gateway API resources as typed, frozen values (only the L4 parts tcpmesh serves).

Kinds are kept apart from Istio's by ``Meta.kind``: a Gateway API Gateway is ``KubernetesGateway`` (Istio's own
internal name, gvk.KubernetesGateway), so it never collides with an Istio Gateway of the same name in the store.
Messages still call it ``Gateway``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.resources import Labels, Meta

__all__ = [
    "GROUP",
    "KUBE_GATEWAY",
    "AllowedRoutes",
    "BackendRef",
    "GatewayClass",
    "GrantFrom",
    "GrantTo",
    "KubeGateway",
    "L4Route",
    "Listener",
    "ListenerTLS",
    "ObjectRef",
    "ParentRef",
    "ReferenceGrant",
    "RouteGroupKind",
    "display_kind",
]

GROUP = "gateway.networking.k8s.io"
KUBE_GATEWAY = "KubernetesGateway"


def display_kind(kind: str) -> str:
    """The kind as users write it."""
    return "Gateway" if kind == KUBE_GATEWAY else kind


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayClass:
    meta: Meta
    controller_name: str


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class RouteGroupKind:
    kind: str
    group: str = GROUP


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class AllowedRoutes:
    namespaces_from: str = "Same"
    selector: Labels | None = None
    """matchLabels of a ``Selector`` (Istio resolves it against Namespaces; tcpmesh against namespace names)."""
    kinds: tuple[RouteGroupKind, ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRef:
    """A SecretObjectReference (certificateRefs) or a route's backendRef target."""

    name: str
    group: str = ""
    kind: str = "Secret"
    namespace: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerTLS:
    mode: str = "Terminate"
    certificate_refs: tuple[ObjectRef, ...] = ()
    options: Labels = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    name: str
    port: int
    protocol: str
    hostname: str = ""
    tls: ListenerTLS | None = None
    allowed_routes: AllowedRoutes | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class KubeGateway:
    meta: Meta
    gateway_class_name: str
    listeners: tuple[Listener, ...]


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ParentRef:
    name: str
    group: str = GROUP
    kind: str = "Gateway"
    namespace: str = ""
    section_name: str = ""
    port: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class BackendRef:
    name: str
    group: str = ""
    kind: str = "Service"
    namespace: str = ""
    port: int | None = None
    weight: int = 1


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class L4Route:
    """A TCPRoute or a TLSRoute (``meta.kind``); each rule is its backendRefs."""

    meta: Meta
    parent_refs: tuple[ParentRef, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[tuple[BackendRef, ...], ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class GrantFrom:
    group: str
    kind: str
    namespace: str


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class GrantTo:
    group: str
    kind: str
    name: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceGrant:
    meta: Meta
    from_: tuple[GrantFrom, ...]
    to: tuple[GrantTo, ...]
