"""Services × ports × DestinationRule subsets → Envoy Clusters (pilot cluster.go / cluster_builder.go /
cluster_traffic_policy.go)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tcpmesh.model.resources import ClientTLS, DestinationRule
from tcpmesh.translator.cluster_http import (
    H2_PORT_PROTOCOLS,
    finish_http_options,
    set_h2_options,
    should_h2_upgrade,
)
from tcpmesh.translator.cluster_policy import apply_policy, apply_tls
from tcpmesh.translator.encoded import Encoded, as_message
from tcpmesh.translator.endpoints import build_load_assignment
from tcpmesh.translator.index import Index
from tcpmesh.translator.names import BLACKHOLE_CLUSTER, cluster_name
from tcpmesh.translator.options import TranslateOptions
from tcpmesh.translator.policy import EffectivePolicy, effective_policy
from tcpmesh.translator.protos import (
    base_pb2,
    circuit_breaker_pb2,
    cluster_pb2,
    config_source_pb2,
    duration,
    http_protocol_options_pb2,
    u32,
)
from tcpmesh.translator.proxy import Proxy
from tcpmesh.translator.services import MeshService, SvcPort
from tcpmesh.translator.wire import (
    bool_value,
    entry_prefix,
    key,
    list_value,
    map_key_order,
    number,
    split,
    string_entry,
    string_value,
    struct_entries,
    struct_entry,
    struct_value,
    submessage,
    text,
)

__all__ = ["ClusterPlan", "ServiceClusters", "blackhole_cluster", "cluster_plans"]

_MAX = 4294967295
_C = cluster_pb2.Cluster
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
_DNS_RESOLUTIONS = ("DNS", "DNS_ROUND_ROBIN")
_NAME = number(_C, "name")
_ALT_STAT_NAME = number(_C, "alt_stat_name")
_METADATA = number(_C, "metadata")
_EDS_CLUSTER_CONFIG = number(_C, "eds_cluster_config")
_SERVICE_NAME = number(_C.EdsClusterConfig, "service_name")
_OWN_FIELDS = (_NAME, _EDS_CLUSTER_CONFIG, _METADATA, _ALT_STAT_NAME)
"""The fields each cluster sets itself, ascending (ServiceClusters cuts its template there)."""
_NAME_KEY, _EDS_CLUSTER_CONFIG_KEY, _METADATA_KEY, _ALT_STAT_NAME_KEY = (key(n) for n in _OWN_FIELDS)
_SERVICE_NAME_KEY = key(_SERVICE_NAME)
_ISTIO_KEY = text(key(1), "istio")  # the filter_metadata map entry's key field
_VALUE_KEY = key(2)  # … and its value field
_SERVICE_ENTRIES = tuple(
    (entry_prefix(name), field)
    for name, field in sorted((("host", "hostname"), ("name", "name"), ("namespace", "namespace")),
                              key=lambda e: map_key_order(e[0]))
)  # fmt: skip
"""The istio metadata's service Struct: (entry, MeshService field), in deterministic order."""
_SUBSET = entry_prefix("subset")
_NO_POLICY = EffectivePolicy()
_FILTER_METADATA_KEY = key(number(base_pb2.Metadata, "filter_metadata"))


def _base_prototype(options: TranslateOptions) -> Any:
    """What every service cluster starts from, before its name, type, metadata and policy."""
    return _C(
        connect_timeout=duration(options.connect_timeout_ms),
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
    )


def _eds_prototype(options: TranslateOptions) -> Any:
    """The base prototype as an EDS cluster fed over ADS (``service_name`` left to set)."""
    out = _base_prototype(options)
    out.type = _C.EDS
    out.eds_cluster_config.CopyFrom(
        _C.EdsClusterConfig(
            eds_config=config_source_pb2.ConfigSource(
                ads=config_source_pb2.AggregatedConfigSource(),
                initial_fetch_timeout=duration(0),
                resource_api_version=config_source_pb2.V3,
            ),
        )
    )
    return out


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


def cluster_plans(index: Index, proxy: Proxy) -> Iterator[ClusterPlan]:
    """One plan per (visible service, non-UDP port), plus one per DestinationRule subset of it.

    A DNS cluster whose (subset-filtered) endpoints are empty is not built (cluster_builder.go buildCluster,
    metric DNSNoEndpointClusters): its load assignment is inline, and Envoy would have nothing to resolve.
    The plans of one service port come one after another. They are yielded, not listed: tens of thousands of
    plans kept alive through the whole build would each survive into the oldest GC generation.
    """
    for svc in index.services:
        rule = index.destination_rule(svc.hostname, proxy.namespace)
        for port in svc.ports:
            if port.protocol == "UDP":
                continue
            candidates = [ClusterPlan(svc, port, "", (), rule)]
            if rule is not None:
                candidates.extend(ClusterPlan(svc, port, s.name, s.labels, rule) for s in rule.subsets)
            if svc.kind == "ServiceEntry" and svc.resolution in _DNS_RESOLUTIONS:
                endpoints = index.endpoints(svc, port)
                candidates = [p for p in candidates if any(e.matches(p.subset_labels) for e in endpoints)]
            yield from candidates


def _discovery_type(svc: MeshService, proxy: Proxy) -> int:
    """cluster.go convertResolution: gateways ("Router") never get passthrough clusters, so NONE is EDS there."""
    if svc.kind == "ServiceEntry":
        if svc.resolution == "DNS":
            return int(_C.STRICT_DNS)
        if svc.resolution == "DNS_ROUND_ROBIN":
            return int(_C.LOGICAL_DNS)
        if svc.resolution == "NONE" and proxy.role == "sidecar":
            return int(_C.ORIGINAL_DST)
    return int(_C.EDS)


def _template_chunks(options: TranslateOptions, kind: int) -> tuple[list[bytes], bytes]:
    """The template of a cluster of discovery type ``kind``, cut at _OWN_FIELDS, and its EdsClusterConfig."""
    if kind == _C.EDS:
        template = _eds_prototype(options)
    else:
        template = _base_prototype(options)
        template.type = kind
    chunks = split(template.SerializeToString(deterministic=True), _OWN_FIELDS)
    return chunks, template.eds_cluster_config.SerializeToString(deterministic=True)


class ServiceClusters:
    """The clusters of one service port under one DestinationRule: a template with what its subsets share (kind,
    discovery, service and rule metadata), serialised once; each subset's cluster is parsed from it and its own
    fields' bytes. Hot path: one template per service port, not a fresh Cluster and Struct per subset."""

    __slots__ = (
        "_chunks",
        "_eds_config",
        "_index",
        "_istio",
        "_kind",
        "_no_policy",
        "_port",
        "_proxy",
        "_rule",
        "_service",
    )

    def __init__(self, index: Index, plan: ClusterPlan, proxy: Proxy) -> None:
        self._index = index
        self._proxy = proxy
        self._service = svc = plan.service
        self._port = plan.port
        self._rule = rule = plan.rule
        self._kind = kind = _discovery_type(svc, proxy)
        self._no_policy = rule is None or (
            rule.traffic_policy is None and all(s.traffic_policy is None for s in rule.subsets)
        )  # effective_policy is then _NO_POLICY for every subset
        # The template as bytes, cut where each cluster's own fields go (wire.py): a plain EDS cluster is these
        # chunks and its fields, in deterministic order, never a message (encoded.py).
        self._chunks, self._eds_config = index.prototype(f"cluster.{kind}.chunks", lambda o: _template_chunks(o, kind))
        # The istio metadata as the entries of its Struct, in key order: a subset adds entries, and a map entry is
        # written whole (the last one with a key wins, it is not merged).
        service = b"".join(string_entry(prefix, getattr(svc, field)) for prefix, field in _SERVICE_ENTRIES)
        istio = {"services": list_value([struct_value(service)])}
        if rule is not None:
            path = f"/apis/networking.istio.io/v1/namespaces/{rule.meta.namespace}/destination-rule/{rule.meta.name}"
            istio["config"] = string_value(path)
        if svc.mesh_external and svc.kind == "ServiceEntry":
            istio["external"] = bool_value(True)
        self._istio = struct_entries(istio)

    def serves(self, plan: ClusterPlan, proxy: Proxy) -> bool:
        """``plan`` is a cluster of this very service, port, rule and proxy."""
        return (
            plan.service is self._service
            and plan.rule is self._rule
            and plan.port == self._port
            and proxy is self._proxy
        )

    def _credential_withheld(self, tls: ClientTLS) -> bool:
        """buildUpstreamClusterTLSContext: a sidecar gets no TLS from a credentialName in a DestinationRule
        without workloadSelector (the secret would go to every sidecar in scope); gateways always do."""
        return (
            bool(tls.credential_name)
            and not tls.credential_name.startswith("configmap://")
            and tls.mode in ("SIMPLE", "MUTUAL")
            and self._proxy.role == "sidecar"
            and (self._rule is None or self._rule.workload_selector is None)
        )

    def build(self, plan: ClusterPlan) -> Any:
        index = self._index
        kind = self._kind
        policy = _NO_POLICY if self._no_policy else effective_policy(plan.rule, plan.port.number, plan.subset)
        # Deterministic order (wire.map_key_order): the template's keys (config, external, services) all sort
        # after alpn_override and before subset.
        istio = self._istio
        if policy.tls is not None and policy.tls.mode in ("SIMPLE", "MUTUAL"):
            istio = (
                struct_entry("alpn_override", string_value("false")) + istio
            )  # applyUpstreamTLSSettings: keep the user's ALPN
        if plan.subset:
            istio += string_entry(_SUBSET, plan.subset)
        metadata = submessage(
            _METADATA_KEY, submessage(_FILTER_METADATA_KEY, _ISTIO_KEY + submessage(_VALUE_KEY, istio))
        )
        before_name, after_name, after_eds, after_metadata, after_alt = self._chunks
        eds = self._eds_config + text(_SERVICE_NAME_KEY, plan.name) if kind == _C.EDS else b""
        data = b"".join(
            (
                before_name,
                text(_NAME_KEY, plan.name),
                after_name,
                submessage(_EDS_CLUSTER_CONFIG_KEY, eds) if eds else b"",
                after_eds,
                metadata,
                after_metadata,
                text(_ALT_STAT_NAME_KEY, plan.name + ";"),
                after_alt,
            )
        )
        has_policy = (
            policy.connection_pool is not None
            or policy.load_balancer is not None
            or policy.outlier_detection is not None
            or policy.tls is not None
            or policy.retry_budget is not None
        )
        h2_port = plan.port.protocol in H2_PORT_PROTOCOLS
        if kind == _C.EDS and not has_policy and not h2_port:
            return Encoded(_C, data, plan.name)  # the common case: nothing below would change it
        cluster = _C.FromString(data)
        if kind == _C.ORIGINAL_DST:
            cluster.lb_policy = _C.CLUSTER_PROVIDED
            if isinstance(plan.port.target_port, int) and plan.port.target_port:
                cluster.original_dst_lb_config.upstream_port_override.value = plan.port.target_port
        elif kind != _C.EDS:
            cluster.dns_lookup_family = _C.V4_ONLY
            cluster.dns_refresh_rate.CopyFrom(duration(index.options.dns_refresh_rate_ms))
            cluster.respect_dns_ttl = True
            inline = build_load_assignment(index, plan.service, plan.port, plan.subset_labels, plan.name, inline=True)
            cluster.load_assignment.CopyFrom(as_message(inline))
        if not has_policy and not h2_port:
            return cluster  # nothing below would change it
        http_options = http_protocol_options_pb2.HttpProtocolOptions()
        if h2_port:
            set_h2_options(http_options)  # setUpstreamProtocol, before any policy
        if has_policy:
            if should_h2_upgrade(policy.connection_pool):
                set_h2_options(http_options)  # applyH2Upgrade, so the h2 pool settings below apply
            apply_policy(cluster, policy, http_options)
            if policy.tls is not None and not self._credential_withheld(policy.tls):
                apply_tls(cluster, policy.tls, plan.service, http_options)
        finish_http_options(cluster, http_options, HTTP_PROTOCOL_OPTIONS)
        return cluster


def blackhole_cluster(index: Index) -> Any:
    """istiod's BlackHoleCluster: STATIC with no endpoints, so connections routed to it fail fast."""
    return _C(name=BLACKHOLE_CLUSTER, type=_C.STATIC, connect_timeout=duration(index.options.connect_timeout_ms))
