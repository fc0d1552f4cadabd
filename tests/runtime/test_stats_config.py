"""The bootstrap's stats matcher keeps every stat tcpmesh and its checks read, and drops the per-cluster bulk."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tcpmesh.echo import BackgroundEchoServer
from tcpmesh.metricsink import COUNTERS
from tcpmesh.runtime.bootstrap import gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.stats_config import stats_config

HOST = "127.0.0.1"
CLUSTER = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
ALT = "outbound|8000||httpbin.default.svc.cluster.local;"  # istiod's alt_stat_name form
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

READ = [
    # tcpmesh/metricsink.py (traffic view, rollout gates)
    *(f"cluster.{ALT}.{name}" for name in COUNTERS),
    # what tests and docs read on the admin API
    "listener_manager.listener_modified",
    "listener_manager.lds.update_success",
    "listener_manager.total_listeners_draining",
    "listener_manager.total_filter_chains_draining",
    "listener_manager.total_listeners_active",
    "cluster_manager.active_clusters",
    "cluster_manager.warming_clusters",
    "cluster_manager.cds.update_rejected",
    "server.state",
    "control_plane.connected_state",
    "tcpmesh_drain.rbac.denied",
    "http.outbound_0.0.0.0_8080.downstream_rq_2xx",
    "http.outbound_0.0.0.0_8080.downstream_cx_http2_total",
    "listener.0.0.0.0_8443.server_ssl_socket_factory.downstream_context_secrets_not_ready",
    "cluster.xds-grpc.upstream_cx_connect_fail",
    "cluster.xds-grpc.ssl.connection_error",
    "cluster.xds-grpc.upstream_cx_destroy_remote",
    f"cluster.{ALT}.upstream_rq_pending_overflow",
    f"cluster.{ALT}.upstream_rq_timeout",
    f"cluster.{ALT}.upstream_rq_200",
    f"cluster.{ALT}.upstream_cx_overflow",
    f"cluster.{ALT}.outlier_detection.ejections_enforced_total",
    f"cluster.{ALT}.outlier_detection.ejections_enforced_consecutive_5xx",
    "cluster.outbound|443||backend.internal;.ssl.handshake",
]

DROPPED = [
    f"cluster.{ALT}.membership_total",
    f"cluster.{ALT}.membership_healthy",
    f"cluster.{ALT}.lb_healthy_panic",
    f"cluster.{ALT}.upstream_cx_length_ms",
    f"cluster.{ALT}.upstream_rq_time",
    f"cluster.{ALT}.circuit_breakers.default.cx_open",
    f"cluster.{ALT}.update_success",
    "listener.0.0.0.0_31400.downstream_cx_total",
    "tcp.outbound|9000||tcp-echo.default.svc.cluster.local.downstream_cx_total",
    "extension_config_discovery.tcp_proxy.0.0.0.0_31400~tcp.config_reload",
]


def kept(name: str) -> bool:
    """Envoy's inclusion list: any pattern matches (prefix, suffix, or an RE2 regex matching the whole name)."""
    for pattern in stats_config()["stats_matcher"]["inclusion_list"]["patterns"]:
        if "prefix" in pattern and name.startswith(pattern["prefix"]):
            return True
        if "suffix" in pattern and name.endswith(pattern["suffix"]):
            return True
        if "safe_regex" in pattern and re.fullmatch(pattern["safe_regex"]["regex"], name):
            return True
    return False


@pytest.mark.parametrize("name", READ)
def test_stats_that_are_read_are_kept(name: str) -> None:
    assert kept(name)


@pytest.mark.parametrize("name", DROPPED)
def test_per_resource_bulk_is_dropped(name: str) -> None:
    assert not kept(name)


def test_all_stats_leaves_the_matcher_out() -> None:
    assert "stats_config" in gateway_bootstrap()
    assert "stats_config" not in gateway_bootstrap(all_stats=True)


def _bootstrap(echo_port: int, *, all_stats: bool) -> dict[str, Any]:
    tcp_proxy = {"@type": TCP_PROXY, "stat_prefix": "echo", "cluster": CLUSTER}
    endpoint = {"endpoint": {"address": {"socket_address": {"address": HOST, "port_value": echo_port}}}}
    listener = {
        "name": "0.0.0.0_31400",
        "address": {"socket_address": {"address": HOST, "port_value": 0}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp_proxy}]}],
    }
    cluster = {
        "name": CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": CLUSTER, "endpoints": [{"lb_endpoints": [endpoint]}]},
    }
    bootstrap = gateway_bootstrap(
        admin_port=0,
        static_listeners=[listener],
        static_clusters=[cluster],
        stats_to_control_plane=False,
        all_stats=all_stats,
    )
    del bootstrap["dynamic_resources"]  # static only: no control plane to wait for, the stats are what is tested
    return bootstrap


@pytest.fixture
def echo() -> Iterator[BackgroundEchoServer]:
    with BackgroundEchoServer(HOST, [0], prefix="one") as server:
        yield server


@pytest.mark.envoy
@pytest.mark.timeout(60)
@pytest.mark.parametrize("all_stats", [False, True])
def test_real_envoy_keeps_read_stats_only(echo: BackgroundEchoServer, all_stats: bool) -> None:
    with EnvoyProcess(_bootstrap(echo.ports[0], all_stats=all_stats), admin_port=0) as envoy:
        _, port = envoy.wait_for_listener("0.0.0.0_31400")
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(b"hello\n")
            assert sock.makefile("rb").readline().startswith(b"one")
        total = envoy.wait_for_stat(f"cluster.{CLUSTER}.upstream_cx_total")
        assert total == 1
        stats = envoy.stats()
        assert stats["cluster_manager.active_clusters"] >= 2
        assert stats["listener_manager.total_listeners_active"] == 1
        assert f"cluster.{CLUSTER}.upstream_cx_active" in stats
        per_cluster = [k for k in stats if k.startswith(f"cluster.{CLUSTER}.")]
        if all_stats:
            assert f"cluster.{CLUSTER}.membership_total" in stats
            assert "tcp.echo.downstream_cx_total" in stats
            assert len(per_cluster) > 80, per_cluster
        else:
            assert f"cluster.{CLUSTER}.membership_total" not in stats
            assert "tcp.echo.downstream_cx_total" not in stats
            assert len(per_cluster) < 30, per_cluster
