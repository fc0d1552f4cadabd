"""Envoy's metrics_service stats sink, received on the ADS port: every proxy's connection counters, pushed.

xds-protos ships no `envoy.service.metrics.v3` module (it needs Prometheus' client model), so the few messages
this needs are declared here, wire-compatible with `metrics_service.proto` and `io.prometheus.client`'s
`metrics.proto` (field numbers are what matters on the wire; unknown fields are skipped). Only what the traffic
view reads is kept: per cluster `upstream_cx_total`, `upstream_cx_active`, `upstream_cx_connect_fail`,
`upstream_cx_tx_bytes_total`, `upstream_cx_rx_bytes_total`, `outlier_detection.ejections_active`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from envoy.config.core.v3 import base_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tcpmesh.translator.wire import read_varint

__all__ = ["SERVICE", "ClusterCounters", "MetricsSink", "parse_report", "parse_report_bytes"]

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


def _messages() -> tuple[type[Any], type[Any], type[Any], type[Any]]:
    """StreamMetricsMessage, StreamMetricsResponse, Identifier and Metric, declared in a private pool."""
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
        get(pool.FindMessageTypeByName("tcpmesh.metricsink.Identifier")),
        get(pool.FindMessageTypeByName("tcpmesh.metricsink.Metric")),
    )


StreamMetricsMessage, StreamMetricsResponse, _Identifier, _Metric = _messages()


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


_SUFFIXES = tuple(("." + stat).encode() for stat in COUNTERS)
_PREFIX = b"cluster."


def _name_start(data: bytes, end: int) -> int:
    """Where the MetricFamily name ending at `end` starts: a ``cluster.`` whose length prefix (after the name
    field's tag 0x0a) says the name runs to `end`; -1 if none does. Cluster names contain ``cluster.local``,
    so each ``cluster.`` before `end` is tried, nearest first."""
    at = end
    while True:
        at = data.rfind(_PREFIX, max(0, end - 16_384), at)
        if at < 2:
            return -1
        length = end - at
        if (length < 0x80 and data[at - 1] == length and data[at - 2] == 0x0A) or (
            at >= 3 and data[at - 3] == 0x0A and data[at - 2] == (length & 0x7F) | 0x80 and data[at - 1] == length >> 7
        ):
            return at


def parse_report_bytes(data: bytes) -> tuple[str, dict[str, ClusterCounters]]:
    """The node id (empty unless this message names it) and the cluster counters of one serialised
    StreamMetricsMessage, as `parse_report` gives them, without parsing the rest: Envoy sends every stat it has
    each flush (~100 per cluster, so millions a second at 30 000 clusters), and the view needs six. Each
    counter's name is found by its suffix, checked against the name field's length prefix, and only its Metric
    is parsed."""
    node_id = ""
    if data[:1] == b"\x0a":  # field 1, identifier: Envoy serialises fields in number order, so it comes first
        length, p = read_varint(data, 1)
        node_bytes = _Identifier.FromString(data[p : p + length]).node_bytes
        if node_bytes:
            node_id = base_pb2.Node.FromString(node_bytes).id
    out: dict[str, ClusterCounters] = {}
    for suffix, attr in zip(_SUFFIXES, COUNTERS.values(), strict=True):
        hit = data.find(suffix)
        while hit >= 0:
            end = hit + len(suffix)
            p = end
            if p < len(data) and data[p] == 0x12:  # help (field 2): skip it
                length, p = read_varint(data, p + 1)
                p += length
            if p < len(data) and data[p] == 0x18:  # type (field 3)
                _, p = read_varint(data, p + 1)
            start = _name_start(data, end) if p < len(data) and data[p] == 0x22 else -1
            if start >= 0:
                length, p = read_varint(data, p + 1)
                metric = _Metric.FromString(data[p : p + length])
                value = metric.counter.value if metric.HasField("counter") else metric.gauge.value
                cluster = data[start + len(_PREFIX) : hit].decode(errors="replace").rstrip(";")
                setattr(out.setdefault(cluster, ClusterCounters()), attr, int(value))
            hit = data.find(suffix, end)
    return node_id, out


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
        # Bytes in (no deserializer): a report is read off the event loop, and only in part (parse_report_bytes).
        handler = grpc.stream_unary_rpc_method_handler(
            self._stream, response_serializer=lambda m: m.SerializeToString()
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"StreamMetrics": handler}),))

    async def _stream(self, requests: AsyncIterator[bytes], context: Any) -> Any:
        node_id = ""
        async for data in requests:
            named, clusters = await asyncio.to_thread(parse_report_bytes, data)
            node_id = named or node_id
            if not node_id:
                continue  # only the first message of a stream names the node
            report = ProxyReport(node_id, clusters, time.time())
            with self._lock:
                self._latest[node_id] = report
            if self.on_report is not None:
                try:
                    self.on_report(report)  # on the loop: it reads the server's state
                except Exception:  # a view must not break the stream
                    log.exception("metrics report callback failed")
        return StreamMetricsResponse()
