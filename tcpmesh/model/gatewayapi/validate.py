"""The Gateway API CRDs' rules (OpenAPI patterns, ranges, item counts and CEL validations, gateway-api v1.6), in the
API server's words, each located at its field."""

from __future__ import annotations

import ipaddress
import re

from tcpmesh.model.drain import DRAIN_ANNOTATION_PREFIX, parse_backend_drain
from tcpmesh.model.gatewayapi.resources import (
    GatewayClass,
    KubeGateway,
    L4Route,
    Listener,
    ParentRef,
    ReferenceGrant,
    display_kind,
)
from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.validate_common import Reporter

__all__ = ["validate_gateway_api"]

_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_SECTION_NAME = f"^{_DNS_SUBDOMAIN}$"
_HOSTNAME = rf"^(\*\.)?{_DNS_SUBDOMAIN}$"
_GROUP = f"^$|^{_DNS_SUBDOMAIN}$"
_KIND = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"
_NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_PROTOCOL = rf"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|{_DNS_SUBDOMAIN}\/[A-Za-z0-9]+$"
_CONTROLLER = rf"^{_DNS_SUBDOMAIN}\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$"
_RFC1123 = f"^{_DNS_SUBDOMAIN}$"


class _Reporter(Reporter):
    """Problems name the kind as written (``Gateway``, not the internal ``KubernetesGateway``)."""

    def _add(self, path: str, message: str, severity: Severity) -> None:
        super()._add(path, message, severity)
        last = self.problems[-1]
        self.problems[-1] = Problem(
            message=last.message,
            file=last.file,
            line=last.line,
            kind=display_kind(last.kind),
            namespace=last.namespace,
            name=last.name,
            field=last.field,
            severity=last.severity,
        )

    def pattern(self, path: str, value: str, pattern: str, max_length: int = 253) -> None:
        if len(value) > max_length:
            self.err(path, f"Too long: may not be more than {max_length} bytes")
        elif not re.search(pattern, value):
            self.err(path, f"Invalid value: {_q(value)}: should match '{pattern}'")

    def port(self, path: str, value: int) -> None:
        if not 1 <= value <= 65535:
            low = value < 1
            bound = "greater than or equal to 1" if low else "less than or equal to 65535"
            self.err(path, f"Invalid value: {value}: should be {bound}")

    def items(self, path: str, count: int, low: int, high: int) -> None:
        if count < low and (self.has(path) or low > 0):
            self.err(path, f"Required value: should have at least {low} items" if count else "Required value")
        elif count > high:
            self.err(path, f"Too many: {count}: must have at most {high} items")


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def validate_gateway_api(resource: GatewayClass | KubeGateway | L4Route | ReferenceGrant) -> list[Problem]:
    r = _Reporter(resource.meta)
    match resource:
        case GatewayClass():
            if resource.controller_name:
                r.pattern("spec.controllerName", resource.controller_name, _CONTROLLER)
        case KubeGateway():
            _gateway(r, resource)
        case L4Route():
            _route(r, resource)
        case ReferenceGrant():
            _grant(r, resource)
    return r.problems


def _gateway(r: _Reporter, gw: KubeGateway) -> None:
    if gw.gateway_class_name:
        r.pattern("spec.gatewayClassName", gw.gateway_class_name, ".", 253)
    elif r.has("spec.gatewayClassName"):
        r.err("spec.gatewayClassName", 'Invalid value: "": should be at least 1 chars long')
    r.items("spec.listeners", len(gw.listeners), 1, 64)
    for i, listener in enumerate(gw.listeners):
        _listener(r, f"spec.listeners[{i}]", listener)
    names: set[str] = set()
    combos: set[tuple[int, str, str]] = set()
    for i, listener in enumerate(gw.listeners):
        path = f"spec.listeners[{i}]"
        if listener.name in names:
            r.err(f"{path}.name", "Listener name must be unique within the Gateway")
        names.add(listener.name)
        combo = (listener.port, listener.protocol, listener.hostname)
        if combo in combos:
            r.err(path, "Combination of port, protocol and hostname must be unique for each listener")
        combos.add(combo)


def _listener(r: _Reporter, path: str, listener: Listener) -> None:
    if listener.name:
        r.pattern(f"{path}.name", listener.name, _SECTION_NAME)
    r.port(f"{path}.port", listener.port)
    if listener.protocol:
        r.pattern(f"{path}.protocol", listener.protocol, _PROTOCOL, 255)
    if listener.hostname:
        r.pattern(f"{path}.hostname", listener.hostname, _HOSTNAME)
        if listener.protocol in ("TCP", "UDP"):
            r.err(f"{path}.hostname", "hostname must not be specified for protocols ['TCP', 'UDP']")
    tls = listener.tls
    if tls is not None:
        if listener.protocol in ("HTTP", "TCP", "UDP"):
            r.err(f"{path}.tls", "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']")
        if listener.protocol == "HTTPS" and tls.mode != "Terminate":
            r.err(f"{path}.tls.mode", "tls mode must be Terminate for protocol HTTPS")
        r.items(f"{path}.tls.certificateRefs", len(tls.certificate_refs), 0, 64)
        if tls.mode == "Terminate" and not tls.certificate_refs and not tls.options:
            r.err(f"{path}.tls", "certificateRefs or options must be specified when mode is Terminate")
        for j, ref in enumerate(tls.certificate_refs):
            _object_ref(r, f"{path}.tls.certificateRefs[{j}]", ref.group, ref.kind, ref.namespace)
    if listener.protocol == "TLS" and (tls is None or not r.has(f"{path}.tls.mode")):
        r.err(f"{path}.tls" if tls is not None else path, "tls mode must be set for protocol TLS")
    allowed = listener.allowed_routes
    if allowed is not None:
        r.items(f"{path}.allowedRoutes.kinds", len(allowed.kinds), 0, 8)
        for j, k in enumerate(allowed.kinds):
            _object_ref(r, f"{path}.allowedRoutes.kinds[{j}]", k.group, k.kind, "")


def _object_ref(r: _Reporter, path: str, group: str, kind: str, namespace: str) -> None:
    if group:
        r.pattern(f"{path}.group", group, _GROUP)
    if kind:
        r.pattern(f"{path}.kind", kind, _KIND, 63)
    if namespace:
        r.pattern(f"{path}.namespace", namespace, _NAMESPACE, 63)


def _route(r: _Reporter, route: L4Route) -> None:
    v1 = route.meta.api_version.endswith("/v1")
    r.items("spec.parentRefs", len(route.parent_refs), 0, 32)
    for i, p in enumerate(route.parent_refs):
        path = f"spec.parentRefs[{i}]"
        _object_ref(r, path, p.group, p.kind, p.namespace)
        if p.section_name:
            r.pattern(f"{path}.sectionName", p.section_name, _SECTION_NAME)
        if r.has(f"{path}.port"):
            r.port(f"{path}.port", p.port)
    if len(route.parent_refs) <= 32:  # quadratic: only on a list the CRD admits
        _parent_refs_cel(r, route.parent_refs)
    if route.meta.kind == "TLSRoute":
        _hostnames(r, route.hostnames, required=v1)
    r.items("spec.rules", len(route.rules), 1, 1 if v1 else 16)
    for i, refs in enumerate(route.rules):
        path = f"spec.rules[{i}].backendRefs"
        r.items(path, len(refs), 1 if v1 else 0, 16)
        for j, b in enumerate(refs):
            bpath = f"{path}[{j}]"
            _object_ref(r, bpath, b.group, b.kind, b.namespace)
            if b.port is not None:
                r.port(f"{bpath}.port", b.port)
            elif b.group == "" and b.kind == "Service":
                r.err(bpath, "Must have port for Service reference")
            if not 0 <= b.weight <= 1_000_000:
                bound = "greater than or equal to 0" if b.weight < 0 else "less than or equal to 1000000"
                r.err(f"{bpath}.weight", f"Invalid value: {b.weight}: should be {bound}")
    _drains(r, route)


def _drains(r: _Reporter, route: L4Route) -> None:
    """tcpmesh's drain annotations (``tcpmesh drain tcproute/NAME --backend B`` writes them): well formed, naming
    a backendRef of the route."""
    names = {b.name for refs in route.rules for b in refs}
    for key, value in route.meta.annotations:
        if not key.startswith(DRAIN_ANNOTATION_PREFIX):
            continue
        path = f"metadata.annotations.{key}"
        drain = parse_backend_drain(key, value)
        if isinstance(drain, str):
            r.err(path, drain)
        elif drain.backend not in names:
            known = ", ".join(sorted(names)) or "none"
            r.warn(path, f"drain annotation {key!r}: no backendRef of this route is named {drain.backend!r} ({known})")


def _same_parent(a: ParentRef, b: ParentRef) -> bool:
    return (a.group, a.kind, a.name, a.namespace) == (b.group, b.kind, b.name, b.namespace)


def _parent_refs_cel(r: _Reporter, parents: tuple[ParentRef, ...]) -> None:
    """The two parentRefs CEL rules: references to the same parent all name a section/port, and distinct ones."""
    for i, a in enumerate(parents):
        same = [b for b in parents if _same_parent(a, b)]
        if any((bool(a.section_name), bool(a.port)) != (bool(b.section_name), bool(b.port)) for b in same):
            r.err(
                f"spec.parentRefs[{i}]",
                "sectionName or port must be specified when parentRefs includes 2 or more references to the same "
                "parent",
            )
            return
        if sum(1 for b in same if (b.section_name, b.port) == (a.section_name, a.port)) > 1:
            r.err(
                f"spec.parentRefs[{i}]",
                "sectionName or port must be unique when parentRefs includes 2 or more references to the same parent",
            )
            return


def _hostnames(r: _Reporter, hostnames: tuple[str, ...], *, required: bool) -> None:
    r.items("spec.hostnames", len(hostnames), 1 if required else 0, 1024 if required else 16)
    for i, h in enumerate(hostnames):
        path = f"spec.hostnames[{i}]"
        if len(h) > 253:
            r.err(path, "Too long: may not be more than 253 bytes")
            continue
        try:
            ipaddress.ip_address(h)
            r.err(path, "Hostnames cannot contain an IP")
            continue
        except ValueError:
            pass
        if "*" not in h:
            if not re.search(_RFC1123, h):
                r.err(path, "Hostnames must be valid based on RFC-1123")
        elif not (h.startswith("*.") and re.search(_RFC1123, h[2:])):
            r.err(
                path,
                "Wildcards on hostnames must be the first label, and the rest of hostname must be valid based on "
                "RFC-1123",
            )


def _grant(r: _Reporter, grant: ReferenceGrant) -> None:
    r.items("spec.from", len(grant.from_), 1, 16)
    r.items("spec.to", len(grant.to), 1, 16)
    for i, f in enumerate(grant.from_):
        _object_ref(r, f"spec.from[{i}]", f.group, f.kind, f.namespace)
    for i, t in enumerate(grant.to):
        _object_ref(r, f"spec.to[{i}]", t.group, t.kind, "")
        if t.name:
            r.pattern(f"spec.to[{i}].name", t.name, ".", 253)
