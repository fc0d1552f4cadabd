"""ServedRoutes derives the routes of a patched snapshot from the last result: equal to computing them whole
(`shared` included, across routes that gain or lose a common cluster), and unchanged routes keep their identity
(TrafficView then skips them, so a proxy's stats report after one edit reads one route, not all)."""

from __future__ import annotations

from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from tcpmesh.metricsink import ClusterCounters, ProxyReport
from tcpmesh.traffic import ServedRoutes, TrafficView, served_routes
from tcpmesh.xds.cache import Snapshot, SnapshotCache
from tcpmesh.xds.types import EXTENSION_CONFIG_TYPE

N = 40


def config(i: int, weights: dict[str, int]) -> tuple[str, extension_pb2.TypedExtensionConfig, bytes]:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=f"vs{i}.default")
    for cluster, weight in weights.items():
        proxy.weighted_clusters.clusters.add(name=cluster, weight=weight)
    message = extension_pb2.TypedExtensionConfig(name=f"0.0.0.0_{20000 + i}~tcp_proxy")
    message.typed_config.Pack(proxy)
    return message.name, message, message.SerializeToString(deterministic=True)


def split(i: int) -> dict[str, int]:
    return {f"outbound|{i}|v1|svc{i}": 90, f"outbound|{i}|v2|svc{i}": 10}


def base(cache: SnapshotCache) -> Snapshot:
    return cache.build_serialized({EXTENSION_CONFIG_TYPE: [config(i, split(i)) for i in range(N)]})


def test_a_patched_snapshot_gives_what_a_whole_computation_gives() -> None:
    cache = SnapshotCache()
    before = base(cache)
    served = ServedRoutes()
    first = served(before)
    # vs3 now also sends to vs4's v1 cluster: both gain a `shared`; vs7 is removed; vs40 is new.
    edit = {**split(3), "outbound|4|v1|svc4": 5}
    after = cache.patch(
        before, {EXTENSION_CONFIG_TYPE: ([config(3, edit), config(N, split(N))], ["0.0.0.0_20007~tcp_proxy"])}
    )
    second = served(after)
    assert second == served_routes(after)  # a fresh ServedRoutes computes it whole
    assert second["0.0.0.0_20004~tcp_proxy"].shared == {"outbound|4|v1|svc4": ("0.0.0.0_20003~tcp_proxy",)}
    assert "0.0.0.0_20007~tcp_proxy" not in second
    assert second["0.0.0.0_20000~tcp_proxy"] is first["0.0.0.0_20000~tcp_proxy"]  # derived, not rebuilt
    # And back: vs3 drops the shared cluster, vs4's `shared` goes again.
    again = cache.patch(after, {EXTENSION_CONFIG_TYPE: ([config(3, split(3))], ())})
    third = served(again)
    assert third == served_routes(again)
    assert third["0.0.0.0_20004~tcp_proxy"].shared == {}
    assert first is not second is not third


def test_traffic_view_opens_a_window_for_a_changed_route_only() -> None:
    cache = SnapshotCache()
    before = base(cache)
    served = ServedRoutes()
    current = {"routes": served(before)}
    view = TrafficView(lambda node_id: current["routes"])
    counters = {c: ClusterCounters(cx_total=5) for i in range(N) for c in split(i)}
    view.on_report(ProxyReport(node_id="gw", at=1.0, clusters=counters))
    windows = dict(view._windows)
    assert len(windows) == N
    after = cache.patch(before, {EXTENSION_CONFIG_TYPE: ([config(3, {"outbound|3|v1|svc3": 100})], ())})
    current["routes"] = served(after)
    view.on_report(ProxyReport(node_id="gw", at=2.0, clusters=counters))
    reopened = [k for k, w in view._windows.items() if windows[k] is not w]
    assert reopened == [("gw", "0.0.0.0_20003~tcp_proxy")]
    assert view._windows[("gw", "0.0.0.0_20003~tcp_proxy")].since == 2.0


def test_several_edits_between_two_reports_are_derived_too() -> None:
    cache = SnapshotCache()
    before = base(cache)
    served = ServedRoutes()
    first = served(before)
    one = cache.patch(before, {EXTENSION_CONFIG_TYPE: ([config(1, {"outbound|2|v1|svc2": 1})], ())})
    two = cache.patch(one, {EXTENSION_CONFIG_TYPE: ([config(5, split(6))], ["0.0.0.0_20009~tcp_proxy"])})
    assert two.get_type(EXTENSION_CONFIG_TYPE).base is not before.get_type(EXTENSION_CONFIG_TYPE).entries
    routes = served(two)  # no lineage back to `before`: the changed entries are found by identity
    assert routes == served_routes(two)
    assert routes["0.0.0.0_20000~tcp_proxy"] is first["0.0.0.0_20000~tcp_proxy"]
    assert routes["0.0.0.0_20006~tcp_proxy"].shared == {
        "outbound|6|v1|svc6": ("0.0.0.0_20005~tcp_proxy",),
        "outbound|6|v2|svc6": ("0.0.0.0_20005~tcp_proxy",),
    }


def test_listeners_that_name_no_cluster_are_not_parsed() -> None:
    """A listener whose tcp_proxies are ECDS configs names filter configs, not clusters: it holds no inline
    route, and the first report at 10 000 listeners must not parse them all (a snapshot mirrored from the worker
    holds bytes; a message is parsed on first use)."""
    from tcpmesh.xds.cache import TypePatch, _wire
    from tcpmesh.xds.types import CLUSTER_TYPE, LISTENER_TYPE
    from tests.xds.ads_testkit import listener

    cache = SnapshotCache()
    built = cache.build(
        {EXTENSION_CONFIG_TYPE: [config(0, split(0))[1]], LISTENER_TYPE: [listener("ecds", 20000, "x")]},
        {LISTENER_TYPE: {"ecds": {EXTENSION_CONFIG_TYPE: frozenset(["0.0.0.0_20000~tcp_proxy"])}}},
    )
    inline = cache.build(
        {LISTENER_TYPE: [listener("inline", 20001, "outbound|1|v1|svc1")]},
        {LISTENER_TYPE: {"inline": {CLUSTER_TYPE: frozenset(["outbound|1|v1|svc1"])}}},
    )
    patches = {
        t: TypePatch(tuple(_wire(e) for e in ts.entries.values()), full=True)
        for snap in (built, inline)
        for t, ts in snap.items()
        if t != LISTENER_TYPE or snap is built
    }
    patches[LISTENER_TYPE] = TypePatch(
        tuple(_wire(e) for s in (built, inline) for e in s.get_type(LISTENER_TYPE).entries.values()), full=True
    )
    mirrored = SnapshotCache().apply(None, patches)  # bytes only, as the serving process holds them
    routes = served_routes(mirrored)
    assert set(routes) == {"0.0.0.0_20000~tcp_proxy", "inline#0"}
    entries = mirrored.get_type(LISTENER_TYPE).entries
    assert entries["ecds"].wire.message is None  # never parsed
    assert entries["inline"].wire.message is not None
