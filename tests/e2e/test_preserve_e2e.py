"""Weight shifts that never cut a live connection (the default ECDS mode), through a real Envoy.

50 long-lived connections stay open across 20 route changes — weights, a destination removed and added back —
while new connections follow each new split (binomial test). Envoy's own config dump says when a change is in
force, and its drain gauges when any cut a change could cause has happened.
"""

from __future__ import annotations

import collections
import socket
from pathlib import Path

import pytest

from tcpmesh.runtime.ports import free_port

from .backends import Backend, make_pki, tls_exchange
from .conftest import SAMPLES, Mesh
from .live import live_connections, routed_weights, tcp, wait_no_drains, wait_routed
from .test_sidecar_e2e import INPUTS as MESH_INPUTS
from .test_sidecar_e2e import SERVICES as MESH_SERVICES
from .test_sidecar_e2e import service_address, start_sidecar
from .test_sidecar_e2e import sidecar_mesh as sidecar_mesh  # a fixture: used by its name
from .test_tls_e2e import sni_passthrough
from .traffic import assert_split, exchange, replies

pytestmark = pytest.mark.envoy

LIVE = 50
PER_STEP = 150  # new connections per step: a 20% share then has a standard deviation of ~3 points
V1 = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
V2 = "outbound|9000|v2|tcp-echo.default.svc.cluster.local"

# (v1 weight, v2 weight); None leaves that destination out of the route.
STEPS: list[tuple[int | None, int | None]] = [
    (80, 20), (20, 80), (0, 100), (None, 100), (50, 50), (90, 10), (10, 90), (100, None), (70, 30), (30, 70),
    (60, 40), (40, 60), (100, 0), (25, 75), (75, 25), (None, 100), (5, 95), (95, 5), (50, 50), (100, None),
]  # fmt: skip


def route_yaml(port: int, v1: int | None, v2: int | None) -> str:
    dests = [(s, w) for s, w in (("v1", v1), ("v2", v2)) if w is not None]
    lines = [
        "apiVersion: networking.istio.io/v1",
        "kind: VirtualService",
        "metadata:",
        "  name: tcp-echo",
        "spec:",
        "  hosts: ['*']",
        "  gateways: [tcp-echo-gateway]",
        "  tcp:",
        "  - match:",
        f"    - port: {port}",
        "    route:",
    ]
    for subset, weight in dests:
        lines += [
            "    - destination:",
            "        host: tcp-echo",
            "        port: {number: 9000}",
            f"        subset: {subset}",
        ]
        if len(dests) > 1:
            lines.append(f"      weight: {weight}")
    return "\n".join(lines) + "\n"


def expected_routing(v1: int | None, v2: int | None) -> tuple[dict[str, int], dict[str, float]]:
    """What Envoy's tcp_proxy should hold (zero weights dropped) and the reply shares that follow."""
    weights = {c: w for c, w in ((V1, v1), (V2, v2)) if w}
    if len(weights) == 1 and (v1 is None or v2 is None):
        weights = dict.fromkeys(weights, 1)  # a single destination is `cluster:`, not a split
    total = sum(weights.values())
    shares = {"one hello": weights.get(V1, 0) / total, "two hello": weights.get(V2, 0) / total}
    return weights, shares


def shift(mesh: Mesh, tmp_path: Path, step: int, v1: int | None, v2: int | None) -> dict[str, float]:
    path = tmp_path / f"step-{step:02d}.yaml"
    path.write_text(route_yaml(31400, v1, v2))
    result = mesh.apply(path)
    assert result["code"] == 200, result
    weights, shares = expected_routing(v1, v2)
    wait_routed(mesh.envoys[0], f"0.0.0.0_{mesh.port(31400)}", weights)
    return shares


def test_weight_changes_keep_every_live_connection(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "input"))
    envoy, port = mesh.envoys[0], mesh.port(31400)
    with live_connections(port, LIVE) as live:
        assert set(live.backends) == {"one"}
        for step, (v1, v2) in enumerate(STEPS, start=1):
            shares = shift(mesh, tmp_path, step, v1, v2)
            replies(port, 3)  # ECDS applies on the workers just after the main thread: let it settle
            assert_split(replies(port, PER_STEP), shares)
            wait_no_drains(envoy)
            assert live.check(f"step-{step}") == [], f"after step {step} ({v1}/{v2})"
        stats = envoy.stats(filter="listener_manager.listener_modified")
    # Not one listener update in 20 route changes: only the ECDS filter configs changed.
    assert stats.get("listener_manager.listener_modified", 0) == 0, stats


def test_inline_weights_serve_istiods_form(tmp_path: Path, ads_api_type: str) -> None:
    """--inline-weights: the tcp_proxy sits in the listener, so a shift is a listener update (and a drain)."""
    from .conftest import make_mesh

    mesh = make_mesh(tmp_path, ads_api_type, ("--inline-weights",))
    try:
        mesh.start(mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "input"))
        envoy = mesh.envoys[0]
        assert routed_weights(envoy, f"0.0.0.0_{mesh.port(31400)}") == {V1: 1}
        shares = shift(mesh, tmp_path, 1, 80, 20)
        assert_split(replies(mesh.port(31400), PER_STEP), shares)
        assert envoy.stats(filter="listener_manager.listener_modified")["listener_manager.listener_modified"] >= 1
    finally:
        mesh.stop()


def passthrough_config(port: int, a: Backend, b: Backend, weight_a: int) -> str:
    """One SNI chain (a.example.com) split between two TLS backends; the weights are the only thing that moves."""
    route = (
        f"[{{destination: {{host: backend-a.internal, port: {{number: {a.port}}}}}, weight: {weight_a}}},"
        f" {{destination: {{host: backend-b.internal, port: {{number: {b.port}}}}}, weight: {100 - weight_a}}}]"
    )
    return sni_passthrough(port, f"  - match: [{{sniHosts: [a.example.com]}}]\n    route: {route}\n", a, b)


TLS_PER_STEP = 60  # Python's TLS handshakes are the slow part here (~40 ms each on two cores)


def test_tls_passthrough_weight_changes_keep_live_connections(mesh: Mesh, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", ["a.example.com"])
    a, b = Backend("backend-a", pki.server_context()), Backend("backend-b", pki.server_context())
    client = pki.client_context()
    port = free_port()
    source = tmp_path / "input" / "config.yaml"
    source.parent.mkdir(parents=True)
    source.write_text(passthrough_config(port, a, b, 100))
    try:
        mesh.start([source])
        envoy = mesh.envoys[0]
        where = f"0.0.0.0_{port}~tcp_proxy~sni=a.example.com"
        cluster_a, cluster_b = (f"outbound|{x.port}||backend-{n}.internal" for x, n in ((a, "a"), (b, "b")))
        wait_routed(envoy, where, {cluster_a: 100})

        def connect() -> socket.socket:
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            return client.wrap_socket(raw, server_hostname="a.example.com")

        with live_connections(connect, 20) as live:
            assert set(live.backends) == {"backend-a"}
            for step, weight_a in enumerate((80, 20, 0, 100), start=1):
                path = tmp_path / f"step-{step}.yaml"
                path.write_text(passthrough_config(port, a, b, weight_a))
                assert mesh.apply(path)["code"] == 200
                wait_routed(envoy, where, {c: w for c, w in ((cluster_a, weight_a), (cluster_b, 100 - weight_a)) if w})
                [tls_exchange(port, "a.example.com", client) for _ in range(3)]  # let the workers catch up
                counts = collections.Counter(tls_exchange(port, "a.example.com", client) for _ in range(TLS_PER_STEP))
                assert_split(counts, {"backend-a hello": weight_a / 100, "backend-b hello": 1 - weight_a / 100})
                wait_no_drains(envoy)
                assert live.check(f"step-{step}") == [], f"after step {step} ({weight_a}/{100 - weight_a})"
    finally:
        a.kill()
        b.kill()


def test_sidecar_weight_changes_keep_live_connections(
    sidecar_mesh: Mesh,
    tmp_path: Path,
) -> None:
    sidecar_mesh.start([MESH_SERVICES, MESH_INPUTS / "mesh-20-80.yaml"], with_envoy=False)
    address = service_address(sidecar_mesh)
    sidecar = start_sidecar(sidecar_mesh, address, app="sleep")
    mesh_vs = (MESH_INPUTS / "mesh-20-80.yaml").read_text().split("---", 1)[1]
    with live_connections(tcp(9000, address), 50) as live:
        assert set(live.backends) == {"one", "two"}  # 50 connections at 20/80 reach both (p of not: 0.8^50, 1e-5)
        for step, v1 in enumerate((80, 0, 50, 20), start=1):
            path = tmp_path / f"mesh-step-{step}.yaml"
            text = mesh_vs.replace("weight: 20", "weight: V1").replace("weight: 80", "weight: V2")
            path.write_text(text.replace("V1", str(v1)).replace("V2", str(100 - v1)))
            assert sidecar_mesh.apply(path)["code"] == 200
            weights = {c: w for c, w in ((V1, v1), (V2, 100 - v1)) if w}
            wait_routed(sidecar, f"{address}_9000", weights)
            [exchange(9000, host=address) for _ in range(3)]  # let the workers catch up
            counts = collections.Counter(exchange(9000, host=address) for _ in range(PER_STEP))
            assert_split(counts, {"one hello": v1 / 100, "two hello": 1 - v1 / 100})
            wait_no_drains(sidecar)
            assert live.check(f"step-{step}") == [], f"after step {step}"
