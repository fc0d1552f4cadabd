"""DestinationRule admission rules: ``ValidateDestinationRule``, ``validateTrafficPolicy``,
``validateConnectionPool``, ``validateOutlierDetection``, ``validateLoadBalancer``, ``validatePortTrafficPolicies``,
``validateSubset``, ``validateTunnelSettings`` and ``agent.ValidateTLS`` (istio/istio ``pkg/config/validation``).

Durations (>= 1ms, ms precision) and enum values are checked by the parser."""

from __future__ import annotations

import math

from tcpmesh.model.hostnames import (
    go_quote,
    validate_fqdn,
    validate_ip_address,
    validate_port,
    validate_wildcard_domain,
)
from tcpmesh.model.problems import Problem
from tcpmesh.model.resources import (
    ClientTLS,
    ConnectionPool,
    DestinationRule,
    LoadBalancer,
    LocalityLbSetting,
    OutlierDetection,
    TrafficPolicy,
)
from tcpmesh.model.validate_common import (
    Reporter,
    validate_export_to,
    validate_labels,
    validate_workload_selector,
)
from tcpmesh.model.validate_routes import validate_subset_name

__all__ = ["validate_destination_rule"]

_CONFIGMAP_PREFIX = "configmap://"
_MAGLEV_MAX = 5000011


def validate_destination_rule(dr: DestinationRule) -> list[Problem]:
    r = Reporter(dr.meta)
    r.err("spec.host" if r.has("spec.host") else "spec", validate_wildcard_domain(dr.host))
    _traffic_policy(r, "spec.trafficPolicy", dr.traffic_policy)
    names: set[str] = set()
    for i, subset in enumerate(dr.subsets):
        path = f"spec.subsets[{i}]"
        if subset.name in names:
            r.err(f"{path}.name", f"duplicate subset names: {subset.name}")
        names.add(subset.name)
        r.err(f"{path}.name" if r.has(f"{path}.name") else path, validate_subset_name(subset.name))
        validate_labels(r, f"{path}.labels", subset.labels)
        _traffic_policy(r, f"{path}.trafficPolicy", subset.traffic_policy)
    validate_export_to(r, "spec.exportTo", dr.export_to, dr_selector=dr.workload_selector is not None)
    validate_workload_selector(
        r, "spec.workloadSelector", dr.workload_selector, empty_warning="workload selector specified without labels"
    )
    return r.problems


def _traffic_policy(r: Reporter, path: str, policy: TrafficPolicy | None) -> None:
    """validateTrafficPolicy."""
    if policy is None:
        return
    if (
        policy.outlier_detection is None
        and policy.connection_pool is None
        and policy.load_balancer is None
        and policy.tls is None
        and not policy.port_level_settings
        and not policy.has_tunnel
        and not policy.proxy_protocol_version
        and policy.retry_budget is None
    ):
        r.err(path, "traffic policy must have at least one field")
        return
    if policy.has_tunnel and policy.proxy_protocol_version:
        # The tunnel would carry the PROXY header to the wrong peer.
        r.err(path, "tunnel and proxyProtocol must not be set together")
        return
    _outlier(r, f"{path}.outlierDetection", policy.outlier_detection)
    _connection_pool(r, f"{path}.connectionPool", policy.connection_pool)
    _load_balancer(r, f"{path}.loadBalancer", policy.load_balancer, policy.outlier_detection is not None)
    _tls(r, f"{path}.tls", policy.tls)
    for k, port_policy in enumerate(policy.port_level_settings):
        at = f"{path}.portLevelSettings[{k}]"
        if not r.has(f"{at}.port"):
            r.err(at, "portTrafficPolicy must have valid port")
        if (
            port_policy.outlier_detection is None
            and port_policy.connection_pool is None
            and port_policy.load_balancer is None
            and port_policy.tls is None
        ):
            r.err(at, "port traffic policy must have at least one field")
        else:
            _outlier(r, f"{at}.outlierDetection", port_policy.outlier_detection)
            _connection_pool(r, f"{at}.connectionPool", port_policy.connection_pool)
            _load_balancer(
                r, f"{at}.loadBalancer", port_policy.load_balancer, port_policy.outlier_detection is not None
            )
            _tls(r, f"{at}.tls", port_policy.tls)
    if policy.has_tunnel:
        _tunnel(r, f"{path}.tunnel", policy)


def _tunnel(r: Reporter, path: str, policy: TrafficPolicy) -> None:
    """validateTunnelSettings."""
    if policy.tunnel_protocol not in ("", "CONNECT", "POST"):
        r.err(f"{path}.protocol", 'tunnel protocol must be "CONNECT" or "POST"')
    fqdn_err = validate_fqdn(policy.tunnel_target_host)
    ip_err = validate_ip_address(policy.tunnel_target_host)
    if fqdn_err and ip_err:
        at = f"{path}.targetHost" if r.has(f"{path}.targetHost") else path
        r.err(at, f"tunnel target host must be valid FQDN or IP address: {fqdn_err}; {ip_err}")
    port_err = validate_port(policy.tunnel_target_port)
    if port_err:
        at = f"{path}.targetPort" if r.has(f"{path}.targetPort") else path
        r.err(at, f"tunnel target port is invalid: {port_err}")


def _percent(value: int) -> str | None:
    """ValidatePercent."""
    return None if 0 <= value <= 100 else f"percentage {value} is not in range 0..100"


def _outlier(r: Reporter, path: str, od: OutlierDetection | None) -> None:
    """validateOutlierDetection (durations and the deprecated consecutiveErrors are handled by the parser)."""
    if od is None:
        return
    if not od.split_external_local_origin_errors and (od.consecutive_local_origin_failures or 0) > 0:
        # Local-origin failures are only counted separately when the split is on.
        r.err(
            f"{path}.consecutiveLocalOriginFailures",
            "outlier detection consecutive local origin failures is specified, but split external local origin "
            "errors is set to false",
        )
    r.err(f"{path}.maxEjectionPercent", _percent(od.max_ejection_percent))
    r.err(f"{path}.minHealthPercent", _percent(od.min_health_percent))


def _connection_pool(r: Reporter, path: str, pool: ConnectionPool | None) -> None:
    """validateConnectionPool (durations are checked by the parser)."""
    if pool is None:
        return
    if pool.tcp is None and pool.http is None:
        r.err(path, "connection pool must have at least one field")
        return
    if pool.http is not None:
        http, at = pool.http, f"{path}.http"
        for value, field, what in (
            (http.http1_max_pending_requests, "http1MaxPendingRequests", "http1 max pending requests"),
            (http.http2_max_requests, "http2MaxRequests", "http2 max requests"),
            (http.max_requests_per_connection, "maxRequestsPerConnection", "max requests per connection"),
            (http.max_retries, "maxRetries", "max retries"),
        ):
            if value < 0:
                r.err(f"{at}.{field}", f"{what} must be non-negative")
        if http.h2_upgrade_policy == "UPGRADE" and http.use_client_protocol:
            r.err(f"{at}.useClientProtocol", "use client protocol must not be true when H2UpgradePolicy is UPGRADE")
        if http.max_concurrent_streams < 0:
            r.err(f"{at}.maxConcurrentStreams", "max concurrent streams must be non-negative")
        if (keepalive := http.http2_keepalive) is not None:
            # An invalid duration was reported by the parser; only a missing one is "required".
            ka_at = f"{at}.http2KeepAlive"
            if keepalive.interval_ms is None and not r.has(f"{ka_at}.interval"):
                r.err(ka_at, "http2 keepalive interval is required")
            if keepalive.timeout_ms is None and not r.has(f"{ka_at}.timeout"):
                r.err(ka_at, "http2 keepalive timeout is required")
    if pool.tcp is not None and pool.tcp.max_connections < 0:
        r.err(f"{path}.tcp.maxConnections", "max connections must be non-negative")


def _is_prime(x: int) -> bool:
    """isPrime, copied from Envoy's implementation so istiod and Envoy agree (0 is not prime, 1..3 are)."""
    if x != 0 and x < 4:
        return True
    if x & 1 == 0:
        return False
    return all(x % factor for factor in range(3, math.isqrt(x) + 1, 2))


def _load_balancer(r: Reporter, path: str, lb: LoadBalancer | None, has_outlier: bool) -> None:
    """validateLoadBalancer: consistent hash, agent.ValidateLocalityLbSetting and warmup."""
    if lb is None:
        return
    if lb.locality is not None:
        _locality(r, f"{path}.localityLbSetting", lb.locality, has_outlier)
    if lb.warmup is not None:
        warm, at = lb.warmup, f"{path}.warmup"
        if warm.duration_ms is None:
            r.err(at, "duration is required")
        if warm.minimum_percent is not None and warm.minimum_percent > 100:
            r.err(f"{at}.minimumPercent", "minimumPercent value should be less than or equal to 100")
        if warm.aggression is not None and warm.aggression < 1:
            r.err(f"{at}.aggression", "aggression should be greater than or equal to 1")
    if lb.consistent_hash is None:
        return
    ch = lb.consistent_hash
    at = f"{path}.consistentHash"
    if ch.http_cookie_name == "":
        r.err(f"{at}.httpCookie", "name required for HttpCookie")
    if ch.minimum_ring_size != 0:
        r.warn(
            f"{at}.minimumRingSize",
            "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead",
        )
        if ch.ring_hash_minimum_ring_size is not None or ch.maglev_table_size is not None:
            r.err(at, "only one of MinimumRingSize or Maglev/Ringhash can be specified")
    if ch.maglev_table_size is not None:
        table = ch.maglev_table_size
        table_path = f"{at}.maglev.tableSize" if r.has(f"{at}.maglev.tableSize") else f"{at}.maglev"
        if table == 0:
            r.err(table_path, "tableSize must be set for maglev")
        if table >= _MAGLEV_MAX:
            r.err(table_path, f"tableSize must be less than {_MAGLEV_MAX} for maglev")
        if table < 0 or not _is_prime(table):
            r.err(table_path, "tableSize must be a prime number for maglev")


def _locality(r: Reporter, path: str, lb: LocalityLbSetting, has_outlier: bool) -> None:
    """agent.ValidateLocalityLbSetting, which stops at the first of several of its errors."""
    if lb.distribute and lb.failover:
        r.err(path, "can not simultaneously specify 'distribute' and 'failover'")
        return
    if lb.failover:
        topology = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone")
        for label in lb.failover_priority:
            if label in topology:
                r.err(
                    f"{path}.failoverPriority",
                    f"can not simultaneously set 'failover' and topology label '{label}' in 'failover_priority'",
                )
                return
    for i, (_source, targets) in enumerate(lb.distribute):
        at = f"{path}.distribute[{i}]"
        if any(weight <= 0 or weight > 100 for _, weight in targets):
            r.err(f"{at}.to", "locality weight must be in range [1, 100]")
            return
        total = sum(weight for _, weight in targets)
        if total != 100:
            r.err(f"{at}.to", f"total locality weight {total} != 100")
            return
        r.err(f"{at}.to", _localities([loc for loc, _ in targets]))
    r.err(path, _localities([source for source, _ in lb.distribute]))
    if (lb.failover or lb.failover_priority) and not has_outlier:
        r.warn(path, "outlier detection policy must be provided for failover")
    for i, (source, target) in enumerate(lb.failover):
        at = f"{path}.failover[{i}]"
        if source == target:
            r.err(at, "locality lb failover settings must specify different regions")
        if "/" in source or "/" in target:
            r.err(at, "locality lb failover only specify region")
        if "*" in source or "*" in target:
            r.err(at, "locality lb failover region should not contain '*' wildcard")


def _localities(localities: list[str]) -> str | None:
    """validateLocalities: at most one trailing '*', no empty parts, no locality covered by an earlier one."""
    seen: list[tuple[str, ...]] = []
    for locality in localities:
        stars = locality.count("*")
        if stars and (stars > 1 or not locality.endswith("*")):
            return f"locality {locality} wildcard '*' number can not exceed 1 and must be in the end"
        parts = tuple(locality.split("/", 2))
        if any(p == "" for p in parts):
            return f"locality {locality} must not contain empty region/zone/subzone info"
        # A shorter locality covers every longer one below it; a trailing '*' part covers its level.
        key = parts[:-1] if parts[-1] == "*" else parts
        for earlier in seen:
            if key[: len(earlier)] == earlier or earlier[: len(key)] == key:
                return f"locality {locality} overlap with previous specified ones"
        seen.append(key)
    return None


def _tls(r: Reporter, path: str, tls: ClientTLS | None) -> None:
    """agent.ValidateTLS (client side)."""
    if tls is None:
        return
    namespace = r.meta.namespace
    if tls.credential_name.startswith(_CONFIGMAP_PREFIX):
        # A configmap:// CA bundle can only come from the rule's own namespace.
        ref = tls.credential_name.removeprefix(_CONFIGMAP_PREFIX)
        ns = ref.split("/", 1)[0] if "/" in ref else namespace
        if ns != namespace:
            r.err(
                f"{path}.credentialName",
                "invalid configmap:// credentialName: namespace must match the configuration namespace "
                f"{go_quote(namespace)}",
            )
    if tls.insecure_skip_verify:
        if tls.mode == "SIMPLE" and (tls.ca_certificates or tls.credential_name or tls.subject_alt_names):
            r.err(
                f"{path}.insecureSkipVerify",
                "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set "
                "true",
            )
        if tls.mode == "MUTUAL" and (tls.ca_certificates or tls.subject_alt_names):
            r.err(
                f"{path}.insecureSkipVerify",
                "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
            )
    if tls.mode in ("SIMPLE", "MUTUAL") and tls.credential_name:
        if tls.client_certificate or tls.ca_certificates or tls.private_key or tls.ca_crl:
            r.err(
                f"{path}.credentialName",
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            )
        return  # the credential supplies the certificates
    if tls.mode == "MUTUAL":
        if not tls.client_certificate:
            r.err(path, "client certificate required for mutual tls")
        if not tls.private_key:
            r.err(path, "private key required for mutual tls")
