"""The bootstrap's ``stats_config``: which of Envoy's stats exist at all (like Istio's default inclusion list).

Envoy creates ~145 stats per cluster and a few dozen per listener and TcpProxy; at 10 000 services (30 001
clusters) that is millions of stats, each kept in memory, shown on the admin API and, once set, flushed to the
metrics_service sink every second: the flush kept Envoy's main thread and the control plane busy enough to
delay every xDS update by seconds (docs/benchmarks.md, round 3). A stat the matcher leaves out is never created:
it is absent from ``/stats`` and from the sink, so the list below keeps every stat tcpmesh reads (the traffic
view and rollout gates, through tcpmesh/metricsink.py) and every one its tests and docs read on the admin API,
and per resource only those. ``tests/runtime/test_stats_config.py`` checks the list against those readers.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLUSTER_STATS", "GLOBAL_PREFIXES", "LISTENER_STATS", "stats_config"]

GLOBAL_PREFIXES = (
    # One of each per Envoy, whatever the config size: kept whole.
    "server.",
    "listener_manager.",
    "cluster_manager.",
    "control_plane.",
    "runtime.",
    "filesystem.",
    "main_thread.",
    "workers.",
    "overload.",
    "envoy.",  # envoy.overload_actions.*
    "thread_local_cluster_manager.",
    "http1.",
    "http2.",
    # One per HTTP connection manager (one per port, not per service) and per route with a stat_prefix.
    "http.",
    "vhost.",
    # One per secret; and the shared prefixes of filters tcpmesh adds to every listener.
    "sds.",
    "tls_inspector.",
    "tcpmesh_drain.",
    # Envoy's own admin listener and the control-plane connection (its TLS and connect errors are diagnosed there).
    "listener.admin.",
    "cluster.xds-grpc.",
)

CLUSTER_STATS = (
    # The traffic view and rollout gates (metricsink.COUNTERS), and circuit-breaking / policy checks.
    r"upstream_cx_(total|active|connect_fail|overflow|destroy_remote|tx_bytes_total|rx_bytes_total)",
    r"upstream_rq_(total|active|pending_overflow|timeout|retry|[0-9]xx|[0-9]{3})",
    r"outlier_detection\..*",
    r"ssl\.(handshake|connection_error|no_certificate|fail_verify_.*)",
    r"client_ssl_socket_factory\..*",
)
"""Per-cluster stats kept: ``cluster.<name>.<one of these>`` (full match). The rest (membership, load-balancer,
per-protocol, histogram, ... ~130 per cluster) is left out."""

LISTENER_STATS = (r"server_ssl_socket_factory\..*", r"ssl\.(handshake|connection_error|no_certificate|fail_verify_.*)")
"""Per-listener stats kept: ``listener.<address>.<one of these>`` (SDS readiness, TLS failures)."""


def stats_config() -> dict[str, Any]:
    """``stats_config`` keeping the stats above: prefixes where a whole namespace is small, one regex per
    per-resource namespace (RE2, matched against the whole stat name, once when the stat would be created)."""
    patterns: list[dict[str, Any]] = [{"prefix": prefix} for prefix in GLOBAL_PREFIXES]
    patterns.append(_regex(r"cluster\..*\.(" + "|".join(CLUSTER_STATS) + ")"))
    patterns.append(_regex(r"listener\..*\.(" + "|".join(LISTENER_STATS) + ")"))
    # ECDS: a config the proxy could not apply; reloads (one per config, 10 000 at that size) are not kept.
    patterns.append({"suffix": ".config_fail"})
    return {"stats_matcher": {"inclusion_list": {"patterns": patterns}}}


def _regex(regex: str) -> dict[str, Any]:
    return {"safe_regex": {"regex": regex}}
