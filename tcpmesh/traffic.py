"""The split as it happens: configured weights next to the share of new connections each destination got.

Per proxy and route (each tcp_proxy it is served), the window starts at the first stats report after the proxy
ACKed the route's current version: the counters then are the baseline, and the observed share of a destination
is its ``upstream_cx_total`` growth since, over the route's total. A 95 % Wilson interval goes with each share.
A configured share is flagged when it lies outside the much wider interval that chance leaves only once in
10 000 windows (z = 3.89): a flag then means the split is really off, not that one window in twenty was unlucky,
as a 95 % interval alone would flag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from tcpmesh.metricsink import ClusterCounters, MetricsSink, ProxyReport
from tcpmesh.probe import wilson_interval
from tcpmesh.xds.cache import Entry, Snapshot
from tcpmesh.xds.types import EXTENSION_CONFIG_TYPE, LISTENER_TYPE

__all__ = ["FLAG_Z", "MIN_CONNECTIONS_TO_FLAG", "Route", "ServedRoutes", "TrafficView", "served_routes"]

FLAG_Z = 3.891
"""Two-sided 1e-4: how far outside chance a configured share must be to be flagged."""

MIN_CONNECTIONS_TO_FLAG = 30
"""Below this many new connections a route is shown but never flagged: the interval is too wide to mean much."""

_TCP_PROXY = "envoy.filters.network.tcp_proxy"


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    """The ECDS config name (``0.0.0.0_31400~tcp_proxy``), or ``<listener>#<chain>`` for an inline tcp_proxy."""
    version: str
    weights: Mapping[str, int]
    """cluster → weight; a single destination has weight 1."""


def _weights(typed: Any) -> dict[str, int] | None:
    proxy = tcp_proxy_pb2.TcpProxy()
    if not typed.Unpack(proxy):
        return None
    if proxy.cluster:
        return {proxy.cluster: 1}
    return {c.name: c.weight for c in proxy.weighted_clusters.clusters}


def _entry_routes(type_url: str, entry: Entry) -> tuple[Route, ...]:
    if type_url == EXTENSION_CONFIG_TYPE:
        config: Any = entry.message
        weights = _weights(config.typed_config)
        return (Route(entry.name, entry.version, weights),) if weights is not None else ()
    out = []
    listener: Any = entry.message
    for i, chain in enumerate(listener.filter_chains):
        for f in chain.filters:
            if f.name == _TCP_PROXY and f.HasField("typed_config"):
                weights = _weights(f.typed_config)
                if weights is not None:
                    out.append(Route(f"{entry.name}#{i}", entry.version, weights))
    return tuple(out)


def served_routes(snapshot: Snapshot) -> dict[str, Route]:
    """Every tcp_proxy in a proxy's snapshot, by route name."""
    return ServedRoutes()(snapshot)


class ServedRoutes:
    """`served_routes`, remembered: per (ECDS, listener) type version, and per resource version, so the stats
    report of a proxy on 10 000 routes (every second) reads each resource once, not 20 000 messages a report."""

    _KEPT = 16

    def __init__(self) -> None:
        self._by_types: dict[tuple[str, str], dict[str, Route]] = {}
        self._by_entry: dict[tuple[str, str, str], tuple[Route, ...]] = {}

    def __call__(self, snapshot: Snapshot) -> dict[str, Route]:
        types = [snapshot.get_type(EXTENSION_CONFIG_TYPE), snapshot.get_type(LISTENER_TYPE)]
        key = (types[0].version, types[1].version)
        found = self._by_types.get(key)
        if found is not None:
            return found
        memo: dict[tuple[str, str, str], tuple[Route, ...]] = {}
        routes: dict[str, Route] = {}
        for ts in types:
            for name, entry in ts.entries.items():
                k = (ts.type_url, name, entry.version)
                got = self._by_entry.get(k)
                if got is None:
                    got = _entry_routes(ts.type_url, entry)
                memo[k] = got
                for route in got:
                    routes[route.name] = route
        self._by_entry = memo  # only what the latest snapshot holds
        if len(self._by_types) >= self._KEPT:
            del self._by_types[next(iter(self._by_types))]
        self._by_types[key] = routes
        return routes


@dataclass
class _Window:
    version: str
    since: float
    baseline: dict[str, tuple[int, int]]
    """cluster → (upstream_cx_total, upstream_cx_connect_fail) when the window opened."""


@dataclass
class TrafficView:
    """Fed by the metrics sink; ``routes_of(node_id)`` gives the routes a proxy has ACKed (None while syncing)."""

    routes_of: Callable[[str], Mapping[str, Route] | None]
    sink: MetricsSink = field(default_factory=MetricsSink)
    _windows: dict[tuple[str, str], _Window] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.sink.on_report = self.on_report

    def on_report(self, report: ProxyReport) -> None:
        routes = self.routes_of(report.node_id)
        if routes is None:
            return  # not synced: keep the current windows until the proxy applied what it was sent
        with self._lock:
            for name, route in routes.items():
                key = (report.node_id, name)
                window = self._windows.get(key)
                if window is None or window.version != route.version:
                    counters = {c: report.clusters.get(c, ClusterCounters()) for c in route.weights}
                    totals = {c: (k.cx_total, k.connect_fail) for c, k in counters.items()}
                    self._windows[key] = _Window(route.version, report.at, totals)

    def report(self, node_ids: Iterable[str]) -> list[dict[str, Any]]:
        latest = self.sink.latest()
        out = []
        for node_id in sorted(set(node_ids)):
            proxy_report = latest.get(node_id)
            routes = self.routes_of(node_id) or {}
            entries = []
            for name, route in sorted(routes.items()):
                with self._lock:
                    window = self._windows.get((node_id, name))
                entries.append(_route_json(route, window, proxy_report))
            out.append(
                {
                    "id": node_id,
                    "reported_at": proxy_report.at if proxy_report else None,
                    "age_s": round(time.time() - proxy_report.at, 1) if proxy_report else None,
                    "routes": entries,
                }
            )
        return out


def _route_json(route: Route, window: _Window | None, report: ProxyReport | None) -> dict[str, Any]:
    clusters = report.clusters if report is not None else {}
    current = {c: clusters.get(c, ClusterCounters()) for c in route.weights}
    base = window.baseline if window is not None and window.version == route.version else None
    new = {c: max(0, k.cx_total - base.get(c, (0, 0))[0]) if base is not None else 0 for c, k in current.items()}
    failed = {c: max(0, k.connect_fail - base.get(c, (0, 0))[1]) if base is not None else 0 for c, k in current.items()}
    total_new = sum(new.values())
    total_weight = sum(route.weights.values()) or 1
    destinations = []
    for cluster, weight in route.weights.items():
        configured = weight / total_weight
        observed = new[cluster] / total_new if total_new else None
        low, high = wilson_interval(new[cluster], total_new) if total_new else (0.0, 1.0)
        far_low, far_high = wilson_interval(new[cluster], total_new, FLAG_Z) if total_new else (0.0, 1.0)
        destinations.append(
            {
                "cluster": cluster,
                "weight": weight,
                "configured": round(configured, 4),
                "observed": None if observed is None else round(observed, 4),
                "count": new[cluster],
                "interval": [round(low, 4), round(high, 4)],
                "active": current[cluster].cx_active,
                "connect_fail": failed[cluster],
                "ejections_active": current[cluster].ejections_active,
                "mismatch": total_new >= MIN_CONNECTIONS_TO_FLAG and not far_low <= configured <= far_high,
            }
        )
    return {
        "route": route.name,
        "version": route.version,
        "since": window.since if base is not None and window is not None else None,
        "connections": total_new,
        "destinations": destinations,
        "mismatch": any(d["mismatch"] for d in destinations),
    }
