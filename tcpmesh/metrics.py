"""Prometheus metrics of the control plane (names follow istiod's pilot_* where one exists)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tcpmesh.xds.status import AckEvent
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE

__all__ = ["Metrics"]

_SHORT = {CLUSTER_TYPE: "cds", ENDPOINT_TYPE: "eds", LISTENER_TYPE: "lds"}
# pilot_proxy_convergence_time buckets, with finer ones below 100 ms where tcpmesh lives.
_CONVERGENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30)


class Metrics:
    def __init__(self, connected: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.proxies = Gauge("tcpmesh_xds_connected_proxies", "ADS streams currently open", registry=self.registry)
        self.proxies.set_function(lambda: float(connected()))
        self.acks = Counter("tcpmesh_xds_acks_total", "ACKs received", ["type"], registry=self.registry)
        self.nacks = Counter(
            "tcpmesh_xds_nacks_total", "NACKs (rejections) received; alert on this", ["type"], registry=self.registry
        )
        self.convergence = Histogram(
            "tcpmesh_proxy_convergence_seconds",
            "Config change accepted to proxy ACK, per type",
            ["type"],
            buckets=_CONVERGENCE_BUCKETS,
            registry=self.registry,
        )
        self.reloads = Counter(
            "tcpmesh_config_reloads_total",
            "Config loads by result (accepted/rejected)",
            ["result"],
            registry=self.registry,
        )
        self.config_errors = Gauge(
            "tcpmesh_config_rejected", "1 while the latest config change is rejected", registry=self.registry
        )
        self.translate_seconds = Histogram(
            "tcpmesh_translate_seconds", "Time to translate config for one proxy", registry=self.registry
        )

    def on_ack(self, event: AckEvent) -> None:
        short = _SHORT.get(event.type_url, event.type_url.rsplit(".", 1)[-1])
        if event.error is not None:
            self.nacks.labels(short).inc()
            return
        self.acks.labels(short).inc()
        if event.convergence_s is not None:
            self.convergence.labels(short).observe(event.convergence_s)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
