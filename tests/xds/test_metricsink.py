"""The metrics_service messages declared by tcpmesh parse what Envoy sends (wire compatibility by field number)."""

from __future__ import annotations

import struct

from envoy.config.core.v3 import base_pb2

from tcpmesh.metricsink import StreamMetricsMessage, parse_report, parse_report_bytes


def _family(name: str, value: float, *, counter: bool = True) -> bytes:
    """A MetricFamily as Prometheus' client model encodes it: name=1, type=3, metric=4 {counter=3|gauge=2 {value=1}}."""
    value_msg = b"\x09" + struct.pack("<d", value)  # field 1, a double (fixed64)
    metric = (b"\x1a" if counter else b"\x12") + bytes([len(value_msg)]) + value_msg
    body = b"\x0a" + _varint(len(name)) + name.encode() + b"\x18" + (b"\x00" if counter else b"\x01")
    body += b"\x22" + bytes([len(metric)]) + metric
    return b"\x12" + _varint(len(body)) + body


def _varint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


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


def test_the_bytes_fast_path_reads_what_the_full_parse_reads() -> None:
    node = base_pb2.Node(id="router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local").SerializeToString()
    identifier = b"\x0a" + bytes([len(node)]) + node
    wire = b"\x0a" + bytes([len(identifier)]) + identifier
    long_name = "outbound|9000|v1|" + "x" * 150 + ".default.svc.cluster.local"  # a two-byte length prefix
    for cluster in ("outbound|9000|v1|tcp-echo.default.svc.cluster.local;", "BlackHoleCluster", long_name):
        for i, stat in enumerate(("upstream_cx_total", "upstream_cx_rx_bytes_total", "upstream_cx_tx_bytes_total")):
            wire += _family(f"cluster.{cluster}.{stat}", 10 + i)
        wire += _family(f"cluster.{cluster}.upstream_cx_active", 3, counter=False)
        wire += _family(f"cluster.{cluster}.outlier_detection.ejections_active", 1, counter=False)
        wire += _family(f"cluster.{cluster}.upstream_cx_total_not_this", 5)  # a longer name with that infix
    wire += _family("listener.0.0.0.0_31400.downstream_cx_total", 99)
    wire += _family("cluster.local.upstream_cx_connect_fail", 4)  # "cluster." inside a name must not confuse it
    node_id, fast = parse_report_bytes(wire)
    assert node_id.startswith("router~")
    assert fast == parse_report(StreamMetricsMessage.FromString(wire))
    assert fast[long_name].cx_total == 10
    assert fast["local"].connect_fail == 4
    assert parse_report_bytes(wire[len(identifier) + 2 :])[0] == ""  # a later message names no node
