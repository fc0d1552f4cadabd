"""ServiceEntry and WorkloadEntry admission rules: ``ValidateServiceEntry``, ``ValidateWorkloadEntry`` and
``validateWorkloadEntry`` (istio/istio ``pkg/config/validation/validation.go``)."""

from __future__ import annotations

from tcpmesh.model.hostnames import (
    UNIX_PREFIX,
    go_quote,
    is_dns1123_label,
    is_valid_ip,
    validate_fqdn,
    validate_ip_subnet,
    validate_partial_wildcard,
    validate_port,
    validate_unix_address,
    validate_wildcard_domain,
)
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import ServiceEntry, WorkloadEntry, WorkloadSpec
from tcpmesh.model.validate_common import (
    UNSUPPORTED,
    Reporter,
    parse_protocol,
    protocol_is_http,
    protocol_is_tcp,
    protocol_is_tls,
    validate_export_to,
    validate_labels,
)

__all__ = ["validate_service_entry", "validate_workload_entry"]

# Setting this annotation to "false" opts a ServiceEntry out of istiod's IP auto-allocation.
_AUTOALLOCATE_ANNOTATION = "networking.istio.io/enable-autoallocate-ip"


def _port_name(name: str) -> str | None:
    """ValidatePortName."""
    return None if is_dns1123_label(name) else f"invalid port name: {name}"


def validate_workload_entry(we: WorkloadEntry) -> list[Problem]:
    """ValidateWorkloadEntry: the address may be an IP, a unix socket or an FQDN (no ServiceEntry to check ports)."""
    r = Reporter(we.meta)
    _workload(r, "spec", we.spec, service_ports=None, allow_fqdn=True)
    return r.problems


def _workload(r: Reporter, path: str, spec: WorkloadSpec, *, service_ports: set[str] | None, allow_fqdn: bool) -> None:
    """validateWorkloadEntry."""
    addr = spec.address
    addr_path = f"{path}.address" if r.has(f"{path}.address") else path
    if not addr:
        if not spec.network:
            r.err(addr_path, "address is required")
            return
        r.warn(addr_path, f"address is unset with network {go_quote(spec.network)}")
    unix = addr.startswith(UNIX_PREFIX)
    if unix:
        r.err(addr_path, validate_unix_address(addr.removeprefix(UNIX_PREFIX)))
        if spec.ports:
            r.err(f"{path}.ports", f"unix endpoint {addr} must not include ports")
    elif addr and not is_valid_ip(addr):
        if not allow_fqdn:
            r.err(addr_path, f"endpoint address {go_quote(addr)} is not a valid IP address")
        elif validate_fqdn(addr):
            r.err(addr_path, f"endpoint address {go_quote(addr)} is not a valid FQDN or an IP address")
    for name, port in spec.ports:
        at = f"{path}.ports.{name}"
        if service_ports is not None and name not in service_ports:
            r.err(at, f"endpoint port {port} is not defined by the service entry")
        r.err(at, _port_name(name))
        r.err(at, validate_port(port))
    validate_labels(r, f"{path}.labels", spec.labels)
    if unix and service_ports is not None and len(service_ports) != 1:
        r.err(addr_path, "exactly 1 service port required for unix endpoints")


def validate_service_entry(se: ServiceEntry) -> list[Problem]:
    r = Reporter(se.meta)
    if not _workload_selector(r, se):
        return r.problems
    if se.workload_selector is not None and se.endpoints:
        r.err("spec.endpoints", "only one of WorkloadSelector or Endpoints is allowed in Service Entry")
    _hosts(r, se)

    cidr_found = False
    for k, address in enumerate(se.addresses):
        cidr_found = cidr_found or "/" in address
        r.err(f"spec.addresses[{k}]", validate_ip_subnet(address))
    if cidr_found and se.resolution not in ("NONE", "STATIC"):
        r.err("spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")

    service_ports = _ports(r, se)
    _resolution(r, se, service_ports)

    # Plain TCP cannot tell hosts apart (no Host header, no SNI), so several hosts need NONE resolution.
    if se.resolution != "NONE" and len(se.hosts) > 1:
        for k, port in enumerate(se.ports):
            protocol = parse_protocol(port.protocol)
            if not protocol_is_http(protocol) and not protocol_is_tls(protocol):
                r.err(f"spec.ports[{k}]", "multiple hosts provided with non-HTTP, non-TLS ports")
                break
    validate_export_to(r, "spec.exportTo", se.export_to, service_entry=True)
    return r.problems


def _workload_selector(r: Reporter, se: ServiceEntry) -> bool:
    """ValidateAlphaWorkloadSelector; its errors end ServiceEntry validation (False)."""
    if se.workload_selector is None:
        return True
    path = "spec.workloadSelector"
    ok = True
    for key, value in se.workload_selector:
        pair = go_quote(f"{key}={value}")
        if key == "":
            r.err(f"{path}.labels", f"empty key is not supported in selector: {pair}")
            ok = False
        if "*" in key or "*" in value:
            r.err(f"{path}.labels.{key}", f"wildcard is not supported in selector: {pair}")
            ok = False
    if ok and not se.workload_selector:
        r.warn(
            path,
            "service entry: workload selector specified without labels, will be applied to all services in namespace",
        )
    return ok


def _hosts(r: Reporter, se: ServiceEntry) -> None:
    if not se.hosts:
        r.err("spec.hosts" if r.has("spec.hosts") else "spec", "service entry must have at least one host")
    for k, host in enumerate(se.hosts):
        at = f"spec.hosts[{k}]"
        if host == "*":
            r.err(at, "invalid host *")
        else:
            r.err(at, validate_wildcard_domain(host))
            r.warn(at, validate_partial_wildcard(host))


def _ports(r: Reporter, se: ServiceEntry) -> set[str]:
    """Port names and numbers are unique, names are DNS labels, protocols are known."""
    names: set[str] = set()
    numbers: set[int] = set()
    autoallocate = dict(se.meta.annotations).get(_AUTOALLOCATE_ANNOTATION) != "false"
    for k, port in enumerate(se.ports):
        at = f"spec.ports[{k}]"
        if port.name in names:
            r.err(f"{at}.name", f"service entry port name {go_quote(port.name)} already defined")
        names.add(port.name)
        if port.number in numbers:
            r.err(f"{at}.number", f"service entry port {port.number} already defined")
        numbers.add(port.number)
        if port.target_port != 0:
            r.err(f"{at}.targetPort", validate_port(port.target_port))
        if not se.addresses and not autoallocate and port.protocol in ("", "TCP"):
            r.warn(
                at,
                "addresses are required for ports serving TCP (or unset) protocol when IP Autoallocation is not "
                "enabled",
            )
        r.err(f"{at}.name" if r.has(f"{at}.name") else at, _port_name(port.name))
        if port.protocol and parse_protocol(port.protocol) == UNSUPPORTED:
            r.err(f"{at}.protocol", f"unsupported protocol: {port.protocol}")
        r.err(f"{at}.number" if r.has(f"{at}.number") else at, validate_port(port.number))
    return names


def _resolution(r: Reporter, se: ServiceEntry, service_ports: set[str]) -> None:
    if se.resolution == "NONE":
        if se.endpoints:
            r.err("spec.endpoints", "no endpoints should be provided for resolution type none")
        if se.workload_selector is not None:
            r.warn("spec.workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
    elif se.resolution == "STATIC":
        for k, endpoint in enumerate(se.endpoints):
            _workload(r, f"spec.endpoints[{k}]", endpoint, service_ports=service_ports, allow_fqdn=False)
    elif se.resolution in ("DNS", "DNS_ROUND_ROBIN"):
        _dns(r, se, service_ports)


def _dns(r: Reporter, se: ServiceEntry, service_ports: set[str]) -> None:
    """DNS / DNS_ROUND_ROBIN: without endpoints the hosts themselves are resolved, so they must be FQDNs."""
    if not se.endpoints:
        for k, host in enumerate(se.hosts):
            if validate_fqdn(host):
                r.err(
                    f"spec.hosts[{k}]",
                    f"hosts must be FQDN if no endpoints are provided for resolution mode {se.resolution}",
                )
    if se.resolution == "DNS_ROUND_ROBIN" and len(se.endpoints) > 1:
        r.err("spec.endpoints", f"there must only be 0 or 1 endpoint for resolution mode {se.resolution}")
    for k, endpoint in enumerate(se.endpoints):
        at = f"spec.endpoints[{k}]"
        if not is_valid_ip(endpoint.address) and validate_fqdn(endpoint.address):
            r.err(
                f"{at}.address" if r.has(f"{at}.address") else at,
                f"endpoint address {go_quote(endpoint.address)} is not a valid FQDN or an IP address",
            )
        validate_labels(r, f"{at}.labels", endpoint.labels)
        for name, number in endpoint.ports:
            port_path = f"{at}.ports.{name}"
            if name not in service_ports:
                r.err(port_path, f"endpoint port {number} is not defined by the service entry")
            r.err(port_path, _port_name(name))
            r.err(port_path, validate_port(number))
    if se.addresses:
        for k, port in enumerate(se.ports):
            if protocol_is_tcp(parse_protocol(port.protocol)):
                if len(se.hosts) > 1:
                    r.warn(
                        f"spec.ports[{k}]",
                        "service entry can not have more than one host specified simultaneously with address and "
                        "tcp port",
                    )
                break
