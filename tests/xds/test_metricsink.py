"""The metrics_service messages declared by tcpmesh parse what Envoy sends (wire compatibility by field number)."""

from __future__ import annotations

import struct

from envoy.config.core.v3 import base_pb2

from tcpmesh.metricsink import StreamMetricsMessage, parse_report


def _family(name: str, value: float, *, counter: bool = True) -> bytes:
    """A MetricFamily as Prometheus' client model encodes it: name=1, type=3, metric=4 {counter=3|gauge=2 {value=1}}."""
    value_msg = b"\x09" + struct.pack("<d", value)  # field 1, a double (fixed64)
    metric = (b"\x1a" if counter else b"\x12") + bytes([len(value_msg)]) + value_msg
    body = b"\x0a" + bytes([len(name)]) + name.encode() + b"\x18" + (b"\x00" if counter else b"\x01")
    body += b"\x22" + bytes([len(metric)]) + metric
    return b"\x12" + bytes([len(body)]) + body


def test_cluster_counters_from_envoy_stat_names() -> None:
    node = base_pb2.Node(id="router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local").SerializeToString()
    wire = b"\x0a" + bytes([len(node) + 2]) + b"\x0a" + bytes([len(node)]) + node
    wire += _family("cluster.outbound|9000|v1|tcp-echo.default.svc.cluster.local;.upstream_cx_total", 7)
    wire += _family("cluster.outbound|9000|v1|tcp-echo.default.svc.cluster.local;.upstream_cx_active", 2, counter=False)
    wire += _family("cluster.BlackHoleCluster.upstream_cx_connect_fail", 1)
    wire += _family("listener.0.0.0.0_31400.downstream_cx_total", 99)  # not a cluster stat: ignored
    message = StreamMetricsMessage.FromString(wire)
    assert base_pb2.Node.FromString(message.identifier.node_bytes).id.startswith("router~")
    report = parse_report(message)
    assert set(report) == {"outbound|9000|v1|tcp-echo.default.svc.cluster.local", "BlackHoleCluster"}
    v1 = report["outbound|9000|v1|tcp-echo.default.svc.cluster.local"]
    assert (v1.cx_total, v1.cx_active, v1.connect_fail) == (7, 2, 0)
    assert report["BlackHoleCluster"].connect_fail == 1
