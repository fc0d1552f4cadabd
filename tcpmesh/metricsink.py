"""Envoy's metrics_service stats sink, received on the ADS port: every proxy's connection counters, pushed.

xds-protos ships no `envoy.service.metrics.v3` module (it needs Prometheus' client model), so the few messages
this needs are declared here, wire-compatible with `metrics_service.proto` and `io.prometheus.client`'s
`metrics.proto` (field numbers are what matters on the wire; unknown fields are skipped). Only what the traffic
view reads is kept: per cluster `upstream_cx_total`, `upstream_cx_active`, `upstream_cx_connect_fail`,
`upstream_cx_tx_bytes_total`, `upstream_cx_rx_bytes_total`, `outlier_detection.ejections_active`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from envoy.config.core.v3 import base_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["SERVICE", "ClusterCounters", "MetricsSink", "parse_report"]

log = logging.getLogger(__name__)

SERVICE = "envoy.service.metrics.v3.MetricsService"
COUNTERS = {
    "upstream_cx_total": "cx_total",
    "upstream_cx_active": "cx_active",
    "upstream_cx_connect_fail": "connect_fail",
    "upstream_cx_tx_bytes_total": "tx_bytes",
    "upstream_cx_rx_bytes_total": "rx_bytes",
    "outlier_detection.ejections_active": "ejections_active",
    "upstream_rq_total": "rq_total",
    "upstream_rq_active": "rq_active",
    "upstream_rq_5xx": "rq_5xx",
}


def _messages() -> tuple[type[Any], type[Any]]:
    """StreamMetricsMessage and StreamMetricsResponse, declared in a private pool."""
    pool = descriptor_pool.DescriptorPool()
    f = descriptor_pb2.FileDescriptorProto(
        name="tcpmesh_metricsink.proto", package="tcpmesh.metricsink", syntax="proto3"
    )
    t = descriptor_pb2.FieldDescriptorProto

    def message(name: str, *fields: tuple[str, int, int, str, bool]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, ftype, type_name, repeated in fields:
            added = m.field.add(
                name=fname, number=number, type=ftype, label=t.LABEL_REPEATED if repeated else t.LABEL_OPTIONAL
            )
            if type_name:
                added.type_name = type_name

    msg, dbl, string, enum_as_int = t.TYPE_MESSAGE, t.TYPE_DOUBLE, t.TYPE_STRING, t.TYPE_INT32
    message("LabelPair", ("name", 1, string, "", False), ("value", 2, string, "", False))
    message("Value", ("value", 1, dbl, "", False))  # Gauge and Counter: the value is field 1 of both
    message(
        "Metric",
        ("label", 1, msg, ".tcpmesh.metricsink.LabelPair", True),
        ("gauge", 2, msg, ".tcpmesh.metricsink.Value", False),
        ("counter", 3, msg, ".tcpmesh.metricsink.Value", False),
    )
    message(
        "MetricFamily",
        ("name", 1, string, "", False),
        ("type", 3, enum_as_int, "", False),  # an enum on the wire is a varint
        ("metric", 4, msg, ".tcpmesh.metricsink.Metric", True),
    )
    message("Identifier", ("node_bytes", 1, t.TYPE_BYTES, "", False))  # a core.v3.Node, parsed separately
    message(
        "StreamMetricsMessage",
        ("identifier", 1, msg, ".tcpmesh.metricsink.Identifier", False),
        ("envoy_metrics", 2, msg, ".tcpmesh.metricsink.MetricFamily", True),
    )
    message("StreamMetricsResponse")
    pool.Add(f)
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("tcpmesh.metricsink.StreamMetricsMessage")),
        get(pool.FindMessageTypeByName("tcpmesh.metricsink.StreamMetricsResponse")),
    )


StreamMetricsMessage, StreamMetricsResponse = _messages()


@dataclass
class ClusterCounters:
    cx_total: int = 0
    cx_active: int = 0
    connect_fail: int = 0
    tx_bytes: int = 0
    rx_bytes: int = 0
    ejections_active: int = 0
    rq_total: int = 0
    rq_active: int = 0
    rq_5xx: int = 0


def _cluster_of(stat: str) -> tuple[str, str] | None:
    """``cluster.<name>.<counter>`` → (cluster name, field); istiod's alt_stat_name ends the name with ``;``."""
    if not stat.startswith("cluster."):
        return None
    for suffix, attr in COUNTERS.items():
        if stat.endswith("." + suffix):
            return stat[len("cluster.") : -len(suffix) - 1].rstrip(";"), attr
    return None


def parse_report(message: Any) -> dict[str, ClusterCounters]:
    """The cluster counters in one StreamMetricsMessage (full values: the sink reports cumulative counters)."""
    out: dict[str, ClusterCounters] = {}
    for family in message.envoy_metrics:
        found = _cluster_of(family.name)
        if found is None:
            continue
        cluster, attr = found
        for metric in family.metric:
            value = metric.counter.value if metric.HasField("counter") else metric.gauge.value
            setattr(out.setdefault(cluster, ClusterCounters()), attr, int(value))
    return out


@dataclass
class ProxyReport:
    node_id: str
    clusters: dict[str, ClusterCounters]
    at: float


@dataclass
class MetricsSink:
    """The latest counters per proxy (node id). Thread-safe; the gRPC handler runs on the event loop."""

    on_report: Callable[[ProxyReport], None] | None = None
    _latest: dict[str, ProxyReport] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def latest(self) -> Mapping[str, ProxyReport]:
        with self._lock:
            return dict(self._latest)

    def add_to_server(self, server: Any) -> None:
        handler = grpc.stream_unary_rpc_method_handler(
            self._stream,
            request_deserializer=StreamMetricsMessage.FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"StreamMetrics": handler}),))

    async def _stream(self, requests: AsyncIterator[Any], context: Any) -> Any:
        node_id = ""
        async for message in requests:
            if message.HasField("identifier") and message.identifier.node_bytes:
                node_id = base_pb2.Node.FromString(message.identifier.node_bytes).id
            if not node_id:
                continue  # only the first message of a stream names the node
            report = ProxyReport(node_id, parse_report(message), time.time())
            with self._lock:
                self._latest[node_id] = report
            if self.on_report is not None:
                try:
                    self.on_report(report)
                except Exception:  # a view must not break the stream
                    log.exception("metrics report callback failed")
        return StreamMetricsResponse()
