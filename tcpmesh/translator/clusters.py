"""Services × ports × DestinationRule subsets → Envoy Clusters (pilot cluster.go / cluster_builder.go /
cluster_traffic_policy.go)."""

from __future__ import annotations

from typing import Any

from tcpmesh.model.resources import DestinationRule, OutlierDetection, TCPSettings
from tcpmesh.translator.endpoints import build_load_assignment
from tcpmesh.translator.index import Index
from tcpmesh.translator.names import BLACKHOLE_CLUSTER, cluster_name
from tcpmesh.translator.policy import EffectivePolicy, effective_policy
from tcpmesh.translator.protos import (
    base_pb2,
    circuit_breaker_pb2,
    cluster_pb2,
    config_source_pb2,
    duration,
    outlier_detection_pb2,
    percent_pb2,
    struct,
    u32,
)
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.services import MeshService, SvcPort

__all__ = ["ClusterPlan", "blackhole_cluster", "build_cluster", "cluster_plans"]

_MAX = 4294967295
_C = cluster_pb2.Cluster
_LB = {
    "": _C.LEAST_REQUEST,
    "UNSPECIFIED": _C.LEAST_REQUEST,
    "LEAST_REQUEST": _C.LEAST_REQUEST,
    "LEAST_CONN": _C.LEAST_REQUEST,
    "ROUND_ROBIN": _C.ROUND_ROBIN,
    "RANDOM": _C.RANDOM,
}


def _eds_config(name: str) -> Any:
    return _C.EdsClusterConfig(
        service_name=name,
        eds_config=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            initial_fetch_timeout=duration(0),
            resource_api_version=config_source_pb2.V3,
        ),
    )


class ClusterPlan:
    """One cluster to build: which service port and subset, under which DestinationRule."""

    __slots__ = ("name", "port", "rule", "service", "subset", "subset_labels")

    def __init__(
        self,
        service: MeshService,
        port: SvcPort,
        subset: str,
        subset_labels: tuple[tuple[str, str], ...],
        rule: DestinationRule | None,
    ) -> None:
        self.service = service
        self.port = port
        self.subset = subset
        self.subset_labels = subset_labels
        self.rule = rule
        self.name = cluster_name(port.number, subset, service.hostname)


def cluster_plans(index: Index, proxy: Proxy) -> list[ClusterPlan]:
    """One plan per (visible service, non-UDP port), plus one per DestinationRule subset of it."""
    plans: list[ClusterPlan] = []
    for svc in index.services:
        rule = index.destination_rule(svc.hostname, proxy.namespace)
        for port in svc.ports:
            if port.protocol == "UDP":
                continue
            plans.append(ClusterPlan(svc, port, "", (), rule))
            if rule is not None:
                plans.extend(ClusterPlan(svc, port, s.name, s.labels, rule) for s in rule.subsets)
    return plans


def _discovery_type(svc: MeshService, proxy: Proxy) -> int:
    if svc.kind == "ServiceEntry":
        if svc.resolution == "DNS":
            return int(_C.STRICT_DNS)
        if svc.resolution == "DNS_ROUND_ROBIN":
            return int(_C.LOGICAL_DNS)
        if svc.resolution == "NONE" and proxy.role == "sidecar":
            return int(_C.ORIGINAL_DST)
    return int(_C.EDS)


def _metadata(plan: ClusterPlan) -> Any:
    svc = plan.service
    istio: dict[str, Any] = {"services": [{"host": svc.hostname, "name": svc.name, "namespace": svc.namespace}]}
    if plan.rule is not None:
        istio["config"] = (
            f"/apis/networking.istio.io/v1/namespaces/{plan.rule.meta.namespace}/destination-rule/{plan.rule.meta.name}"
        )
    if plan.subset:
        istio["subset"] = plan.subset
    if svc.mesh_external and svc.kind == "ServiceEntry":
        istio["external"] = True
    return base_pb2.Metadata(filter_metadata={"istio": struct(istio)})


def build_cluster(index: Index, plan: ClusterPlan, proxy: Proxy) -> Any:
    policy = effective_policy(plan.rule, plan.port.number, plan.subset)
    kind = _discovery_type(plan.service, proxy)
    cluster = _C(
        name=plan.name,
        type=kind,
        connect_timeout=duration(index.options.connect_timeout_ms),
        lb_policy=_C.LEAST_REQUEST,
        circuit_breakers=circuit_breaker_pb2.CircuitBreakers(
            thresholds=[
                circuit_breaker_pb2.CircuitBreakers.Thresholds(
                    max_connections=u32(_MAX),
                    max_pending_requests=u32(_MAX),
                    max_requests=u32(_MAX),
                    max_retries=u32(_MAX),
                )
            ]
        ),
        common_lb_config=_C.CommonLbConfig(),
        alt_stat_name=plan.name + ";",
        metadata=_metadata(plan),
    )
    if kind == _C.EDS:
        cluster.eds_cluster_config.CopyFrom(_eds_config(plan.name))
    elif kind == _C.ORIGINAL_DST:
        cluster.lb_policy = _C.CLUSTER_PROVIDED
    else:
        cluster.dns_lookup_family = _C.V4_ONLY
        cluster.dns_refresh_rate.CopyFrom(duration(index.options.dns_refresh_rate_ms))
        cluster.respect_dns_ttl = True
        cluster.load_assignment.CopyFrom(
            build_load_assignment(index, plan.service, plan.port, plan.subset_labels, plan.name)
        )
    _apply_policy(cluster, policy)
    return cluster


def _apply_policy(cluster: Any, policy: EffectivePolicy) -> None:
    pool = policy.connection_pool
    if pool is not None and pool.tcp is not None:
        _apply_tcp(cluster, pool.tcp)
    lb = policy.load_balancer
    if lb is not None:
        if lb.simple == "PASSTHROUGH":
            cluster.type = _C.ORIGINAL_DST
            cluster.lb_policy = _C.CLUSTER_PROVIDED
            cluster.ClearField("eds_cluster_config")
            cluster.ClearField("load_assignment")
        elif lb.consistent_hash is not None:
            ch = lb.consistent_hash
            if ch.maglev_table_size is not None:
                cluster.lb_policy = _C.MAGLEV
                if ch.maglev_table_size:
                    cluster.maglev_lb_config.table_size.value = ch.maglev_table_size
            else:
                cluster.lb_policy = _C.RING_HASH
                size = ch.ring_hash_minimum_ring_size or ch.minimum_ring_size or 1024
                cluster.ring_hash_lb_config.minimum_ring_size.value = size
        else:
            cluster.lb_policy = _LB.get(lb.simple, _C.LEAST_REQUEST)
    if policy.outlier_detection is not None:
        _apply_outlier(cluster, policy.outlier_detection)


def _apply_tcp(cluster: Any, tcp: TCPSettings) -> None:
    if tcp.max_connections > 0:
        cluster.circuit_breakers.thresholds[0].max_connections.value = tcp.max_connections
    if tcp.connect_timeout_ms is not None:
        cluster.connect_timeout.CopyFrom(duration(tcp.connect_timeout_ms))
    if tcp.tcp_keepalive is not None:
        ka = cluster.upstream_connection_options.tcp_keepalive
        ka.SetInParent()
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


def blackhole_cluster(index: Index) -> Any:
    """istiod's BlackHoleCluster: STATIC with no endpoints, so connections routed to it fail fast."""
    return _C(name=BLACKHOLE_CLUSTER, type=_C.STATIC, connect_timeout=duration(index.options.connect_timeout_ms))
