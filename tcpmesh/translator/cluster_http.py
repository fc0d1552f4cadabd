"""The upstream HTTP side of a cluster: connectionPool thresholds and ``HttpProtocolOptions`` (the
``envoy.extensions.upstreams.http.v3.HttpProtocolOptions`` entry of ``typed_extension_protocol_options``).

Follows pilot/pkg/networking/core: cluster_builder.go ``setUpstreamProtocol`` (h2 for HTTP2/gRPC ports),
``setH2Options``, ``setUseDownstreamProtocol`` and ``clusterWrapper.build``; cluster_traffic_policy.go
``shouldH2Upgrade`` and ``applyConnectionPool``. istiod treats 0 as unset for every count (its own FIXME).
"""

from __future__ import annotations

from typing import Any

from envoy.config.common.matcher.v3 import matcher_pb2
from envoy.config.route.v3 import route_components_pb2

from tcpmesh.model.resources import ConnectionPool, RetryBudget
from tcpmesh.translator.protos import duration

__all__ = [
    "H2_PORT_PROTOCOLS",
    "apply_connection_pool",
    "apply_outlier_error_codes",
    "apply_retry_budget",
    "finish_http_options",
    "set_h2_options",
    "should_h2_upgrade",
]

H2_PORT_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})
"""protocol.IsHTTP2(): ports whose clusters always speak h2 upstream."""


def set_h2_options(options: Any) -> None:
    """setH2Options: an h2 cluster, unless an upstream protocol was chosen already."""
    if options.WhichOneof("upstream_protocol_options") is None:
        options.explicit_http_config.http2_protocol_options.SetInParent()


def should_h2_upgrade(pool: ConnectionPool | None) -> bool:
    """shouldH2Upgrade with meshConfig.h2UpgradePolicy at its default (DO_NOT_UPGRADE): only the rule's own
    ``UPGRADE`` upgrades, on any port (the user vouches that it is HTTP), and never with useClientProtocol."""
    http = pool.http if pool is not None else None
    return http is not None and not http.use_client_protocol and http.h2_upgrade_policy == "UPGRADE"


def _h2_options(options: Any) -> Any | None:
    """GetExplicitHttpConfig().GetHttp2ProtocolOptions(), or None when the cluster is not (yet) h2."""
    if options.WhichOneof("upstream_protocol_options") != "explicit_http_config":
        return None
    explicit = options.explicit_http_config
    if explicit.WhichOneof("protocol_config") != "http2_protocol_options":
        return None
    return explicit.http2_protocol_options


def apply_connection_pool(cluster: Any, pool: ConnectionPool, options: Any) -> None:
    """applyConnectionPool: circuit-breaker thresholds from ``http`` (and ``tcp.maxConnections``), then the
    HTTP protocol options; ``http.idleTimeout`` wins over ``tcp.idleTimeout``. Call after any h2 upgrade:
    maxConcurrentStreams and http2KeepAlive only reach an h2 cluster."""
    threshold = cluster.circuit_breakers.thresholds[0]
    http, tcp = pool.http, pool.tcp
    if tcp is not None and tcp.max_connections > 0:
        threshold.max_connections.value = tcp.max_connections
    idle_ms = max_duration_ms = None
    if http is not None:
        if http.http2_max_requests > 0:
            threshold.max_requests.value = http.http2_max_requests
        if http.http1_max_pending_requests > 0:
            threshold.max_pending_requests.value = http.http1_max_pending_requests
        if http.max_retries > 0:
            threshold.max_retries.value = http.max_retries
        idle_ms = http.idle_timeout_ms
    if tcp is not None:
        max_duration_ms = tcp.max_connection_duration_ms
        if idle_ms is None:
            idle_ms = tcp.idle_timeout_ms
    per_connection = http.max_requests_per_connection if http is not None else 0
    streams = http.max_concurrent_streams if http is not None else 0
    keepalive = http.http2_keepalive if http is not None else None
    if idle_ms is not None or max_duration_ms is not None or per_connection > 0 or streams > 0 or keepalive is not None:
        common = options.common_http_protocol_options
        common.SetInParent()  # istiod creates it even when only h2-only settings were given for an h1 cluster
        if idle_ms is not None:
            common.idle_timeout.CopyFrom(duration(idle_ms))
        if per_connection > 0:
            common.max_requests_per_connection.value = per_connection
        if max_duration_ms is not None:
            common.max_connection_duration.CopyFrom(duration(max_duration_ms))
        h2 = _h2_options(options)
        if h2 is not None and streams > 0:
            h2.max_concurrent_streams.value = streams
        if h2 is not None and keepalive is not None:
            ping = h2.connection_keepalive
            ping.SetInParent()
            if keepalive.interval_ms is not None:
                ping.interval.CopyFrom(duration(keepalive.interval_ms))
            if keepalive.timeout_ms is not None:
                ping.timeout.CopyFrom(duration(keepalive.timeout_ms))
    if http is not None and http.use_client_protocol:
        _use_downstream_protocol(options)


def _use_downstream_protocol(options: Any) -> None:
    """setUseDownstreamProtocol: the client's protocol upstream, keeping any explicit HTTP/1 options."""
    http1 = None
    if options.WhichOneof("upstream_protocol_options") == "explicit_http_config":
        explicit = options.explicit_http_config
        if explicit.WhichOneof("protocol_config") == "http_protocol_options":
            http1 = type(explicit.http_protocol_options)()
            http1.CopyFrom(explicit.http_protocol_options)
    downstream = options.use_downstream_protocol_config
    downstream.http_protocol_options.SetInParent()
    if http1 is not None:
        downstream.http_protocol_options.CopyFrom(http1)
    downstream.http2_protocol_options.SetInParent()


def apply_retry_budget(cluster: Any, budget: RetryBudget) -> None:
    """applyRetryBudget: istiod's defaults are 20 % and a minimum concurrency of 3 (0 means unset)."""
    out = cluster.circuit_breakers.thresholds[0].retry_budget
    out.budget_percent.value = 20.0 if budget.percent is None else budget.percent
    out.min_retry_concurrency.value = budget.min_retry_concurrency or 3


def apply_outlier_error_codes(options: Any, codes: tuple[int, ...]) -> None:
    """applyOutlierDetectionErrorCodes: the listed statuses (exact ``:status`` matches, or-ed) are the
    responses outlier detection counts as errors."""
    rules = [
        matcher_pb2.MatchPredicate(
            http_response_headers_match=matcher_pb2.HttpHeadersMatch(
                headers=[route_components_pb2.HeaderMatcher(name=":status", string_match={"exact": str(code)})]
            )
        )
        for code in codes
    ]
    predicate = options.outlier_detection.error_matcher
    if len(rules) == 1:
        predicate.CopyFrom(rules[0])
    else:
        predicate.or_match.rules.extend(rules)


def finish_http_options(cluster: Any, options: Any, name: str) -> None:
    """clusterWrapper.build: options that were created get an upstream protocol (HTTP/1 when none was chosen:
    Envoy requires one) and are packed into the cluster."""
    if not options.ByteSize():
        return
    if options.WhichOneof("upstream_protocol_options") is None:
        options.explicit_http_config.http_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[name].Pack(options)
