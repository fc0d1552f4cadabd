"""The traffic view of HTTP routes: the weighted routes a proxy is served by RDS, named by their VirtualService
and rule, counted in requests, and how counters of a cluster several routes send to are attributed."""

from __future__ import annotations

from tcpmesh.metricsink import ClusterCounters, ProxyReport
from tcpmesh.model.config import load_config_text
from tcpmesh.publisher import KIND_TYPES
from tcpmesh.traffic import Route, TrafficView, served_routes
from tcpmesh.translator import Proxy, TranslateOptions, translate
from tcpmesh.xds.cache import SnapshotCache

NODE = "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"
V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
V2 = "outbound|9080|v2|reviews.default.svc.cluster.local"
SPLIT = "http.8080 default/reviews split"
JASON = "http.8080 default/reviews jason"

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {ports: [{name: http, port: 9080}], selector: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: reviews-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [reviews-gateway]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}, {headers: {end-user: {exact: json}}}]
    route: [{destination: {host: reviews, subset: v2}}]
    mirror: {host: reviews, subset: v1}
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"""


def _served(text: str) -> dict[str, Route]:
    config, problems = load_config_text(text)
    assert not problems
    out = translate(config, Proxy(), TranslateOptions())
    return served_routes(SnapshotCache().build({t: getattr(out, kind) for kind, t in KIND_TYPES.items()}))


def test_http_routes_are_named_by_virtual_service_and_rule_once_per_rule() -> None:
    routes = _served(CONFIG)
    # Two virtual hosts and two matches of "jason": copies of one rule share their clusters, shown once.
    assert set(routes) == {SPLIT, JASON}
    split = routes[SPLIT]
    assert (split.protocol, split.rule, split.config) == ("http", "split", ("VirtualService", "default", "reviews"))
    assert dict(split.weights) == {V1: 80, V2: 20}
    assert dict(routes[JASON].weights) == {V2: 1}
    # v2 is sent to by both rules; v1 is jason's mirror target as well as split's destination.
    assert dict(split.shared) == {V1: (f"mirror of {JASON}",), V2: (JASON,)}
    assert dict(routes[JASON].shared) == {V2: (SPLIT,)}


def _rq(at: float, v1: int, v2: int, *, fivexx: int = 0, cx: int = 0) -> ProxyReport:
    return ProxyReport(
        NODE,
        {
            V1: ClusterCounters(rq_total=v1, cx_total=cx, rq_active=2),
            V2: ClusterCounters(rq_total=v2, rq_5xx=fivexx, cx_total=cx),
        },
        at,
    )


def test_requests_not_connections_are_counted_and_shared_clusters_are_credited_whole() -> None:
    routes = _served(CONFIG)
    view = TrafficView(lambda _node: routes)
    view.on_report(_rq(1, 100, 100, cx=5))  # the baseline
    # 1000 requests by split (800/200) and 300 by jason (to v2, mirrored to v1) over 3 pooled connections.
    view.sink._latest[NODE] = _rq(2, 100 + 800 + 300, 100 + 200 + 300, fivexx=7, cx=8)
    by_name = {r["route"]: r for r in view.report([NODE])[0]["routes"]}
    split = by_name[SPLIT]
    assert split["protocol"] == "http"
    assert "connections" not in split
    assert split["config"] == {"kind": "VirtualService", "namespace": "default", "name": "reviews"}
    assert split["rule"] == "split"
    # Each route is credited with the whole growth of its clusters (Envoy counts per cluster, not per route) ...
    assert split["requests"] == 1100 + 500
    v1, v2 = split["destinations"]
    assert (v1["count"], v2["count"], v2["errors_5xx"], v1["active"]) == (1100, 500, 7, 2)
    assert v1["shared_with"] == [f"mirror of {JASON}"]
    assert v2["shared_with"] == [JASON]
    # ... so its shares are not its own: 69/31 against 80/20 is shown, never flagged.
    assert split["shared"]
    assert not split["mismatch"]
    assert by_name[JASON]["requests"] == 500


def test_an_unshared_http_split_is_flagged_when_off_and_not_when_right() -> None:
    jason_match = "[{headers: {end-user: {exact: jason}}}, {headers: {end-user: {exact: json}}}]"
    routes = _served(CONFIG.replace(jason_match, "[{port: 1}]"))
    assert set(routes) == {SPLIT}
    assert not routes[SPLIT].shared
    view = TrafficView(lambda _node: routes)
    view.on_report(_rq(1, 0, 0))
    view.sink._latest[NODE] = _rq(2, 795, 205, cx=1)
    (route,) = view.report([NODE])[0]["routes"]
    assert route["requests"] == 1000
    assert not route["mismatch"]
    low, high = route["destinations"][0]["interval"]
    assert low < 0.8 < high
    view.sink._latest[NODE] = _rq(2, 500, 500, cx=1000)
    (route,) = view.report([NODE])[0]["routes"]
    assert route["mismatch"]
    assert all(d["mismatch"] for d in route["destinations"])
