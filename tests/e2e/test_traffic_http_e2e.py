"""The traffic view of an HTTP route through a real Envoy: its per-cluster request counters, streamed to the
control plane, against the 80/20 weights of seed 001's reviews route on a gateway."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.probe import http_probe, wilson_interval
from tcpmesh.runtime.polling import wait_until
from tcpmesh.traffic import FLAG_Z

from .conftest import SAMPLES, Mesh
from .traffic import assert_split

pytestmark = pytest.mark.envoy

SAMPLE = SAMPLES / "bookinfo-reviews"
N = 1000
V1 = "outbound|9080|v1|reviews.default.svc.cluster.local"
V2 = "outbound|9080|v2|reviews.default.svc.cluster.local"


def weighted_route(mesh: Mesh) -> dict[str, Any] | None:
    """The gateway's 80/20 reviews route as /api/traffic shows it, once it is served."""
    code, payload = request_json(mesh.control_plane.http, "/api/traffic", token=mesh.control_plane.token)
    assert code == 200, payload
    for proxy in payload["proxies"]:
        for route in proxy["routes"]:
            if route["protocol"] == "http" and len(route["destinations"]) == 2:
                return dict(route)
    return None


def test_observed_request_split_matches_80_20_and_is_flagged_nowhere(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(mesh.copy_samples([SAMPLE / "reviews-services.yaml", SAMPLE / "reviews-gateway.yaml"], tmp_path / "in"))
    result = mesh.apply(SAMPLE / "reviews-80-20.yaml")
    assert result["code"] == 200, result
    mesh.wait_synced(generation=2)
    # The window opens at the first stats report after the ACK: wait for it before counting.
    opened = wait_until(lambda: (r := weighted_route(mesh)) and r["since"] and r, timeout=15, what="the window")
    assert opened["requests"] == 0
    tally = http_probe("127.0.0.1", mesh.port(8080), N, path="/reviews/0", timeout=5, budget=120)
    assert not tally.failures, tally.failures
    # A report flushed while the last request was in flight counts it but shows it active: wait for a later one.
    route = wait_until(
        lambda: (
            (r := weighted_route(mesh))
            and r["requests"] >= N
            and all(d["active"] == 0 for d in r["destinations"])
            and r
        ),
        timeout=15,
        what="Envoy's report",
    )
    assert route["requests"] == N  # every request counted once, none from before the window
    assert route["route"] == f"http.{mesh.port(8080)} default/reviews #1"  # the rule has no name
    assert route["config"] == {"kind": "VirtualService", "namespace": "default", "name": "reviews"}
    assert not route["shared"]  # the subsets' clusters are this route's alone on the gateway
    by_cluster = {d["cluster"]: d for d in route["destinations"]}
    assert by_cluster[V1]["count"] == tally.replies["v1"]
    assert by_cluster[V2]["count"] == tally.replies["v2"]
    for cluster, share in ((V1, 0.8), (V2, 0.2)):
        d = by_cluster[cluster]
        assert d["configured"] == share
        assert d["observed"] == d["count"] / N
        assert d["errors_5xx"] == 0
        assert d["active"] == 0  # the probe waited for every reply
        # The printed interval is the observed count's 95 % Wilson interval, and the configured share lies in
        # the flag's interval (chance leaves it 1 in 10 000 windows; the 95 % one would miss 1 run in 20).
        assert d["interval"] == [round(x, 4) for x in wilson_interval(d["count"], N)]
        low, high = wilson_interval(d["count"], N, FLAG_Z)
        assert low <= share <= high
        assert not d["mismatch"]
    assert_split(collections.Counter(tally.replies), {"v1": 0.8, "v2": 0.2})
    assert not route["mismatch"]
    out = subprocess.run(
        [sys.executable, "-m", "tcpmesh", "status", "--traffic", "--server", mesh.control_plane.http,
         "--token-file", str(mesh.control_plane.token_file)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert f"route {route['route']} (VirtualService default/reviews): {N} requests since version" in out
    assert "MISMATCH" not in out
    assert "outside" not in out
    assert V1 in out
    assert "80.0%" in out
