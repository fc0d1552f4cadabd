"""The traffic view's window and flag, fed with reports as the metrics sink gives them."""

from __future__ import annotations

from tcpmesh.metricsink import ClusterCounters, ProxyReport
from tcpmesh.traffic import Route, TrafficView, served_routes

NODE = "router~127.0.0.1~gw.istio-system~istio-system.svc.cluster.local"


def _report(at: float, v1: int, v2: int, fail: int = 0) -> ProxyReport:
    return ProxyReport(
        NODE, {"v1": ClusterCounters(cx_total=v1), "v2": ClusterCounters(cx_total=v2, connect_fail=fail)}, at
    )


def _view(version: list[str]) -> TrafficView:
    return TrafficView(lambda _node: {"r": Route("r", version[0], {"v1": 80, "v2": 20})})


def test_window_counts_from_the_first_report_of_a_version() -> None:
    version = ["a"]
    view = _view(version)
    view.on_report(_report(1, 1000, 1000))  # counters from before: the baseline
    view.sink._latest[NODE] = _report(2, 1800, 1200, fail=3)
    (route,) = view.report([NODE])[0]["routes"]
    assert route["connections"] == 1000
    assert [d["count"] for d in route["destinations"]] == [800, 200]
    assert not route["mismatch"]
    version[0] = "b"  # a new route version: the next report opens a new window
    view.on_report(_report(3, 1800, 1200, fail=3))
    view.sink._latest[NODE] = _report(4, 1850, 1250, fail=3)
    (route,) = view.report([NODE])[0]["routes"]
    assert route["connections"] == 100
    assert route["destinations"][1]["connect_fail"] == 0


def test_a_split_far_from_the_weights_is_flagged() -> None:
    view = _view(["a"])
    view.on_report(_report(1, 0, 0))
    view.sink._latest[NODE] = _report(2, 500, 500)  # 50/50 against 80/20
    (route,) = view.report([NODE])[0]["routes"]
    assert route["mismatch"]
    assert all(d["mismatch"] for d in route["destinations"])


def test_too_few_connections_are_never_flagged() -> None:
    view = _view(["a"])
    view.on_report(_report(1, 0, 0))
    view.sink._latest[NODE] = _report(2, 0, 10)
    (route,) = view.report([NODE])[0]["routes"]
    assert not route["mismatch"]


def test_a_weighted_route_names_its_virtual_service_or_gateway_api_route() -> None:
    """The served tcp_proxy's stat_prefix names the VirtualService; a converted one, its TCPRoute or TLSRoute."""
    from tcpmesh.model.config import load_config_text
    from tcpmesh.publisher import KIND_TYPES
    from tcpmesh.translator import Proxy, TranslateOptions, translate
    from tcpmesh.xds.cache import SnapshotCache

    text = """
apiVersion: v1
kind: Service
metadata: {name: a, namespace: shop}
spec: {ports: [{name: tcp, port: 9000}]}
---
apiVersion: v1
kind: Service
metadata: {name: b, namespace: shop}
spec: {ports: [{name: tcp, port: 9000}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: shop}
spec:
  gatewayClassName: istio
  listeners:
  - {name: tcp, protocol: TCP, port: 9100}
  - {name: tls, protocol: TLS, port: 9443, tls: {mode: Passthrough}}
  - {name: one, protocol: TCP, port: 9200}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: orders.v2, namespace: shop}
spec:
  parentRefs: [{name: gw, sectionName: tcp}]
  rules: [{backendRefs: [{name: a, port: 9000, weight: 70}, {name: b, port: 9000, weight: 30}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TLSRoute
metadata: {name: secure, namespace: shop}
spec:
  parentRefs: [{name: gw, sectionName: tls}]
  hostnames: [db.example.com]
  rules: [{backendRefs: [{name: a, port: 9000, weight: 1}, {name: b, port: 9000, weight: 1}]}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: single, namespace: shop}
spec:
  parentRefs: [{name: gw, sectionName: one}]
  rules: [{backendRefs: [{name: a, port: 9000}]}]
"""
    config, problems = load_config_text(text)
    assert not problems
    proxy = Proxy(labels=(("gateway.networking.k8s.io/gateway-name", "gw"),), namespace="shop")
    for inline in (False, True):
        out = translate(config, proxy, TranslateOptions(inline_weights=inline))
        snapshot = SnapshotCache().build({t: getattr(out, kind) for kind, t in KIND_TYPES.items()})
        routes = served_routes(snapshot)
        by_config = {r.config: dict(r.weights) for r in routes.values()}
        assert by_config == {
            ("TCPRoute", "shop", "orders.v2"): {
                "outbound|9000||a.shop.svc.cluster.local": 70,
                "outbound|9000||b.shop.svc.cluster.local": 30,
            },
            ("TLSRoute", "shop", "secure"): {
                "outbound|9000||a.shop.svc.cluster.local": 1,
                "outbound|9000||b.shop.svc.cluster.local": 1,
            },
            None: {"outbound|9000||a.shop.svc.cluster.local": 1},  # one destination: its stat_prefix is the cluster
        }
    view = TrafficView(lambda _node: routes)
    names = {r["route"]: r["config"] for r in view.report([NODE])[0]["routes"]}
    assert {"kind": "TCPRoute", "namespace": "shop", "name": "orders.v2"} in names.values()


def test_an_istio_virtual_service_is_named_too() -> None:
    from tcpmesh.traffic import _source

    assert _source("tcp-echo.default") == ("VirtualService", "default", "tcp-echo")
    assert _source("shop~tcp~0~istio-autogenerated-k8s-gateway.web") == ("TCPRoute", "web", "shop")
    assert _source("shop~tls~3~istio-autogenerated-k8s-gateway.web") == ("TLSRoute", "web", "shop")
