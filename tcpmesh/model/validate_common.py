"""What every validator shares: a located problem collector, protocol parsing, exportTo and selector rules."""

from __future__ import annotations

from tcpmesh.model.hostnames import go_quote, is_dns1123_label, validate_label_instance
from tcpmesh.model.problems import Problem, Severity
from tcpmesh.model.resources import Labels, Meta

__all__ = [
    "Reporter",
    "parse_protocol",
    "protocol_is_http",
    "protocol_is_tcp",
    "protocol_is_tls",
    "validate_export_to",
    "validate_labels",
    "validate_workload_selector",
]


class Reporter:
    """Collects problems for one resource; each carries the file, the line of its field path and the identity."""

    def __init__(self, meta: Meta) -> None:
        self.meta = meta
        self.problems: list[Problem] = []

    def has(self, path: str) -> bool:
        """Whether ``path`` was written in the input (the model records a line for every field present)."""
        return path in self.meta.field_lines

    def _add(self, path: str, message: str, severity: Severity) -> None:
        self.problems.append(
            Problem(
                message=message,
                file=self.meta.source.file,
                line=self.meta.line_of(path),
                kind=self.meta.kind,
                namespace=self.meta.namespace,
                name=self.meta.name,
                field=path,
                severity=severity,
            )
        )

    def err(self, path: str, message: str | None) -> None:
        if message:
            self._add(path, message, Severity.ERROR)

    def warn(self, path: str, message: str | None) -> None:
        if message:
            self._add(path, message, Severity.WARNING)


# --- protocols (pkg/config/protocol) ------------------------------------------------------------

_PROTOCOLS = {
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "GRPC",
    "grpc-web": "GRPC-Web",
    "http": "HTTP",
    "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2",
    "https": "HTTPS",
    "tls": "TLS",
    "mongo": "Mongo",
    "redis": "Redis",
    "mysql": "MySQL",
}
UNSUPPORTED = "UnsupportedProtocol"


def parse_protocol(value: str) -> str:
    """protocol.Parse: case-insensitive; anything else is ``UnsupportedProtocol``."""
    return _PROTOCOLS.get(value.lower(), UNSUPPORTED)


def protocol_is_http(protocol: str) -> bool:
    return protocol in ("HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web")


def protocol_is_tls(protocol: str) -> bool:
    return protocol in ("HTTPS", "TLS")


def protocol_is_tcp(protocol: str) -> bool:
    return protocol in ("TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL")


# --- shared rules -------------------------------------------------------------------------------


def validate_labels(r: Reporter, path: str, labels: Labels) -> None:
    """labels.Instance.Validate, each problem at the offending key."""
    for key, message in validate_label_instance(labels):
        r.err(f"{path}.{key}", message)


def validate_export_to(
    r: Reporter, path: str, export_to: tuple[str, ...], *, service_entry: bool = False, dr_selector: bool = False
) -> None:
    """validateExportTo: no duplicates (``.`` counts as the own namespace), only ``.``/``*``/namespace names,
    ``*`` alone, ``~`` (ServiceEntry only) alone, and workload-selector DestinationRules local only."""
    if not export_to:
        return
    namespace = r.meta.namespace
    seen: set[str] = set()
    for i, entry in enumerate(export_to):
        at = f"{path}[{i}]"
        key = namespace if entry == "." else entry
        if key in seen:
            if key != entry:
                r.err(at, f"duplicate entries in exportTo: . and current namespace {namespace}")
            else:
                r.err(at, f"duplicate entries in exportTo for entry {entry}")
        elif service_entry and entry == "~":
            seen.add(key)
        elif key == "~":
            r.err(at, "exportTo ~ (none) is not allowed for Istio configuration objects")
        elif key not in ("*", ".") and not is_dns1123_label(key):
            r.err(at, "only .,*,~, or a valid DNS 1123 label is allowed as exportTo entry")
        else:
            seen.add(key)
    if dr_selector and seen:
        if namespace in seen:
            if len(seen) > 1:
                r.err(path, "destination rule with workload selector cannot have multiple entries in exportTo")
        else:
            r.err(path, "destination rule with workload selector cannot have exportTo beyond current namespace")
    if "*" in seen and len(export_to) > 1:
        r.err(path, "cannot have both public (*) and non-public exportTo values for a resource")
    if "~" in seen and len(export_to) > 1:
        r.err(path, "cannot export service entry to no one (~) and someone")


def validate_workload_selector(r: Reporter, path: str, labels: Labels | None, *, empty_warning: str) -> None:
    """validateWorkloadSelector / ValidateAlphaWorkloadSelector: no empty keys, no wildcards; a selector
    without labels applies to everything, which istiod only warns about."""
    if labels is None:
        return
    for key, value in labels:
        pair = go_quote(f"{key}={value}")
        if key == "":
            r.err(path, f"empty key is not supported in selector: {pair}")
        if "*" in key or "*" in value:
            r.err(f"{path}.{key}", f"wildcard is not supported in selector: {pair}")
    if not labels:
        r.warn(path, empty_warning)
