"""Name and address checks shared by the validators, with istiod's messages.

Ports of ``pkg/config/labels`` (DNS-1123 labels, label keys/values), ``pkg/config/host`` (wildcard matching) and
``pkg/config/validation/agent`` (FQDN, wildcard domain, IP, CIDR, port). Functions return the error text, or
None / an empty list when the value is valid.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = [
    "DNS1123_LABEL_MSG",
    "UNIX_PREFIX",
    "go_quote",
    "host_subset_of",
    "hosts_overlap",
    "is_dns1123_label",
    "is_valid_ip",
    "is_wildcard_dns1123_label",
    "k8s_dns1123_label_errors",
    "k8s_label_key_errors",
    "k8s_label_value_errors",
    "k8s_port_name_errors",
    "validate_fqdn",
    "validate_ip_address",
    "validate_ip_subnet",
    "validate_label_instance",
    "validate_namespace_slash_wildcard_hostname",
    "validate_partial_wildcard",
    "validate_port",
    "validate_unix_address",
    "validate_wildcard_domain",
    "validate_wildcard_domain_for_vs_bound_to_gateway",
]

UNIX_PREFIX = "unix://"

_DNS1123_LABEL_MAX = 63
_DNS1123_LABEL_FMT = r"[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
_DNS1123_LABEL = re.compile(rf"^{_DNS1123_LABEL_FMT}$")
_WILDCARD_PREFIX = re.compile(rf"^(\*|(\*|\*-)?{_DNS1123_LABEL_FMT})$")
_QUALIFIED_NAME = r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_NAME_PREFIX = rf"{_DNS1123_LABEL_FMT}(?:\.{_DNS1123_LABEL_FMT})*/"
_TAG_KEY = re.compile(rf"^({_DNS_NAME_PREFIX})?({_QUALIFIED_NAME})$")
_LABEL_VALUE = re.compile(rf"^({_QUALIFIED_NAME})?$")
_DNS_PREFIX_MAX = 253


def go_quote(value: str) -> str:
    """Go's ``%q`` for the strings users write (escapes backslash, quote and control characters)."""
    out = []
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


# --- labels (pkg/config/labels) -----------------------------------------------------------------


def is_dns1123_label(value: str) -> bool:
    """labels.IsDNS1123Label (upper case accepted, as istiod does)."""
    return len(value) <= _DNS1123_LABEL_MAX and _DNS1123_LABEL.fullmatch(value) is not None


def is_wildcard_dns1123_label(value: str) -> bool:
    """labels.IsWildcardDNS1123Label: ``*``, ``*foo``, ``*-foo`` or a plain label."""
    return len(value) <= _DNS1123_LABEL_MAX and _WILDCARD_PREFIX.fullmatch(value) is not None


def _validate_tag_key(key: str) -> str | None:
    match = _TAG_KEY.fullmatch(key)
    if match is None:
        return f"invalid tag key: {go_quote(key)}"
    if match.group(1) and len(match.group(1)) - 1 > _DNS_PREFIX_MAX:
        return f"invalid tag key: {go_quote(key)} (DNS prefix is too long)"
    if len(match.group(2)) > _DNS1123_LABEL_MAX:
        return f"invalid tag key: {go_quote(key)} (name is too long)"
    return None


def validate_label_instance(labels: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """labels.Instance.Validate: (key, message) for each bad key or value."""
    out: list[tuple[str, str]] = []
    for key, value in labels:
        err = _validate_tag_key(key)
        if err:
            out.append((key, err))
        if _LABEL_VALUE.fullmatch(value) is None:
            out.append((key, f"invalid tag value: {go_quote(value)}"))
    return out


# --- domains (pkg/config/validation/agent) ------------------------------------------------------


def _check_dns1123_preconditions(name: str) -> str | None:
    if len(name) > 255:
        return f"domain name {go_quote(name)} too long (max 255)"
    if not name:
        return "empty domain name not allowed"
    return None


def _validate_dns1123_labels(domain: str) -> str | None:
    parts = domain.split(".")
    top = parts[-1]
    if re.fullmatch(r"[+-]?\d+", top):  # strconv.Atoi succeeds
        return f"domain name {go_quote(domain)} invalid (top level domain {go_quote(top)} cannot be all-numeric)"
    for i, label in enumerate(parts):
        # A trailing dot ("istio.io.") is allowed.
        if i == len(parts) - 1 and label == "":
            return None
        if not is_dns1123_label(label):
            return f"domain name {go_quote(domain)} invalid (label {go_quote(label)} invalid)"
    return None


def validate_fqdn(fqdn: str) -> str | None:
    """agent.ValidateFQDN."""
    return _check_dns1123_preconditions(fqdn) or _validate_dns1123_labels(fqdn)


def validate_wildcard_domain(domain: str) -> str | None:
    """agent.ValidateWildcardDomain: an FQDN whose first label may be a wildcard."""
    err = _check_dns1123_preconditions(domain)
    if err:
        return err
    first, _, rest = domain.partition(".")
    if not is_wildcard_dns1123_label(first):
        return f"domain name {go_quote(domain)} invalid (label {go_quote(first)} invalid)"
    if "." in domain:
        return _validate_dns1123_labels(rest)
    return None


_OUTBOUND_SNI_FORMAT = "outbound_.<PORT>_._.<HOSTNAME>"


def validate_wildcard_domain_for_vs_bound_to_gateway(sni: bool, domain: str) -> str | None:
    """agent.ValidateWildcardDomainForVirtualServiceBoundToGateway: also accepts AUTO_PASSTHROUGH SNI names
    (``outbound_.<port>_._.<host>``) when the VirtualService has sniHosts."""
    err = _check_dns1123_preconditions(domain)
    if err:
        return err
    if sni and domain.startswith("outbound_"):
        parts = domain.split("_")
        if len(parts) < 4:
            return f"domain name {domain} invalid, should follow '{_OUTBOUND_SNI_FORMAT}' format"
        direction, port, hostname = parts[0], parts[1].strip("."), parts[3].strip(".")
        if direction != "outbound":
            return f"domain name {go_quote(domain)} invalid (label {go_quote(direction)} invalid)"
        if not re.search(r"[0-9]", port):
            return (
                f"domain name {go_quote(domain)} invalid (label {go_quote(port)} invalid). "
                f"should follow {_OUTBOUND_SNI_FORMAT} format"
            )
        if not re.search(r"[a-zA-Z]", hostname):
            return (
                f"domain name {go_quote(domain)} invalid (label {go_quote(hostname)} invalid). "
                f"should follow {_OUTBOUND_SNI_FORMAT} format"
            )
        return None
    return validate_wildcard_domain(domain)


def validate_partial_wildcard(host: str) -> str | None:
    """agent.ValidatePartialWildCard: a wildcard must be the whole first label."""
    if "*" in host and len(host) != 1 and not host.startswith("*."):
        return f"partial wildcard {go_quote(host)} not allowed"
    return None


def _validate_gateway_hostname_part(hostname: str) -> list[str]:
    """agent.validateSidecarOrGatewayHostnamePart with isGateway=true (an IP is allowed)."""
    errs: list[str] = []
    if hostname != "*" and "." not in hostname:
        errs.append("short names (non FQDN) are not allowed")
    err = validate_wildcard_domain(hostname)
    if err and not is_valid_ip(hostname):
        errs.append(err)
    partial = validate_partial_wildcard(hostname)
    if partial:
        errs.append(partial)
    return errs


def validate_namespace_slash_wildcard_hostname(hostname: str) -> list[str]:
    """agent.ValidateNamespaceSlashWildcardHostname for Gateway server hosts (``ns/dnsName`` or ``dnsName``)."""
    if "/" not in hostname:
        return _validate_gateway_hostname_part(hostname)
    namespace, _, dns_name = hostname.partition("/")
    errs: list[str] = []
    if not namespace or not dns_name:
        errs.append("config namespace and dnsName in host entry cannot be empty")
    # "~" is only valid for gateways converted from the Gateway API, which tcpmesh does not read.
    if namespace not in ("*", ".") and not is_dns1123_label(namespace):
        errs.append(f"invalid namespace value {go_quote(namespace)} in gateway")
    errs.extend(_validate_gateway_hostname_part(dns_name))
    return errs


# --- host matching (pkg/config/host) ------------------------------------------------------------


def hosts_overlap(a: str, b: str) -> bool:
    """host.Name.Matches: the two (possibly wildcard) names overlap."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild and b_wild:
        return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
    if a_wild:
        return b.endswith(a[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


def host_subset_of(a: str, b: str) -> bool:
    """host.Name.SubsetOf: every name matched by ``a`` is matched by ``b``."""
    a_wild, b_wild = a.startswith("*"), b.startswith("*")
    if a_wild:
        return b_wild and len(a) >= len(b) and a[1:].endswith(b[1:])
    if b_wild:
        return a.endswith(b[1:])
    return a == b


# --- addresses and ports ------------------------------------------------------------------------


def is_valid_ip(addr: str) -> bool:
    """netip.ParseAddr succeeds (IPv4 without leading zeros, IPv6 with an optional zone)."""
    try:
        ipaddress.ip_address(addr)
    except ValueError:
        return False
    return True


def validate_ip_address(addr: str) -> str | None:
    """agent.ValidateIPAddress."""
    return None if is_valid_ip(addr) else f"{addr} is not a valid IP"


def _is_valid_prefix(subnet: str) -> bool:
    """netip.ParsePrefix: ``addr/bits`` with decimal bits in range and no zone."""
    addr, _, bits = subnet.partition("/")
    if "%" in addr or not bits.isascii() or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0"):
        return False
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return int(bits) <= ip.max_prefixlen


def validate_ip_subnet(subnet: str) -> str | None:
    """agent.ValidateIPSubnet: a CIDR block or a plain IP."""
    if subnet.count("/") == 1:
        return None if _is_valid_prefix(subnet) else f"{subnet} is not a valid CIDR block"
    return validate_ip_address(subnet)


def validate_port(port: int) -> str | None:
    """agent.ValidatePort."""
    return None if 1 <= port <= 65535 else f"port number {port} must be in the range 1..65535"


def validate_unix_address(addr: str) -> str | None:
    """validation.ValidateUnixAddress (``addr`` without the ``unix://`` prefix)."""
    if not addr:
        return "unix address must not be empty"
    if addr.startswith("@"):
        return None
    if not addr.startswith("/") or addr.endswith("/"):
        return f"{addr} is not an absolute path to a file"
    return None


# --- Kubernetes (k8s.io/apimachinery/pkg/util/validation) --------------------------------------

_K8S_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_K8S_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_K8S_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_K8S_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


def k8s_dns1123_label_errors(value: str) -> list[str]:
    """validation.IsDNS1123Label (lower case only, unlike istiod's check)."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _K8S_DNS1123_LABEL.fullmatch(value):
        errs.append(DNS1123_LABEL_MSG)
    return errs


def k8s_label_key_errors(key: str) -> list[str]:
    """validation.IsQualifiedName: ``[prefix/]name`` with a DNS-subdomain prefix."""
    parts = key.split("/")
    if len(parts) == 1:
        name, prefix = parts[0], None
    elif len(parts) == 2:
        prefix, name = parts
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
            "'/' (e.g. 'example.com/MyName')"
        ]
    errs = []
    if prefix is not None:
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part must be no more than 253 characters")
            if not _K8S_DNS1123_SUBDOMAIN.fullmatch(prefix):
                errs.append("prefix part " + _DNS1123_SUBDOMAIN_MSG)
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if name and not _K8S_QUALIFIED_NAME.fullmatch(name):
        errs.append(_QUALIFIED_NAME_MSG)
    return errs


def k8s_label_value_errors(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    errs = []
    if len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _K8S_LABEL_VALUE.fullmatch(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
            "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return errs


def k8s_port_name_errors(name: str) -> list[str]:
    """validation.IsValidPortName (IANA_SVC_NAME): a named container port."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs
