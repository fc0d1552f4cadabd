"""Istio and Kubernetes resources as typed, frozen values.

Field names follow the Istio API (snake_case here, camelCase in YAML). Only what tcpmesh reads is modelled;
the parser rejects fields it does not know, so nothing a user writes is silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias, Union

from tcpmesh.model.pickled import pickled_by_slots

if TYPE_CHECKING:
    from tcpmesh.model.gatewayapi.resources import GatewayClass, KubeGateway, L4Route, ReferenceGrant
    from tcpmesh.model.resources_http import HTTPRoute

__all__ = [
    "ClientTLS",
    "ConnectionPool",
    "ConsistentHash",
    "Container",
    "Deployment",
    "Destination",
    "DestinationRule",
    "Gateway",
    "HTTP2Keepalive",
    "HTTPSettings",
    "L4Match",
    "Labels",
    "LoadBalancer",
    "LocalityLbSetting",
    "Meta",
    "OutlierDetection",
    "PortTrafficPolicy",
    "Resource",
    "RetryBudget",
    "RouteDestination",
    "Secret",
    "Server",
    "ServerPort",
    "ServerTLS",
    "Service",
    "ServiceEntry",
    "ServiceEntryPort",
    "ServicePort",
    "Source",
    "Subset",
    "TCPKeepalive",
    "TCPRoute",
    "TCPSettings",
    "TLSMatch",
    "TLSRoute",
    "TrafficPolicy",
    "VirtualService",
    "Warmup",
    "WorkloadEntry",
    "WorkloadSpec",
    "selector_matches",
]

Labels: TypeAlias = tuple[tuple[str, str], ...]
"""Labels as sorted (key, value) pairs: hashable and order-independent."""


def selector_matches(selector: Labels, labels: Mapping[str, str]) -> bool:
    """Kubernetes' equality-based selector: every label of `selector` is on `labels` (an empty one selects all)."""
    return all(labels.get(k) == v for k, v in selector)


@pickled_by_slots
@dataclass(frozen=True, slots=True)
class Source:
    """Where a value was written: file and 1-based line."""

    file: str = "<input>"
    line: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Meta:
    kind: str
    api_version: str
    name: str
    namespace: str
    labels: Labels = ()
    annotations: Labels = ()
    source: Source = Source()
    order: int = 0
    """Position in the input: stands in for creationTimestamp, which orders VirtualServices in istiod."""
    field_lines: Mapping[str, int] = field(default_factory=dict, compare=False, hash=False, repr=False)
    """Line of each field path ("spec.tcp[0].route[1].weight"), for locating semantic errors."""

    def line_of(self, path: str) -> int:
        """The line of ``path`` or of its closest parent that was written in the input."""
        while path:
            if path in self.field_lines:
                return self.field_lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.source.line

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- Gateway ------------------------------------------------------------------------------------


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ServerPort:
    number: int
    name: str
    protocol: str
    target_port: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ServerTLS:
    mode: str = "PASSTHROUGH"
    server_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    ca_crl: str = ""
    credential_name: str = ""
    credential_names: tuple[str, ...] = ()
    tls_certificate_count: int = 0
    tls_certificates: tuple[tuple[str, str], ...] = ()
    """(serverCertificate, privateKey) of each ``tlsCertificates`` entry, in order."""
    subject_alt_names: tuple[str, ...] = ()
    verify_certificate_spki: tuple[str, ...] = ()
    verify_certificate_hash: tuple[str, ...] = ()
    min_protocol_version: str = ""
    max_protocol_version: str = ""
    cipher_suites: tuple[str, ...] = ()
    https_redirect: bool = False


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    port: ServerPort
    hosts: tuple[str, ...]
    bind: str = ""
    tls: ServerTLS | None = None
    name: str = ""
    default_endpoint: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    meta: Meta
    selector: Labels
    servers: tuple[Server, ...]


# --- VirtualService -----------------------------------------------------------------------------


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    host: str
    subset: str = ""
    port: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDestination:
    destination: Destination
    weight: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class L4Match:
    destination_subnets: tuple[str, ...] = ()
    port: int = 0
    source_labels: Labels = ()
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class TLSMatch:
    sni_hosts: tuple[str, ...] = ()
    destination_subnets: tuple[str, ...] = ()
    port: int = 0
    source_labels: Labels = ()
    gateways: tuple[str, ...] = ()
    source_namespace: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class TCPRoute:
    match: tuple[L4Match, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class TLSRoute:
    match: tuple[TLSMatch, ...] = ()
    route: tuple[RouteDestination, ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class VirtualService:
    meta: Meta
    hosts: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    tcp: tuple[TCPRoute, ...] = ()
    tls: tuple[TLSRoute, ...] = ()
    http: tuple[HTTPRoute, ...] = ()
    export_to: tuple[str, ...] = ()

    def l4_destinations(self) -> tuple[RouteDestination, ...]:
        """The destinations of every tcp route, then of every tls route."""
        return (*(d for r in self.tcp for d in r.route), *(d for r in self.tls for d in r.route))


# --- DestinationRule ----------------------------------------------------------------------------


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class TCPKeepalive:
    probes: int = 0
    time_ms: int | None = None
    interval_ms: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class TCPSettings:
    max_connections: int = 0
    connect_timeout_ms: int | None = None
    tcp_keepalive: TCPKeepalive | None = None
    max_connection_duration_ms: int | None = None
    idle_timeout_ms: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class HTTP2Keepalive:
    """connectionPool.http.http2KeepAlive: PING frames on h2 upstream connections (both required)."""

    interval_ms: int | None = None
    timeout_ms: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPSettings:
    """connectionPool.http: circuit-breaker thresholds and HttpProtocolOptions on the cluster (clusters.py)."""

    http1_max_pending_requests: int = 0
    http2_max_requests: int = 0
    max_requests_per_connection: int = 0
    max_retries: int = 0
    idle_timeout_ms: int | None = None
    h2_upgrade_policy: str = ""
    use_client_protocol: bool = False
    max_concurrent_streams: int = 0
    http2_keepalive: HTTP2Keepalive | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionPool:
    tcp: TCPSettings | None = None
    http: HTTPSettings | None = None

    @property
    def has_http(self) -> bool:
        return self.http is not None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ConsistentHash:
    use_source_ip: bool = False
    other_key: str = ""
    """"httpHeaderName" / "httpCookie" / "httpQueryParameterName" when one of those is used instead."""
    minimum_ring_size: int = 0
    http_cookie_name: str | None = None
    """The httpCookie's name when httpCookie is the hash key ("" when it has none)."""
    ring_hash_minimum_ring_size: int | None = None
    maglev_table_size: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityLbSetting:
    enabled: bool | None = None
    distribute: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    """(from, ((to, weight), ...)) entries."""
    failover: tuple[tuple[str, str], ...] = ()
    failover_priority: tuple[str, ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Warmup:
    duration_ms: int | None = None
    minimum_percent: float | None = None
    aggression: float | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class LoadBalancer:
    simple: str = ""
    consistent_hash: ConsistentHash | None = None
    locality: LocalityLbSetting | None = None
    warmup_duration_ms: int | None = None
    warmup: Warmup | None = None

    @property
    def has_locality_setting(self) -> bool:
        return self.locality is not None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class OutlierDetection:
    consecutive_5xx_errors: int | None = None
    consecutive_gateway_errors: int | None = None
    consecutive_local_origin_failures: int | None = None
    split_external_local_origin_errors: bool = False
    interval_ms: int | None = None
    base_ejection_time_ms: int | None = None
    max_ejection_percent: int = 0
    min_health_percent: int = 0
    http_error_codes: tuple[int, ...] = ()
    """outlierDetectionHttpErrorCodes: the statuses counted as errors (HttpProtocolOptions.outlier_detection)."""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTLS:
    mode: str = "DISABLE"
    client_certificate: str = ""
    private_key: str = ""
    ca_certificates: str = ""
    ca_crl: str = ""
    credential_name: str = ""
    subject_alt_names: tuple[str, ...] = ()
    sni: str = ""
    insecure_skip_verify: bool | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class PortTrafficPolicy:
    port: int
    connection_pool: ConnectionPool | None = None
    load_balancer: LoadBalancer | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLS | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudget:
    """trafficPolicy.retryBudget: concurrent retries as a share of active and pending requests."""

    percent: float | None = None
    min_retry_concurrency: int = 0
    budget_interval_ms: int | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class TrafficPolicy:
    connection_pool: ConnectionPool | None = None
    load_balancer: LoadBalancer | None = None
    outlier_detection: OutlierDetection | None = None
    tls: ClientTLS | None = None
    port_level_settings: tuple[PortTrafficPolicy, ...] = ()
    proxy_protocol_version: str = ""
    has_tunnel: bool = False
    tunnel_protocol: str = ""
    tunnel_target_host: str = ""
    tunnel_target_port: int = 0
    retry_budget: RetryBudget | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Subset:
    name: str
    labels: Labels = ()
    traffic_policy: TrafficPolicy | None = None


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class DestinationRule:
    meta: Meta
    host: str
    traffic_policy: TrafficPolicy | None = None
    subsets: tuple[Subset, ...] = ()
    export_to: tuple[str, ...] = ()
    workload_selector: Labels | None = None


# --- ServiceEntry / WorkloadEntry ----------------------------------------------------------------


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadSpec:
    """The WorkloadEntry spec; also the shape of a ServiceEntry's inline endpoints."""

    address: str = ""
    ports: tuple[tuple[str, int], ...] = ()
    labels: Labels = ()
    network: str = ""
    locality: str = ""
    weight: int = 0
    service_account: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntryPort:
    number: int
    protocol: str = ""
    name: str = ""
    target_port: int = 0


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceEntry:
    meta: Meta
    hosts: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ports: tuple[ServiceEntryPort, ...] = ()
    location: str = "MESH_EXTERNAL"
    resolution: str = "NONE"
    endpoints: tuple[WorkloadSpec, ...] = ()
    workload_selector: Labels | None = None
    export_to: tuple[str, ...] = ()
    subject_alt_names: tuple[str, ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadEntry:
    meta: Meta
    spec: WorkloadSpec


# --- Kubernetes ---------------------------------------------------------------------------------


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class ServicePort:
    port: int
    name: str = ""
    protocol: str = "TCP"
    target_port: int | str = 0
    """The container port number, or a named container port; 0 means the same as ``port``."""
    app_protocol: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    meta: Meta
    ports: tuple[ServicePort, ...] = ()
    selector: Labels | None = None
    cluster_ip: str = ""
    type: str = "ClusterIP"
    external_name: str = ""


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    name: str
    image: str = ""
    args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    ports: tuple[tuple[str, int], ...] = ()
    """(name, containerPort) pairs; name may be empty."""
    env: tuple[tuple[str, str], ...] = ()


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment:
    meta: Meta
    replicas: int = 1
    selector: Labels = ()
    template_labels: Labels = ()
    containers: tuple[Container, ...] = field(default=())


@pickled_by_slots
@dataclass(frozen=True, slots=True, kw_only=True)
class Secret:
    """A Kubernetes Secret: ``data`` (base64 decoded) merged with ``stringData``, as the API server stores it.

    The values are key material: they are left out of ``repr`` (and so of ``str``, logs and tracebacks).
    """

    meta: Meta
    type: str = "Opaque"
    data: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    """(key, value) pairs sorted by key."""

    def value(self, key: str) -> bytes:
        """The value of ``key``; empty when absent (istiod treats an empty value as a missing one)."""
        for k, v in self.data:
            if k == key:
                return v
        return b""

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.data)


# Gateway API kinds are forward references: their module builds on Meta from this one.
Resource: TypeAlias = Union[
    Gateway,
    VirtualService,
    DestinationRule,
    ServiceEntry,
    WorkloadEntry,
    Service,
    Deployment,
    Secret,
    "GatewayClass",
    "KubeGateway",
    "L4Route",
    "ReferenceGrant",
]
