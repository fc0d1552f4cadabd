"""TCPRoutes and TLSRoutes → internal VirtualServices bound to the listeners' internal Gateways, and each route's
``status.parents``, as Istio's route_collections.go (TCPRouteCollection, TLSRouteCollection), ``referenceAllowed``,
``buildTCPDestination`` / ``buildDestination`` and ``createRouteStatus`` do, for Gateway parents."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tcpmesh.model.drain import DRAIN_ANNOTATION_PREFIX, BackendDrain, host_drain_annotation, parse_backend_drain
from tcpmesh.model.gatewayapi.conditions import Cond, ConfigError, conditions
from tcpmesh.model.gatewayapi.grants import Grants
from tcpmesh.model.gatewayapi.hosts import intersection, matches
from tcpmesh.model.gatewayapi.listeners import CONTROLLER, KUBERNETES_GATEWAY_NAME, ParentInfo
from tcpmesh.model.gatewayapi.resources import GROUP, BackendRef, L4Route, ParentRef
from tcpmesh.model.pickled import pickled_by_slots
from tcpmesh.model.resources import Destination, Meta, RouteDestination, TCPRoute, TLSMatch, TLSRoute, VirtualService

__all__ = ["BLACKHOLE", "Backends", "RouteBuild", "build_route"]

BLACKHOLE = Destination(host="internal.cluster.local", subset="zero-weight", port=65535)
"""Where a route whose backends all weigh 0 sends connections: a cluster nobody defines, so Envoy refuses them."""
_ISTIO_GROUP = "networking.istio.io"
_INVALID = ("RefNotPermitted", "BackendNotFound", "InvalidKind")
"""isInvalidBackend: the backend is kept (so its share of connections fails) and the route still programs."""
# createRouteStatus ranks: a lower rank wins the one condition reported per parentRef.
_RANK = {None: 0, "NotAllowedByListeners": 1, "NoMatchingListenerHostname": 2, "NoMatchingParent": 4}


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class Backends:
    """What backendRefs can resolve to: Service names and the hosts of every Service and ServiceEntry."""

    services: frozenset[tuple[str, str]]
    hostnames: frozenset[str]
    domain: str = "cluster.local"


@dataclass(slots=True)
class RouteBuild:
    virtual_services: list[VirtualService] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)
    attachments: list[tuple[str, str, str]] = field(default_factory=list)
    """(gateway namespace, gateway name, listener name) of each listener the route is attached to."""
    backend_errors: list[tuple[str, ConfigError]] = field(default_factory=list)
    """Every backendRef that does not resolve, by field path (the status reports only the last, as Istio)."""


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class _Parent:
    ref: ParentRef
    key: str
    """_ref_key of ``ref``."""
    info: ParentInfo | None
    denied: ConfigError | None


def _ref_key(ref: ParentRef, namespace: str) -> str:
    """parentRefString: stable identity and order of a parentRef."""
    return f"{ref.group}/{ref.kind}/{ref.name}/{ref.section_name}/{ref.port}.{ref.namespace or namespace}"


def _reference_allowed(info: ParentInfo, route: L4Route, ref: ParentRef) -> ConfigError | None:
    """referenceAllowed for a Gateway listener: port, then sectionName, then hostnames and namespace, then kind."""
    listener = info.listener
    if ref.port and ref.port != listener.port:
        return ConfigError("NoMatchingParent", f"port {ref.port} not found")
    if ref.section_name and ref.section_name != listener.name:
        return ConfigError("NoMatchingParent", f'sectionName "{ref.section_name}" not found')
    namespace = route.meta.namespace
    hostnames = route.hostnames or ("*",)
    matched = host_matched = False
    for route_host in hostnames:
        for parent in info.hosts:
            parent_ns, _, parent_host = parent.rpartition("/")
            host_ok = matches(parent_host, route_host)
            host_matched = host_matched or host_ok
            if host_ok and parent_ns in ("*", "", namespace):
                matched = True
                break
        if matched:
            break
    if not matched:
        if host_matched:
            return ConfigError(
                "NotAllowedByListeners",
                f'hostnames matched parent hostname "{listener.hostname}", but namespace "{namespace}" is not allowed '
                "by the parent",
            )
        return ConfigError("NoMatchingListenerHostname", f'no hostnames matched parent hostname "{listener.hostname}"')
    if not any(k.kind == route.meta.kind and k.group == GROUP for k in info.allowed_kinds):
        return ConfigError("NotAllowedByListeners", f"kind {route.meta.api_version}/{route.meta.kind} is not allowed")
    return None


def _destination(
    b: BackendRef, route: L4Route, grants: Grants, backends: Backends
) -> tuple[Destination | None, ConfigError | None]:
    """buildDestination: (destination, error); no destination for a hard error (the rule is not converted)."""
    namespace = route.meta.namespace
    group = "" if b.group == "core" else b.group
    if b.namespace and b.namespace != namespace:
        source, target = (GROUP, route.meta.kind, namespace), (group, b.kind, b.namespace, b.name)
        if not grants.allowed(source, target):
            return Destination(host=""), ConfigError(
                "RefNotPermitted",
                f'backendRef {b.name}/{b.namespace} not accessible to a {route.meta.kind} in namespace "{namespace}" '
                "(missing a ReferenceGrant?)",
            )
    ns = b.namespace or namespace
    error = None
    if (group, b.kind) == ("", "Service"):
        if "." in b.name:
            return None, ConfigError(
                "InvalidDestination", "service name invalid; the name of the Service must be used, not the hostname."
            )
        host = f"{b.name}.{ns}.svc.{backends.domain}"
        if (ns, b.name) not in backends.services:
            error = ConfigError("BackendNotFound", f"backend({host}) not found")
    elif (group, b.kind) == (_ISTIO_GROUP, "Hostname"):
        if b.namespace:
            return None, ConfigError("InvalidDestination", "namespace may not be set with Hostname type")
        host = b.name
        if host not in backends.hostnames:
            error = ConfigError("BackendNotFound", f"backend({host}) not found")
    else:
        return Destination(host=""), ConfigError(
            "InvalidKind", f'referencing unsupported backendRef: group "{b.group}" kind "{b.kind}"'
        )
    if b.port is None:
        return None, ConfigError("InvalidDestination", "port is required in backendRef")
    return Destination(host=host, port=b.port), error


def _rule(
    refs: Sequence[BackendRef],
    route: L4Route,
    grants: Grants,
    backends: Backends,
    errors: list[tuple[int, ConfigError]],
) -> tuple[tuple[RouteDestination, ...] | None, ConfigError | None]:
    """convertTCPRoute / buildTCPDestination: weight 0 dropped, a lone backend unweighted, all-zero → blackhole."""
    if sum(b.weight for b in refs) == 0:
        return (RouteDestination(destination=BLACKHOLE),), None
    kept = [(j, b) for j, b in enumerate(refs) if b.weight]
    weights = [0] if len(kept) == 1 else [b.weight for _, b in kept]
    out: list[RouteDestination] = []
    invalid: ConfigError | None = None
    for (j, b), weight in zip(kept, weights, strict=True):
        dest, error = _destination(b, route, grants, backends)
        if error is not None:
            errors.append((j, error))
            if error.reason not in _INVALID:
                return None, error
            invalid = error
        assert dest is not None
        out.append(RouteDestination(destination=dest, weight=weight))
    return tuple(out), invalid


def _constrain(routes: Sequence[TLSRoute], listener_host: str) -> list[TLSRoute]:
    """constrainTLSRoutesToListenerHost: each match's SNI hosts ∩ the listener hostname."""
    if not listener_host:
        return list(routes)
    out = []
    for r in routes:
        narrowed = tuple(TLSMatch(sni_hosts=tuple(intersection(m.sni_hosts, [listener_host]))) for m in r.match)
        if any(m.sni_hosts for m in narrowed) or not narrowed:
            out.append(TLSRoute(match=narrowed, route=r.route))
    return out


def _drains(route: L4Route, grants: Grants, backends: Backends) -> tuple[tuple[str, str], ...]:
    """The route's ``drain.tcpmesh.io/<backend>`` annotations as the generated VirtualServices carry them: one per
    host and port of the backendRefs so named, weight 0 included (a drained backend usually weighs 0 by then)."""
    out: dict[str, str] = {}
    for key, value in route.meta.annotations:
        if not key.startswith(DRAIN_ANNOTATION_PREFIX):
            continue
        drain = parse_backend_drain(key, value)
        if not isinstance(drain, BackendDrain):
            continue  # reported by validation
        for refs in route.rules:
            for b in refs:
                if b.name != drain.backend:
                    continue
                dest, _ = _destination(b, route, grants, backends)
                if dest is not None and dest.host and dest.port:
                    k, v = host_drain_annotation(dest.host, dest.port, drain)
                    out[k] = v
    return tuple(sorted(out.items()))


def _vs_meta(route: L4Route, name: str, drains: tuple[tuple[str, str], ...]) -> Meta:
    return Meta(
        kind="VirtualService",
        api_version="networking.istio.io/v1",
        name=name,
        namespace=route.meta.namespace,
        annotations=(
            ("internal.istio.io/parents", f"{route.meta.kind}/{route.meta.name}.{route.meta.namespace}"),
            ("internal.istio.io/route-semantics", "gateway"),
            *drains,
        ),
        source=route.meta.source,
        order=route.meta.order,
    )


def _parents(route: L4Route, listeners: Mapping[tuple[str, str], Sequence[ParentInfo]]) -> list[_Parent]:
    out: list[_Parent] = []
    for ref in route.parent_refs:
        key = _ref_key(ref, route.meta.namespace)
        if (ref.group, ref.kind) != (GROUP, "Gateway"):
            reason = ConfigError("UnsupportedValue", f"parentRef {ref.group}/{ref.kind} is not supported by tcpmesh")
            out.append(_Parent(ref, key, None, reason))
            continue
        # What referenceAllowed says of every other listener when only a sectionName is given, made once.
        other = ConfigError("NoMatchingParent", f'sectionName "{ref.section_name}" not found')
        for info in listeners.get((ref.namespace or route.meta.namespace, ref.name), ()):
            if ref.section_name and not ref.port and ref.section_name != info.listener.name:
                out.append(_Parent(ref, key, info, other))
            else:
                out.append(_Parent(ref, key, info, _reference_allowed(info, route, ref)))
    return out


def _status(route: L4Route, parents: Sequence[_Parent], route_error: ConfigError | None) -> list[dict[str, Any]]:
    """createRouteStatus: one entry per parentRef; any accepted section wins, else the lowest-ranked reason."""
    by_ref: dict[str, list[_Parent]] = {}
    for p in parents:
        by_ref.setdefault(p.key, []).append(p)
    out = []
    for key in sorted(by_ref, reverse=True):
        results = by_ref[key]
        ok = sum(1 for p in results if p.denied is None)
        denied: ConfigError | None = None
        if not ok:
            rank = min(_RANK.get(p.denied.reason, 4) for p in results if p.denied)
            for p in results:
                if p.denied is not None and _RANK.get(p.denied.reason, 4) == rank:
                    denied = p.denied if denied is None else denied.joined(p.denied)
        accepted = Cond("Accepted", "Route was valid" if ok <= 1 else f"Route was valid, bound to {ok} parents")
        accepted.error = denied
        resolved = Cond("ResolvedRefs", "All references resolved")
        resolved.error = route_error
        ref = results[0].ref
        parent_ref: dict[str, Any] = {"group": ref.group, "kind": ref.kind, "name": ref.name}
        if ref.namespace:
            parent_ref["namespace"] = ref.namespace
        if ref.section_name:
            parent_ref["sectionName"] = ref.section_name
        if ref.port:
            parent_ref["port"] = ref.port
        out.append(
            {
                "parentRef": parent_ref,
                "controllerName": CONTROLLER,
                "conditions": conditions({"Accepted": accepted, "ResolvedRefs": resolved}),
            }
        )
    return out


def build_route(
    route: L4Route,
    listeners: Mapping[tuple[str, str], Sequence[ParentInfo]],
    grants: Grants,
    backends: Backends,
) -> RouteBuild:
    out = RouteBuild()
    parents = _parents(route, listeners)
    tls = route.meta.kind == "TLSRoute"
    rules: list[tuple[RouteDestination, ...]] = []
    route_error: ConfigError | None = None
    for i, refs in enumerate(route.rules):
        errors: list[tuple[int, ConfigError]] = []
        dests, error = _rule(refs, route, grants, backends, errors)
        out.backend_errors += [(f"spec.rules[{i}].backendRefs[{j}]", e) for j, e in errors]
        route_error = error or route_error
        if dests is None:
            rules = []
            break
        rules.append(dests)
    out.status = {"parents": _status(route, parents, route_error)}
    accepted = [(p.info, p) for p in parents if p.denied is None and p.info is not None]
    drains = _drains(route, grants, backends)
    count = 0
    for info, _p in sorted(accepted, key=lambda item: item[0].internal_name):
        out.attachments.append((info.gateway.meta.namespace, info.gateway.meta.name, info.listener.name))
        if not tls:
            name = f"{route.meta.name}~tcp~{count}~{KUBERNETES_GATEWAY_NAME}"
            tcp = tuple(TCPRoute(route=r) for r in rules)
            out.virtual_services.append(
                VirtualService(
                    meta=_vs_meta(route, name, drains), hosts=("*",), gateways=(info.internal_name,), tcp=tcp
                )
            )
            count += 1
            continue
        sni = route.hostnames or ("*",)
        tls_routes: list[TLSRoute] = [TLSRoute(match=(TLSMatch(sni_hosts=sni),), route=r) for r in rules]
        vs_hosts = list(route.hostnames or ("*",))
        listener_host = info.listener.hostname
        if listener_host:
            vs_hosts = intersection(vs_hosts, [listener_host])
            tls_routes = _constrain(tls_routes, listener_host)
        for host in vs_hosts:
            name = f"{route.meta.name}~tls~{count}~{KUBERNETES_GATEWAY_NAME}"
            out.virtual_services.append(
                VirtualService(
                    meta=_vs_meta(route, name, drains),
                    hosts=(host,),
                    gateways=(info.internal_name,),
                    tls=tuple(tls_routes),
                )
            )
            count += 1
    return out
