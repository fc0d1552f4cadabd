"""VirtualService admission rules for the parts tcpmesh reads (hosts, gateways, tcp, tls, exportTo):
``ValidateVirtualService``, ``validateTCPRoute``, ``validateTLSRoute``, ``validateRouteDestinations``,
``validateGatewayNames`` and ``analyzeUnreachableTCPRules/TLSRules`` (istio/istio ``pkg/config/validation``)."""

from __future__ import annotations

from collections.abc import Sequence

from tcpmesh.model.drain import DRAIN_ANNOTATION_PREFIX, parse_drain
from tcpmesh.model.hostnames import (
    go_quote,
    host_subset_of,
    hosts_overlap,
    is_dns1123_label,
    is_valid_ip,
    validate_fqdn,
    validate_ip_subnet,
    validate_port,
    validate_wildcard_domain,
    validate_wildcard_domain_for_vs_bound_to_gateway,
)
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import L4Match, RouteDestination, TLSMatch, VirtualService
from tcpmesh.model.validate_common import Reporter, validate_export_to, validate_labels

__all__ = ["is_gateway", "validate_gateway_names", "validate_subset_name", "validate_virtual_service"]

MESH_GATEWAY = "mesh"


def validate_virtual_service(vs: VirtualService) -> list[Problem]:
    r = Reporter(vs.meta)
    if not vs.hosts:
        # A VirtualService without hosts is a delegate; delegates carry HTTP routes only.
        if vs.gateways:
            r.err("spec.gateways", "delegate virtual service must have no gateways specified")
        if vs.tls:
            r.err("spec.tls", "delegate virtual service must have no tls route specified")
        if vs.tcp:
            r.err("spec.tcp", "delegate virtual service must have no tcp route specified")

    applies_to_gateway = False
    if vs.gateways:
        validate_gateway_names(r, "spec.gateways", vs.gateways)
        applies_to_gateway = is_gateway(vs)
    applies_to_mesh = not applies_to_gateway
    _hosts(r, vs, applies_to_gateway, applies_to_mesh)

    if not vs.http and not vs.tcp and not vs.tls:
        r.err("spec", "http, tcp or tls must be provided in virtual service")
    for i, tls_route in enumerate(vs.tls):
        path = f"spec.tls[{i}]"
        if not tls_route.match:
            r.err(path, "TLS route must have at least one match condition")
        for j, tls_match in enumerate(tls_route.match):
            _tls_match(r, f"{path}.match[{j}]", tls_match, vs)
        if not tls_route.route:
            r.err(path, "TLS route is required")
        _route_destinations(r, f"{path}.route", tls_route.route)
    for i, tcp_route in enumerate(vs.tcp):
        path = f"spec.tcp[{i}]"
        for j, tcp_match in enumerate(tcp_route.match):
            _l4_match(r, f"{path}.match[{j}]", tcp_match)
        if not tcp_route.route:
            r.err(path, "TCP route is required")
        _route_destinations(r, f"{path}.route", tcp_route.route)

    validate_export_to(r, "spec.exportTo", vs.export_to)
    _unreachable(r, "spec.tcp", [t.match for t in vs.tcp])
    _unreachable(r, "spec.tls", [t.match for t in vs.tls])
    _drains(r, vs)
    return r.problems


def _drains(r: Reporter, vs: VirtualService) -> None:
    """tcpmesh's drain annotations (``tcpmesh drain`` writes them): well formed, naming a routed subset."""
    subsets = {d.destination.subset for d in vs.l4_destinations()}
    for key, value in vs.meta.annotations:
        if not key.startswith(DRAIN_ANNOTATION_PREFIX):
            continue
        path = f"metadata.annotations.{key}"
        drain = parse_drain(key, value)
        if isinstance(drain, str):
            r.err(path, drain)
        elif drain.subset not in subsets:
            r.warn(
                path,
                f"drain annotation {key!r}: no tcp or tls route of this virtual service has subset {drain.subset!r}",
            )


def is_gateway(vs: VirtualService) -> bool:
    """isGateway: bound only to gateways (no ``mesh``). Note: true for an empty gateway list, as in istiod."""
    return MESH_GATEWAY not in vs.gateways


def _hosts(r: Reporter, vs: VirtualService, applies_to_gateway: bool, applies_to_mesh: bool) -> None:
    sni = any(m.sni_hosts for t in vs.tls for m in t.match)
    all_valid = True
    for j, host in enumerate(vs.hosts):
        path = f"spec.hosts[{j}]"
        if applies_to_gateway:
            err = validate_wildcard_domain_for_vs_bound_to_gateway(sni, host)
        else:
            err = validate_wildcard_domain(host)
        if err:
            if not is_valid_ip(host):  # an IP address is accepted as a host
                r.err(path, err)
                all_valid = False
        elif applies_to_mesh and host == "*":
            r.err(path, "wildcard host * is not allowed for virtual services bound to the mesh gateway")
            all_valid = False
    if not all_valid:
        return
    # Overlapping wildcards count as duplicates too (*.foo.com and *.com).
    for i, a in enumerate(vs.hosts):
        for b in vs.hosts[i + 1 :]:
            if hosts_overlap(a, b):
                r.err(f"spec.hosts[{i}]", f"duplicate hosts in virtual service: {a} & {b}")


def validate_gateway_names(r: Reporter, path: str, names: Sequence[str]) -> None:
    """validateGatewayNames: ``ns/name`` with DNS-label parts, or a short/legacy ``name.ns`` FQDN."""
    for k, name in enumerate(names):
        at = f"{path}[{k}]"
        if "/" not in name:
            if "." in name:
                parts = name.split(".")
                r.warn(
                    at,
                    f"using legacy gatewayName format {go_quote(name)}; prefer the <namespace>/<name> format: "
                    f"{go_quote(parts[1] + '/' + parts[0])}",
                )
            r.err(at, validate_fqdn(name))
            # istiod returns here: names after the first non-"ns/name" entry are not checked.
            return
        namespace, _, gateway = name.partition("/")
        if not namespace or not gateway:
            r.err(at, "config namespace and gateway name cannot be empty")
        if not is_dns1123_label(namespace):
            r.err(at, f"invalid value for namespace: {go_quote(namespace)}")
        if not is_dns1123_label(gateway):
            r.err(at, f"invalid value for gateway name: {go_quote(gateway)}")


def _l4_match(r: Reporter, path: str, match: L4Match | TLSMatch) -> None:
    """validateTCPMatch (and the L4 half of validateTLSMatch)."""
    for k, subnet in enumerate(match.destination_subnets):
        r.err(f"{path}.destinationSubnets[{k}]", validate_ip_subnet(subnet))
    if match.port != 0:
        r.err(f"{path}.port", validate_port(match.port))
    validate_labels(r, f"{path}.sourceLabels", match.source_labels)
    validate_gateway_names(r, f"{path}.gateways", match.gateways)


def _tls_match(r: Reporter, path: str, match: TLSMatch, vs: VirtualService) -> None:
    """validateTLSMatch."""
    if not match.sni_hosts:
        r.err(f"{path}.sniHosts" if r.has(f"{path}.sniHosts") else path, "TLS match must have at least one SNI host")
    for k, sni in enumerate(match.sni_hosts):
        _sni_host(r, f"{path}.sniHosts[{k}]", sni, vs)
    _l4_match(r, path, match)


def _sni_host(r: Reporter, path: str, sni: str, vs: VirtualService) -> None:
    """validateSniHost: a (wildcard) domain covered by one of the VirtualService hosts; an IP only warns."""
    if is_gateway(vs):
        err = validate_wildcard_domain_for_vs_bound_to_gateway(True, sni)
    else:
        err = validate_wildcard_domain(sni)
    if err:
        if is_valid_ip(sni):
            r.warn(
                path,
                f"using an IP address ({go_quote(sni)}) goes against SNI spec and most clients do not support this",
            )
        else:
            r.err(path, err)
        return
    if any(host_subset_of(sni, host) for host in vs.hosts):
        return
    r.err(
        path,
        f"SNI host {go_quote(sni)} is not a compatible subset of any of the virtual service hosts: "
        f"[{', '.join(vs.hosts)}]",
    )


def validate_subset_name(name: str) -> str | None:
    """validateSubsetName."""
    if not name:
        return "subset name cannot be empty"
    if not is_dns1123_label(name):
        return f"subset name is invalid: {name}"
    return None


def _route_destinations(r: Reporter, path: str, routes: Sequence[RouteDestination]) -> None:
    """validateRouteDestinations: destination host/subset/port, weights >= 0 and not all 0 when split.
    There is no upper bound and no sum-to-100 rule (since Istio 1.15)."""
    total = 0
    for k, rd in enumerate(routes):
        at = f"{path}[{k}]"
        dest_path = f"{at}.destination"
        # A missing destination is reported by the parser ("destination is required").
        if r.has(dest_path):
            dest = rd.destination
            if dest.host == "*":
                r.err(f"{dest_path}.host", "invalid destination host *")
            else:
                host_path = f"{dest_path}.host" if r.has(f"{dest_path}.host") else dest_path
                r.err(host_path, validate_wildcard_domain(dest.host))
            if dest.subset:
                r.err(f"{dest_path}.subset", validate_subset_name(dest.subset))
            if r.has(f"{dest_path}.port"):
                r.err(f"{dest_path}.port.number", validate_port(dest.port))
        if rd.weight < 0:
            r.err(f"{at}.weight", f"weight {rd.weight} < 0")
        total += rd.weight
    if len(routes) > 1 and total == 0:
        r.err(path, "total destination weight = 0")


def _unreachable(r: Reporter, path: str, rules: Sequence[Sequence[L4Match | TLSMatch]]) -> None:
    """analyzeUnreachableTCPRules / analyzeUnreachableTLSRules: warnings for rules no connection can reach.
    TCP and TLS rules have no names, so they are called ``#<index>``."""
    seen: dict[L4Match | TLSMatch, int] = {}
    empty_seen = False
    for i, matches in enumerate(rules):
        at = f"{path}[{i}]"
        if not matches:
            if empty_seen:
                r.warn(at, f"virtualService rule #{i} not used (only the last rule can have no matches)")
            empty_seen = True
            continue
        duplicates = 0
        for j, match in enumerate(matches):
            if match in seen:
                r.warn(
                    f"{at}.match[{j}]",
                    f"virtualService rule #{i} match #{j} is not used (duplicate/overlapping match in rule "
                    f"#{seen[match]})",
                )
                duplicates += 1
            else:
                seen[match] = i
        if duplicates == len(matches):
            r.warn(at, f"virtualService rule #{i} not used (all matches used by prior rules)")
