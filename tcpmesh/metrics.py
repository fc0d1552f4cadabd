"""Prometheus metrics of the control plane (names follow istiod's pilot_* where one exists)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tcpmesh.model.problems import Problem
from tcpmesh.xds.status import AckEvent, ProxyStatus, SyncState
from tcpmesh.xds.types import CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, SECRET_TYPE

__all__ = ["Metrics"]

_SHORT = {CLUSTER_TYPE: "cds", ENDPOINT_TYPE: "eds", LISTENER_TYPE: "lds", SECRET_TYPE: "sds"}
# pilot_proxy_convergence_time buckets, with finer ones below 100 ms where tcpmesh lives.
_REJECTED_SHOWN = 20  # labelled series for one rejection: enough to point at the culprits, bounded
_CONVERGENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30)


def _short(type_url: str) -> str:
    return _SHORT.get(type_url, type_url.rsplit(".", 1)[-1])


class _RejectingCollector(Collector):
    """Proxies whose latest version of a type is NACKed right now: the NACK as a state, not only a count."""

    def __init__(self, statuses: Callable[[], Sequence[ProxyStatus]]) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "tcpmesh_xds_rejecting_proxies", "Proxies whose latest version of a type is NACKed", labels=["type"]
        )
        counts = dict.fromkeys(_SHORT.values(), 0)
        for proxy in self._statuses():
            for type_url, ts in proxy.types.items():
                if ts.state is SyncState.ERROR:
                    counts[_short(type_url)] = counts.get(_short(type_url), 0) + 1
        for short, count in sorted(counts.items()):
            family.add_metric([short], count)
        yield family


class Metrics:
    def __init__(
        self, connected: Callable[[], int], statuses: Callable[[], Sequence[ProxyStatus]] | None = None
    ) -> None:
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
        self.restored_groups = Gauge(
            "tcpmesh_start_restored_groups",
            "Proxy groups served at this process's start from the snapshots saved when the last one stopped "
            "(0: it translated before serving)",
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
        self.rejected_resources = Gauge(
            "tcpmesh_config_rejected_resources",
            "Resources named by the problems of the rejected config change (the reasons are in /debug/syncz)",
            ["kind", "namespace", "name"],
            registry=self.registry,
        )
        self.pushes = Counter(
            "tcpmesh_xds_pushes_total",
            "Discovery responses sent to proxies, per type",
            ["type"],
            registry=self.registry,
        )
        self.debounce_seconds = Histogram(
            "tcpmesh_debounce_seconds",
            "First config event of a burst to the reload it caused (pilot_debounce_time)",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 3, 10, 30),
            registry=self.registry,
        )
        if statuses is not None:
            self.registry.register(_RejectingCollector(statuses))
        self.translate_seconds = Histogram(
            "tcpmesh_translate_seconds", "Time to translate config for one proxy", registry=self.registry
        )

    def set_rejected(self, problems: Iterable[Problem]) -> None:
        """tcpmesh_config_rejected and its per-resource breakdown for the latest change (empty: accepted)."""
        found = list(problems)
        self.config_errors.set(1 if found else 0)
        self.rejected_resources.clear()
        for p in found[:_REJECTED_SHOWN]:
            self.rejected_resources.labels(p.kind or "", p.namespace or "", p.name or "").set(1)

    def on_push(self, type_url: str) -> None:
        self.pushes.labels(_short(type_url)).inc()

    def on_ack(self, event: AckEvent) -> None:
        short = _short(event.type_url)
        if event.error is not None:
            self.nacks.labels(short).inc()
            return
        self.acks.labels(short).inc()
        if event.convergence_s is not None:
            self.convergence.labels(short).observe(event.convergence_s)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
