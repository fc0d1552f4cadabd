"""Weight shifts that never cut a live connection (the default ECDS mode), through a real Envoy.

50 long-lived connections stay open across 20 route changes — weights, a destination removed and added back —
while new connections follow each new split (binomial test). Envoy's own config dump says when a change is in
force, and its drain gauges when any cut a change could cause has happened.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import SAMPLES, Mesh
from .live import live_connections, routed_weights, wait_no_drains, wait_routed
from .traffic import assert_split, replies

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
