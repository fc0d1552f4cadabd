"""Drains, rollouts and the traffic view for a Gateway API route, through the Gateway's own real Envoy: the same
as for a VirtualService, with backends (Services) in place of subsets.

- `tcpmesh drain tcproute/tcp-echo --backend tcp-echo-v1`: after the route moved to v2 (v1 at weight 0), every
  old v1 connection closes, spread uniformly over the period; no v2 connection and none opened during the drain.
- `tcpmesh rollout tcproute/tcp-echo --to tcp-echo-v2`: under load, no failed connection and every long-lived
  connection kept (the connection-preserving mode); a backend that refuses connections fails the gate and the
  route is rolled back.
- `tcpmesh status --traffic` and /api/traffic name the TCPRoute and show its configured against observed weights.

SotW only: the drain, rollout and traffic e2e tests of the Istio API run both ADS protocols over the same EDS and
ECDS updates these make.
"""

from __future__ import annotations

import collections
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmesh.apiclient import request_json
from tcpmesh.cli import main
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

from .conftest import SAMPLES, Mesh, make_mesh
from .live import LiveConnections, live_connections, tcp, wait_no_drains, wait_routed
from .test_drain_e2e import Closes, assert_closed_uniformly
from .traffic import LoadLoop, assert_split, replies

pytestmark = pytest.mark.envoy

V1 = "outbound|9000||tcp-echo-v1.default.svc.cluster.local"
V2 = "outbound|9000||tcp-echo-v2.default.svc.cluster.local"
OLD = 60
NEW = 20
OVER = 12.0


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = make_mesh(tmp_path, "GRPC")
    try:
        yield m
    finally:
        m.stop()


def route_yaml(weights: dict[str, int]) -> str:
    refs = "\n".join(f"    - {{name: {name}, port: 9000, weight: {w}}}" for name, w in weights.items())
    return f"""apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: tcp-echo, namespace: default}}
spec:
  parentRefs: [{{name: tcp-echo-gateway, sectionName: tcp-31400}}]
  rules:
  - backendRefs:
{refs}
"""


def start(mesh: Mesh, tmp_path: Path, *extra: Path) -> tuple[EnvoyProcess, int]:
    mesh.start([*mesh.copy_samples([SAMPLES / "gateway-api-tcp-echo"], tmp_path / "in"), *extra])
    envoy, port = mesh.gateway_envoys[("default", "tcp-echo-gateway")], mesh.port(31400)
    envoy.wait_for_listener(f"0.0.0.0_{port}")
    return envoy, port


def apply(mesh: Mesh, tmp_path: Path, weights: dict[str, int]) -> None:
    path = tmp_path / "route.yaml"
    path.write_text(route_yaml(weights))
    result = mesh.apply(path)
    assert result["code"] == 200, result


def server(mesh: Mesh) -> list[str]:
    return ["--server", mesh.control_plane.http, "--token-file", str(mesh.control_plane.token_file)]


def stored_route(mesh: Mesh) -> dict[str, Any]:
    code, payload = request_json(
        mesh.control_plane.http,
        "/api/resources?kind=TCPRoute&name=tcp-echo&namespace=default&content=1",
        token=mesh.control_plane.token,
    )
    assert code == 200, payload
    return dict(payload["items"][0]["object"])


def test_drain_closes_the_backend_spread_over_the_period_and_nothing_else(mesh: Mesh, tmp_path: Path) -> None:
    envoy, port = start(mesh, tmp_path)
    apply(mesh, tmp_path, {"tcp-echo-v1": 50, "tcp-echo-v2": 50})
    wait_routed(envoy, f"0.0.0.0_{port}", {V1: 50, V2: 50})
    for sock in (socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)):
        sock.close()  # ECDS applies on the workers just after the main thread: let it settle
    live = LiveConnections(tcp(port), OLD)
    old_v1 = {i for i, b in enumerate(live.backends) if b == "one"}
    assert 10 <= len(old_v1) <= OLD - 10, live.backends  # 50/50 over 60: outside this once in ~10⁵ runs
    # The usual order: the route moves to v2 first (v1 weighs 0, so the conversion drops it from the served
    # route); the old v1 connections stay (connection-preserving) until the drain recycles them.
    apply(mesh, tmp_path, {"tcp-echo-v1": 0, "tcp-echo-v2": 100})
    wait_routed(envoy, f"0.0.0.0_{port}", {V2: 1})
    assert live.check("after-shift") == []
    try:
        with Closes(live) as closes:
            new: list[int] = []
            opener = threading.Timer(OVER / 2, lambda: new.extend(closes.add(LiveConnections(tcp(port), NEW))))
            begin = time.monotonic()
            opener.start()
            args = ["drain", "tcproute/tcp-echo", "--backend", "tcp-echo-v1", "--over", f"{OVER:g}s", "--step", "0.25s"]
            code = main([*args, *server(mesh)])
            opener.join()
            assert code == 0
            wait_until(lambda: old_v1 <= set(closes.closed_at), timeout=10, what="every old v1 connection to close")
        assert closes.problems == []
        assert set(closes.closed_at) == old_v1, {i: live.backends[i] for i in closes.closed_at}
        assert len(new) == NEW
        assert {live.backends[i] for i in new} == {"two"}
        for i in (i for i in range(len(live.socks)) if i not in old_v1):
            line = f"final-{i}"
            assert live._exchange(i, line) == f"{live.backends[i]} {line}", f"connection {i} ({live.backends[i]})"
        assert_closed_uniformly(envoy, [closes.closed_at[i] for i in sorted(old_v1)], begin, OVER)
    finally:
        live.close()
    annotations = stored_route(mesh)["metadata"]["annotations"]
    assert '"fraction": 1.0' in annotations["drain.tcpmesh.io/tcp-echo-v1"]


def test_rollout_shifts_the_backends_without_a_failed_or_cut_connection(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envoy, port = start(mesh, tmp_path)  # the sample routes everything to tcp-echo-v1, which has no weight
    with live_connections(port, 20) as live, LoadLoop(port, max_seconds=90) as load:
        load.wait_for(20)
        args = ["rollout", "tcproute/tcp-echo", "--to", "tcp-echo-v2", "--steps", "25,50,100", "--interval", "1s"]
        code = main([*args, *server(mesh)])
        out = capsys.readouterr().out
        assert code == 0, out
        load.wait_for(50)
        wait_no_drains(envoy)
        assert live.check("after-rollout") == []  # every long-lived connection kept, still on v1
        assert set(live.backends) == {"one"}
    assert load.failures == []
    assert load.ok["one hello"]
    assert load.ok["two hello"]
    for step in ("25%", "50%", "100%"):
        assert f"step {step}: applied and ACKed by every proxy" in out
    assert "rollout complete: tcp-echo sends 100% to tcp-echo-v2" in out
    _, shown = request_json(mesh.control_plane.http, "/api/rollouts", token=mesh.control_plane.token)
    assert (shown["rollouts"][0]["name"], shown["rollouts"][0]["state"], shown["rollouts"][0]["done"]) == (
        "TCPRoute default/tcp-echo",
        "complete",
        100,
    )
    assert_split(replies(port, 100), {"two hello": 1.0})
    assert main(["get", "tcproute", "tcp-echo", "-o", "yaml", *server(mesh)]) == 0
    got = yaml.safe_load(capsys.readouterr().out)
    assert got["spec"]["rules"][0]["backendRefs"] == [
        {"name": "tcp-echo-v1", "port": 9000, "weight": 0},  # kept at 0: `drain --backend tcp-echo-v1` still works
        {"name": "tcp-echo-v2", "port": 9000, "weight": 100},
    ]
    assert got["metadata"]["generation"] == 4  # created, then three steps
    assert envoy.stats(filter="listener_modified$").get("listener_manager.listener_modified", 0) == 0


def test_a_refusing_backend_fails_the_gate_and_rolls_back(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = free_port()  # tcp-echo-v3's only endpoint: nothing listens there
    extra = tmp_path / "in" / "v3.yaml"
    extra.parent.mkdir(parents=True)
    extra.write_text(f"""apiVersion: v1
kind: Service
metadata: {{name: tcp-echo-v3, namespace: default}}
spec:
  selector: {{app: tcp-echo, version: v3}}
  ports: [{{name: tcp, port: 9000}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: tcp-echo-v3, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: tcp-echo, version: v3}}
  ports: {{tcp: {dead}}}
""")
    _, port = start(mesh, tmp_path, extra)
    with LoadLoop(port, max_seconds=90) as load:
        load.wait_for(20)
        args = ["rollout", "tcproute/tcp-echo", "--to", "tcp-echo-v3", "--steps", "50,100", "--interval", "5s"]
        code = main([*args, "--max-failure-rate", "1%", *server(mesh)])
        out = capsys.readouterr().out
    assert code == 1, out
    assert "gate failed at 50%: outbound|9000||tcp-echo-v3.default.svc.cluster.local:" in out
    assert "connect failures in" in out
    assert 'rolled back to the starting weights: [{"tcp-echo-v1": 1}]' in out
    assert load.failures  # the bad step did refuse connections: that is what the gate saw
    assert stored_route(mesh)["spec"]["rules"][0]["backendRefs"] == [{"name": "tcp-echo-v1", "port": 9000}]
    mesh.wait_synced()
    assert_split(replies(port, 100), {"one hello": 1.0})


def test_traffic_view_names_the_tcproute_with_configured_and_observed_weights(mesh: Mesh, tmp_path: Path) -> None:
    envoy, port = start(mesh, tmp_path)
    apply(mesh, tmp_path, {"tcp-echo-v1": 70, "tcp-echo-v2": 30})
    wait_routed(envoy, f"0.0.0.0_{port}", {V1: 70, V2: 30})
    mesh.wait_synced(generation=2)

    def route(connections: int) -> dict[str, Any] | None:
        _, payload = request_json(mesh.control_plane.http, "/api/traffic", token=mesh.control_plane.token)
        for proxy in payload["proxies"]:
            for r in proxy["routes"]:
                if r["config"] and r["config"]["kind"] == "TCPRoute" and r["since"] and r["connections"] >= connections:
                    return dict(r)
        return None

    wait_until(lambda: route(0), timeout=15, what="the TCPRoute's window to open")
    n = 600
    counts = replies(port, n)
    shown = wait_until(lambda: route(n), timeout=15, what="Envoy's report of the connections")
    assert shown["config"] == {"kind": "TCPRoute", "namespace": "default", "name": "tcp-echo"}
    assert shown["connections"] == n
    by_cluster = {d["cluster"]: d for d in shown["destinations"]}
    assert (by_cluster[V1]["configured"], by_cluster[V2]["configured"]) == (0.7, 0.3)
    assert by_cluster[V1]["count"] == counts["one hello"]
    assert by_cluster[V2]["count"] == counts["two hello"]
    assert by_cluster[V1]["observed"] == pytest.approx(counts["one hello"] / n, abs=1e-4)  # rounded to 4 places
    assert_split(collections.Counter({"one": by_cluster[V1]["count"], "two": by_cluster[V2]["count"]}),
                 {"one": 0.7, "two": 0.3})  # fmt: skip
    assert not shown["mismatch"]
    out = subprocess.run(
        [sys.executable, "-m", "tcpmesh", "status", "--traffic", *server(mesh)],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    assert f"(TCPRoute default/tcp-echo): {n} new connections" in out
    assert V1 in out
    assert "70.0%" in out
