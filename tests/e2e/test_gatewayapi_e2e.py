"""Gateway API (Gateway + TCPRoute / TLSRoute) through a real Envoy: each Gateway API Gateway gets its own Envoy,
labelled gateway.networking.k8s.io/gateway-name=<name>, and the routes' splits, refusals and SNI matching are
measured on real connections. The cases mirror the Gateway API conformance suite (conformance/tests/tcproute-*,
tlsroute-*), adapted to tcpmesh's echo pods and loopback ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.commands.client import request_json
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports

from .backends import closed_without_reply
from .conftest import SAMPLES, Mesh, make_mesh
from .traffic import assert_split, exchange, replies

pytestmark = pytest.mark.envoy

NS = "gateway-conformance-infra"


@pytest.fixture
def gmesh(tmp_path: Path) -> Iterator[Mesh]:
    """A mesh with a SotW Envoy (the Istio-API tests already run both protocols over the same translator)."""
    m = make_mesh(tmp_path, "GRPC")
    try:
        yield m
    finally:
        m.stop()


def echo(name: str, namespace: str = NS, port: int = 3000) -> str:
    """A Service and a one-replica Deployment whose pod answers ``<name> <line>``."""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: tcp, port: {port}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: echo, image: docker.io/istio/tcp-echo-server:1.2, args: ["{port}", "{name}"]}}]
"""


def gateway(name: str, *listeners: tuple[str, int]) -> str:
    items = "\n".join(
        f"  - {{name: {ln}, protocol: TCP, port: {port}, allowedRoutes: {{kinds: [{{kind: TCPRoute}}]}}}}"
        for ln, port in listeners
    )
    return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {NS}}}
spec:
  gatewayClassName: istio
  listeners:
{items}
"""


def tcp_route(name: str, parent: str, backends: list[str], *, section: str = "", port: int = 0) -> str:
    ref = f"name: {parent}" + (f", sectionName: {section}" if section else "") + (f", port: {port}" if port else "")
    return f"""---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: {name}, namespace: {NS}}}
spec:
  parentRefs: [{{{ref}}}]
  rules:
  - backendRefs: [{", ".join(backends)}]
"""


def start(mesh: Mesh, tmp_path: Path, text: str) -> None:
    path = tmp_path / "input" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mesh.start([path])


def envoy_of(mesh: Mesh, gateway_name: str, namespace: str = NS) -> EnvoyProcess:
    return mesh.gateway_envoys[(namespace, gateway_name)]


def listening(envoy: EnvoyProcess, port: int) -> int:
    envoy.wait_for_listener(f"0.0.0.0_{port}")
    return port


def first_reply(port: int) -> str:
    """The first connection may race the last EDS update; later ones must not fail."""
    return wait_until(lambda: exchange(port), timeout=15, what=f"a reply on {port}", ignore=(OSError,))


def get_object(mesh: Mesh, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
    query = f"/api/resources?kind={kind}&name={name}&namespace={namespace}&content=1"
    code, payload = request_json(mesh.control_plane.http, query, token=mesh.control_plane.token)
    assert code == 200, payload
    (item,) = payload["items"]
    return dict(item["object"])


def conditions(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def refused(port: int) -> bool:
    """The connection is accepted by Envoy and closed without any reply (no cluster behind the route)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"hello\n")
        return closed_without_reply(sock)


# --- the seeds' tcp-echo shift in Gateway API form ------------------------------------------------------------


def test_tcp_echo_shift_as_gateway_and_tcproute(mesh: Mesh, tmp_path: Path) -> None:
    """Seed 000's 100/0 → 80/20 → 20/80, written as Gateway + TCPRoute (Istio's samples/tcp-echo/gateway-api):
    the same splits as the Istio-API version, on the Gateway's own Envoy, with a live connection kept open
    across both shifts (the connection-preserving ECDS mode serves the converted route unchanged)."""
    mesh.start(mesh.copy_samples([SAMPLES / "gateway-api-tcp-echo"], tmp_path / "in"))
    envoy = envoy_of(mesh, "tcp-echo-gateway", "default")
    port = listening(envoy, mesh.port(31400))
    assert first_reply(port) == "one hello"
    assert_split(replies(port, 100), {"one hello": 1.0})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as live:
        reader = live.makefile("rb")
        live.sendall(b"before\n")
        assert reader.readline() == b"one before\n"
        for generation, (sample, v1) in enumerate((("tcp-echo-20-v2.yaml", 0.8), ("tcp-echo-80-v2.yaml", 0.2)), 2):
            result = mesh.apply(SAMPLES / "gateway-api-tcp-echo-shift" / sample)
            assert result["code"] == 200, result
            mesh.wait_synced(generation=generation)
            assert_split(replies(port, 400), {"one hello": v1, "two hello": 1 - v1})
            live.sendall(b"still\n")
            assert reader.readline() == b"one still\n"  # the live connection stays on v1
    assert (
        envoy.admin.stats(filter="^listener_manager.listener_modified$").get("listener_manager.listener_modified", 0)
        == 0
    )


# --- TCPRoute conformance cases --------------------------------------------------------------------------------


def test_weighted_routing_70_30_0(gmesh: Mesh, tmp_path: Path) -> None:
    """tcproute-weighted-routing: 70/30/0 within ±5 % (and a binomial test) over 600 connections; the weight-0
    backend gets none."""
    port = gmesh.port(31400)
    backends = [f"{{name: tcp-backend-v{i}, port: 3000, weight: {w}}}" for i, w in ((1, 70), (2, 30), (3, 0))]
    text = (
        echo("tcp-backend-v1")
        + echo("tcp-backend-v2")
        + echo("tcp-backend-v3")
        + gateway("tcp-weighted-gateway", ("tcp", port))
        + tcp_route("tcp-weighted-route", "tcp-weighted-gateway", backends, section="tcp")
    )
    start(gmesh, tmp_path, text)
    listening(envoy_of(gmesh, "tcp-weighted-gateway"), port)
    first_reply(port)
    n = 600
    counts = replies(port, n)
    assert_split(counts, {"tcp-backend-v1 hello": 0.7, "tcp-backend-v2 hello": 0.3, "tcp-backend-v3 hello": 0.0})
    assert abs(counts["tcp-backend-v1 hello"] / n - 0.7) <= 0.05
    assert abs(counts["tcp-backend-v2 hello"] / n - 0.3) <= 0.05
    route = get_object(gmesh, "tcproute", "tcp-weighted-route")
    (parent,) = route["status"]["parents"]
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}


def test_invalid_and_cross_namespace_backends_refuse_connections(gmesh: Mesh, tmp_path: Path) -> None:
    """tcproute-invalid-backendref-nonexistent, -invalid-cross-namespace-backend-ref and -reference-grant: a
    missing backend, or a cross-namespace one no ReferenceGrant allows, stays in the route and its connections are
    refused (ResolvedRefs False, BackendNotFound / RefNotPermitted); a grant lets the reference through, live."""
    p1, p2, p3 = gmesh.port(31400), gmesh.port(31401), free_ports_except(gmesh, 1)[0]
    web = "gateway-conformance-web-backend"
    text = (
        echo("tcp-reference-grant-backend", web)
        + echo("other-backend", web)
        + gateway("gw", ("missing", p1), ("cross", p2), ("granted", p3))
        + tcp_route("missing", "gw", ["{name: does-not-exist, port: 3000}"], section="missing")
        + tcp_route("cross", "gw", [f"{{name: other-backend, namespace: {web}, port: 3000}}"], section="cross")
        + tcp_route(
            "granted", "gw", [f"{{name: tcp-reference-grant-backend, namespace: {web}, port: 3000}}"], section="granted"
        )
        + grant("tcp-reference-grant", "tcp-reference-grant-backend")
    )
    start(gmesh, tmp_path, text)
    envoy = envoy_of(gmesh, "gw")
    for port in (p1, p2, p3):
        listening(envoy, port)
    assert first_reply(p3) == "tcp-reference-grant-backend hello"
    assert refused(p1)
    assert refused(p2)
    expected = {"missing": "BackendNotFound", "cross": "RefNotPermitted", "granted": "ResolvedRefs"}
    for name, reason in expected.items():
        (parent,) = get_object(gmesh, "tcproute", name)["status"]["parents"]
        assert conditions(parent)["Accepted"] == ("True", "Accepted")
        assert conditions(parent)["ResolvedRefs"] == ("True" if name == "granted" else "False", reason)
    # The grant for other-backend, applied while running: the refused listener now reaches it.
    path = tmp_path / "grant.yaml"
    path.write_text(grant("other", "other-backend"))
    assert gmesh.apply(path)["code"] == 200
    gmesh.wait_synced(generation=2)
    assert first_reply(p2) == "other-backend hello"
    (parent,) = get_object(gmesh, "tcproute", "cross")["status"]["parents"]
    assert conditions(parent)["ResolvedRefs"] == ("True", "ResolvedRefs")


def grant(name: str, service: str) -> str:
    return f"""---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: {name}, namespace: gateway-conformance-web-backend}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: {NS}}}]
  to: [{{group: "", kind: Service, name: {service}}}]
"""


def free_ports_except(mesh: Mesh, n: int) -> list[int]:
    """Free ports distinct from the mesh's own (free_ports holds its sockets only during one call)."""
    taken = set(mesh.gateway_ports.values()) | {mesh.ports.ads, mesh.ports.http}
    while True:
        ports = free_ports(n)
        if not taken & set(ports):
            return ports
