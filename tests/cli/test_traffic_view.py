"""The traffic view's window and flag, fed with reports as the metrics sink gives them."""

from __future__ import annotations

from tcpmesh.metricsink import ClusterCounters, ProxyReport
from tcpmesh.traffic import Route, TrafficView

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
