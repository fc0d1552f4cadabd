"""A DestinationRule's traffic policy applied to a built cluster (pilot cluster_traffic_policy.go)."""

from __future__ import annotations

from typing import Any

from tcpmesh.model.resources import ClientTLS, ConsistentHash, OutlierDetection, TCPSettings
from tcpmesh.translator.cluster_http import apply_connection_pool, apply_outlier_error_codes, apply_retry_budget
from tcpmesh.translator.policy import EffectivePolicy
from tcpmesh.translator.protos import cluster_pb2, duration, outlier_detection_pb2, percent_pb2, u32
from tcpmesh.translator.services import MeshService
from tcpmesh.translator.tls import transport_socket, upstream_tls_context

__all__ = ["apply_policy", "apply_tls"]

_C = cluster_pb2.Cluster
_LB = {
    "": _C.LEAST_REQUEST,
    "UNSPECIFIED": _C.LEAST_REQUEST,
    "LEAST_REQUEST": _C.LEAST_REQUEST,
    "LEAST_CONN": _C.LEAST_REQUEST,
    "ROUND_ROBIN": _C.ROUND_ROBIN,
    "RANDOM": _C.RANDOM,
}


def apply_tls(cluster: Any, tls: ClientTLS, service: MeshService, http_options: Any) -> None:
    """applyUpstreamTLSSettings for DISABLE / SIMPLE / MUTUAL; auto SNI and SAN validation when ``sni`` is unset."""
    context = upstream_tls_context(tls, service.subject_alt_names if service.kind == "ServiceEntry" else ())
    if context is None:
        return
    cluster.transport_socket.CopyFrom(transport_socket(context))
    if not tls.sni:
        # setAutoSniAndAutoSanValidation: HTTP-only knobs, but istiod sets them on TCP clusters too.
        upstream = http_options.upstream_http_protocol_options
        upstream.auto_sni = True
        if not tls.subject_alt_names and not tls.insecure_skip_verify:
            upstream.auto_san_validation = True


def apply_policy(cluster: Any, policy: EffectivePolicy, http_options: Any) -> None:
    if policy.retry_budget is not None:
        apply_retry_budget(cluster, policy.retry_budget)
    pool = policy.connection_pool
    if pool is not None:
        if pool.tcp is not None:
            _apply_tcp(cluster, pool.tcp)
        apply_connection_pool(cluster, pool, http_options)
    lb = policy.load_balancer
    if lb is not None:
        if lb.simple == "PASSTHROUGH":
            cluster.type = _C.ORIGINAL_DST
            cluster.lb_policy = _C.CLUSTER_PROVIDED
            cluster.ClearField("eds_cluster_config")
            cluster.ClearField("load_assignment")
        elif lb.consistent_hash is not None:
            _apply_consistent_hash(cluster, lb.consistent_hash)
        else:
            cluster.lb_policy = _LB.get(lb.simple, _C.LEAST_REQUEST)
    if policy.outlier_detection is not None:
        _apply_outlier(cluster, policy.outlier_detection)
        if policy.outlier_detection.http_error_codes:
            apply_outlier_error_codes(http_options, policy.outlier_detection.http_error_codes)


def _apply_consistent_hash(cluster: Any, ch: ConsistentHash) -> None:
    """ApplyRingHashLoadBalancer: maglev / ringHash set their size only when non-zero; otherwise RING_HASH with
    the deprecated minimumRingSize or 1024."""
    if ch.maglev_table_size is not None:
        cluster.lb_policy = _C.MAGLEV
        if ch.maglev_table_size:
            cluster.maglev_lb_config.table_size.value = ch.maglev_table_size
    elif ch.ring_hash_minimum_ring_size is not None:
        cluster.lb_policy = _C.RING_HASH
        if ch.ring_hash_minimum_ring_size:
            cluster.ring_hash_lb_config.minimum_ring_size.value = ch.ring_hash_minimum_ring_size
    else:
        cluster.lb_policy = _C.RING_HASH
        cluster.ring_hash_lb_config.minimum_ring_size.value = ch.minimum_ring_size or 1024


def _apply_tcp(cluster: Any, tcp: TCPSettings) -> None:
    """applyConnectionPool / applyTCPKeepalive for the tcp block's connection settings (maxConnections,
    idleTimeout and maxConnectionDuration are cluster_http's: they land in thresholds and HttpProtocolOptions).

    Keepalive time and interval are whole seconds, as istiod sends them, but never 0: istiod would truncate a
    sub-second duration to 0, which the kernel rejects (EINVAL).
    """
    if tcp.connect_timeout_ms is not None:
        cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout_ms))
    if tcp.tcp_keepalive is not None:
        ka = cluster.upstream_connection_options.tcp_keepalive
        ka.SetInParent()  # an empty tcp_keepalive turns SO_KEEPALIVE on with the OS defaults
        if tcp.tcp_keepalive.probes:
            ka.keepalive_probes.value = tcp.tcp_keepalive.probes
        if tcp.tcp_keepalive.time_ms:
            ka.keepalive_time.value = max(tcp.tcp_keepalive.time_ms // 1000, 1)
        if tcp.tcp_keepalive.interval_ms:
            ka.keepalive_interval.value = max(tcp.tcp_keepalive.interval_ms // 1000, 1)


def _apply_outlier(cluster: Any, od: OutlierDetection) -> None:
    """cluster_traffic_policy.go applyOutlierDetection; panic threshold follows minHealthPercent (0 = off)."""
    out = outlier_detection_pb2.OutlierDetection(enforcing_success_rate=u32(0))
    if od.consecutive_5xx_errors is not None:
        out.consecutive_5xx.value = od.consecutive_5xx_errors
        out.enforcing_consecutive_5xx.value = 100 if od.consecutive_5xx_errors > 0 else 0
    if od.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.value = od.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = 100 if od.consecutive_gateway_errors > 0 else 0
    if od.interval_ms is not None:
        out.interval.CopyFrom(duration(od.interval_ms))
    if od.base_ejection_time_ms is not None:
        out.base_ejection_time.CopyFrom(duration(od.base_ejection_time_ms))
    if od.max_ejection_percent > 0:
        out.max_ejection_percent.value = od.max_ejection_percent
    if od.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        out.enforcing_local_origin_success_rate.value = 0
        if od.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.value = od.consecutive_local_origin_failures
            out.enforcing_consecutive_local_origin_failure.value = 100
    cluster.outlier_detection.CopyFrom(out)
    cluster.common_lb_config.healthy_panic_threshold.CopyFrom(percent_pb2.Percent(value=float(od.min_health_percent)))
