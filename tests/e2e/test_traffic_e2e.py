"""The traffic view through a real Envoy: its own counters, streamed to the control plane, against the weights."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

from .conftest import SAMPLES, Mesh
from .traffic import assert_split, exchange, replies

pytestmark = pytest.mark.envoy

N = 1000
V1 = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
V2 = "outbound|9000|v2|tcp-echo.default.svc.cluster.local"


def traffic(mesh: Mesh) -> dict[str, Any]:
    code, payload = request_json(mesh.control_plane.http, "/api/traffic", token=mesh.control_plane.token)
    assert code == 200, payload
    return dict(payload)


def route_with(mesh: Mesh, connections: int) -> dict[str, Any] | None:
    """The gateway's route once its window counts at least ``connections`` new connections."""
    for proxy in traffic(mesh)["proxies"]:
        for route in proxy["routes"]:
            if route["connections"] >= connections:
                return dict(route)
    return None


def test_observed_split_matches_80_20_within_its_interval(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(
        mesh.copy_samples([SAMPLES / "tcp-echo", SAMPLES / "tcp-echo-shift/tcp-echo-20-v2.yaml"], tmp_path / "in")
    )
    # The window opens at the first stats report after the ACK: wait for it before counting.
    wait_until(lambda: route_with(mesh, 0) and route_with(mesh, 0)["since"], timeout=15, what="the window to open")
    counts = replies(mesh.port(31400), N)
    route = wait_until(lambda: route_with(mesh, N), timeout=15, what="Envoy's report of the connections")
    assert route["connections"] == N  # every connection counted once, none from before the window
    by_cluster = {d["cluster"]: d for d in route["destinations"]}
    assert by_cluster[V1]["count"] == counts["one hello"]
    assert by_cluster[V2]["count"] == counts["two hello"]
    for cluster, share in ((V1, 0.8), (V2, 0.2)):
        d = by_cluster[cluster]
        assert d["configured"] == share
        assert d["observed"] == d["count"] / N
        assert d["connect_fail"] == 0
    assert_split(
        collections.Counter({"one": by_cluster[V1]["count"], "two": by_cluster[V2]["count"]}), {"one": 0.8, "two": 0.2}
    )
    assert not route["mismatch"]  # flagged only beyond chance (1e-4): a correct split is flagged nowhere
    out = subprocess.run(
        [sys.executable, "-m", "tcpmesh", "status", "--traffic", "--server", mesh.control_plane.http,
         "--token-file", str(mesh.control_plane.token_file)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert f"{N} new connections" in out
    assert V1 in out
    assert "80.0%" in out


def test_a_refusing_destination_shows_connect_failures(mesh: Mesh, tmp_path: Path) -> None:
    dead = free_port()  # nothing listens here
    config = tmp_path / "in" / "dead.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: dead, namespace: default}}
spec:
  hosts: [dead.internal]
  location: MESH_EXTERNAL
  ports: [{{number: {dead}, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tcp-echo, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [tcp-echo-gateway]
  tcp:
  - match: [{{port: {mesh.port(31400)}}}]
    route:
    - {{destination: {{host: tcp-echo, port: {{number: 9000}}, subset: v1}}, weight: 50}}
    - {{destination: {{host: dead.internal, port: {{number: {dead}}}}}, weight: 50}}
""")
    mesh.start([*mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "in"), config])
    wait_until(lambda: route_with(mesh, 0) and route_with(mesh, 0)["since"], timeout=15, what="the window to open")
    refused = 0
    for _ in range(100):
        try:
            refused += exchange(mesh.port(31400)) == ""
        except OSError:
            refused += 1  # Envoy resets the client when the upstream connect fails
    dead_cluster = f"outbound|{dead}||dead.internal"
    route = wait_until(lambda: route_with(mesh, 100), timeout=15, what="Envoy's report of the connections")
    by_cluster = {d["cluster"]: d for d in route["destinations"]}
    assert 20 < refused < 80  # about half go to the dead destination
    failed = wait_until(
        lambda: route_with(mesh, 100)["destinations"][1]["connect_fail"] or None, timeout=15, what="connect failures"
    )
    assert failed == refused
    assert by_cluster[dead_cluster]["count"] == refused
    assert by_cluster["outbound|9000|v1|tcp-echo.default.svc.cluster.local"]["connect_fail"] == 0
