"""The snapshot check on a sidecar's HTTP resources: every listener's RDS name is served and every route's
cluster exists (the block_all direct response names none), whole and for a changed-only route config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tcpmesh.model.config import load_config
from tcpmesh.snapshot_check import check_changed, check_snapshot
from tcpmesh.translation import build_snapshot
from tcpmesh.translator import EnvoyResources, Proxy, TranslateOptions, translate
from tcpmesh.xds.cache import SnapshotCache
from tcpmesh.xds.types import ROUTE_TYPE
from tests.references import clusters_named

ROOT = Path(__file__).resolve().parents[2]
REVIEWS = ROOT / "samples" / "bookinfo-reviews"
SLEEP = Proxy.sidecar("default", (("app", "sleep"),))


def _resources(*paths: Path) -> EnvoyResources:
    config, problems = load_config(list(paths), "default")
    assert not [p for p in problems if p.is_error]
    return translate(config, SLEEP, TranslateOptions())


def test_sidecar_http_snapshots_are_consistent() -> None:
    cache = SnapshotCache()
    for paths in ([REVIEWS / "reviews-services.yaml"], [ROOT / "samples" / "egress"]):
        assert check_snapshot(build_snapshot(cache, _resources(*paths))) == []


def test_a_route_step_is_checked_by_its_route_config_alone() -> None:
    """The VirtualService step changes route config ``9080`` only; the changed-only check sees its clusters."""
    base = _resources(REVIEWS / "reviews-services.yaml")
    step = _resources(REVIEWS / "reviews-services.yaml", REVIEWS / "mesh" / "reviews-80-20.yaml")
    assert step.listeners == base.listeners
    assert step.clusters == base.clusters
    cache = SnapshotCache()
    snapshot = build_snapshot(cache, step)
    assert check_changed(snapshot, {ROUTE_TYPE: ["9080"]}) == []
    (config,) = step.routes
    bad = type(config)()
    bad.CopyFrom(config)
    bad.virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].name = "NoSuchCluster"
    # As the translator would report it: the route config now names the missing cluster.
    refs = {**step.references, "routes": {"9080": {"clusters": frozenset(clusters_named(bad))}}}
    broken = build_snapshot(cache, dataclasses.replace(step, routes=(bad,), references=refs))
    assert [(i.kind, i.name) for i in check_changed(broken, {ROUTE_TYPE: ["9080"]})] == [("RouteConfiguration", "9080")]
