"""Gateway API specs → typed values. Shape errors (types, unknown fields, enums) are reported here, located; the
CRDs' other rules (patterns, ranges, CEL validations) live in :mod:`tcpmesh.model.gatewayapi.validate`."""

from __future__ import annotations

from collections.abc import Callable

from tcpmesh.model.gatewayapi.resources import (
    GROUP,
    KUBE_GATEWAY,
    AllowedRoutes,
    BackendRef,
    GatewayClass,
    GrantFrom,
    GrantTo,
    KubeGateway,
    L4Route,
    Listener,
    ListenerTLS,
    ObjectRef,
    ParentRef,
    ReferenceGrant,
    RouteGroupKind,
)
from tcpmesh.model.problems import Severity
from tcpmesh.model.reader import Reader
from tcpmesh.model.resources import Meta

__all__ = ["API_VERSIONS", "PARSERS", "internal_kind"]

_V = f"{GROUP}/"
API_VERSIONS: dict[str, tuple[str, ...]] = {
    "GatewayClass": (_V + "v1", _V + "v1beta1"),
    "Gateway": (_V + "v1", _V + "v1beta1"),
    "TCPRoute": (_V + "v1", _V + "v1alpha2"),
    "TLSRoute": (_V + "v1", _V + "v1alpha3", _V + "v1alpha2"),
    "ReferenceGrant": (_V + "v1", _V + "v1beta1", _V + "v1alpha2"),
}
"""The served versions of each kind (standard and experimental channels, gateway-api v1.6)."""


def internal_kind(kind: str) -> str:
    return KUBE_GATEWAY if kind == "Gateway" else kind


def _version(meta: Meta) -> str:
    return meta.api_version.rpartition("/")[2]


# --- GatewayClass / Gateway ----------------------------------------------------------------------


def parse_gateway_class(r: Reader, meta: Meta) -> GatewayClass:
    controller = r.string("controllerName", required=True)
    r.ignore("description", "parametersRef")
    return GatewayClass(meta=meta, controller_name=controller)


def parse_kube_gateway(r: Reader, meta: Meta) -> KubeGateway:
    class_name = r.string("gatewayClassName", required=True)
    listeners = []
    for _, lr in r.objects("listeners"):
        if lr is None:
            r.report("listeners", "listener may not be null")
            continue
        listeners.append(_listener(lr))
        lr.finish()
    if not r.has("listeners"):
        r.report("listeners", "required field is missing")
    for key in ("addresses", "infrastructure", "tls", "allowedListeners", "defaultScope"):
        if r.has(key):
            r.report(key, "not used by tcpmesh; ignored", Severity.WARNING)
    r.ignore("addresses", "infrastructure", "tls", "allowedListeners", "defaultScope")
    return KubeGateway(meta=meta, gateway_class_name=class_name, listeners=tuple(listeners))


def _listener(r: Reader) -> Listener:
    name = r.string("name", required=True)
    port = r.integer("port", required=True)
    protocol = r.string("protocol", required=True)
    tls = None
    tr = r.obj("tls")
    if tr is not None:
        refs = tuple(_object_ref(c) for _, c in tr.objects("certificateRefs") if c is not None)
        options = tr.labels("options") or ()
        tls = ListenerTLS(
            mode=tr.enum("mode", ("Terminate", "Passthrough"), "Terminate"), certificate_refs=refs, options=options
        )
        tr.ignore("frontendValidation")
        tr.finish()
    allowed = None
    ar = r.obj("allowedRoutes")
    if ar is not None:
        allowed = _allowed_routes(ar)
        ar.finish()
    return Listener(
        name=name, port=port, protocol=protocol, hostname=r.string("hostname"), tls=tls, allowed_routes=allowed
    )


def _object_ref(r: Reader) -> ObjectRef:
    ref = ObjectRef(
        name=r.string("name", required=True),
        group=r.string("group"),
        kind=r.string("kind", "Secret"),
        namespace=r.string("namespace"),
    )
    r.finish()
    return ref


def _allowed_routes(r: Reader) -> AllowedRoutes:
    namespaces_from, selector = "Same", None
    nr = r.obj("namespaces")
    if nr is not None:
        namespaces_from = nr.enum("from", ("All", "Same", "Selector"), "Same")
        sr = nr.obj("selector")
        if sr is not None:
            selector = sr.labels("matchLabels") or ()
            if sr.has("matchExpressions"):
                sr.report("matchExpressions", "not supported by tcpmesh (use matchLabels)")
            sr.finish()
        nr.finish()
    kinds = []
    for _, kr in r.objects("kinds"):
        if kr is not None:
            kinds.append(RouteGroupKind(kind=kr.string("kind", required=True), group=kr.string("group", GROUP)))
            kr.finish()
    return AllowedRoutes(namespaces_from=namespaces_from, selector=selector, kinds=tuple(kinds))


# --- TCPRoute / TLSRoute -------------------------------------------------------------------------


def parse_route(r: Reader, meta: Meta) -> L4Route:
    parents = []
    for _, pr in r.objects("parentRefs"):
        if pr is not None:
            parents.append(
                ParentRef(
                    name=pr.string("name", required=True),
                    group=pr.string("group", GROUP),
                    kind=pr.string("kind", "Gateway"),
                    namespace=pr.string("namespace"),
                    section_name=pr.string("sectionName"),
                    port=pr.integer("port"),
                )
            )
            pr.finish()
    hostnames = r.str_list("hostnames") if meta.kind == "TLSRoute" else ()
    rules = []
    for _, rr in r.objects("rules"):
        if rr is None:
            continue
        rules.append(tuple(_backend_ref(b) for _, b in rr.objects("backendRefs") if b is not None))
        rr.string("name")
        if not rr.has("backendRefs") and _version(meta) == "v1":
            rr.report("backendRefs", "required field is missing")
        rr.finish()
    if not r.has("rules"):
        r.report("rules", "required field is missing")
    r.ignore("useDefaultGateways")
    return L4Route(meta=meta, parent_refs=tuple(parents), hostnames=hostnames, rules=tuple(rules))


def _backend_ref(r: Reader) -> BackendRef:
    ref = BackendRef(
        name=r.string("name", required=True),
        group=r.string("group"),
        kind=r.string("kind", "Service"),
        namespace=r.string("namespace"),
        port=r.opt_integer("port"),
        weight=r.integer("weight", 1),
    )
    r.finish()
    return ref


# --- ReferenceGrant ------------------------------------------------------------------------------


def parse_reference_grant(r: Reader, meta: Meta) -> ReferenceGrant:
    froms = []
    for _, fr in r.objects("from"):
        if fr is not None:
            froms.append(
                GrantFrom(
                    group=fr.string("group", required=True),
                    kind=fr.string("kind", required=True),
                    namespace=fr.string("namespace", required=True),
                )
            )
            fr.finish()
    tos = []
    for _, tr in r.objects("to"):
        if tr is not None:
            tos.append(
                GrantTo(
                    group=tr.string("group", required=True),
                    kind=tr.string("kind", required=True),
                    name=tr.string("name"),
                )
            )
            tr.finish()
    for key in ("from", "to"):
        if not r.has(key):
            r.report(key, "required field is missing")
    return ReferenceGrant(meta=meta, from_=tuple(froms), to=tuple(tos))


PARSERS: dict[str, Callable[[Reader, Meta], object]] = {
    "GatewayClass": parse_gateway_class,
    KUBE_GATEWAY: parse_kube_gateway,
    "TCPRoute": parse_route,
    "TLSRoute": parse_route,
    "ReferenceGrant": parse_reference_grant,
}
