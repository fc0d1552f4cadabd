"""DestinationRule traffic policy and DNS ServiceEntries through a real Envoy, with loopback backends."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port

from .backends import Backend, closed_without_reply
from .conftest import Mesh
from .traffic import exchange

pytestmark = pytest.mark.envoy

HOST = "backend.internal"


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    started: list[Backend] = []
    yield started
    for b in started:
        b.kill()


def gateway_config(port: int, backend_port: int, policy: str, entry: str) -> str:
    """A TCP gateway on ``port`` routing to ``backend.internal:<backend_port>`` under ``policy``."""
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tcp, protocol: TCP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: route, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  tcp:
  - route: [{{destination: {{host: {HOST}, port: {{number: {backend_port}}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend, namespace: default}}
spec:
  host: {HOST}
  trafficPolicy:
{policy}
---
{entry}"""


def static_entry(port: int, count: int = 1) -> str:
    endpoints = ", ".join(f"{{address: 127.0.0.{i + 1}}}" for i in range(count))
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [{HOST}]
  ports: [{{number: {port}, name: tcp, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{endpoints}]
"""


def start(mesh: Mesh, tmp_path: Path, text: str, port: int) -> None:
    path = tmp_path / "input" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mesh.start([path])
    mesh.envoys[0].wait_for_listener(f"0.0.0.0_{port}")


def first_reply(port: int) -> str:
    return wait_until(lambda: exchange(port), timeout=15, what="a first reply", ignore=(OSError,))


def cluster_stat(mesh: Mesh, backend_port: int, stat: str) -> int:
    """A cluster counter; Envoy names cluster stats by alt_stat_name (``outbound|…;``)."""
    name = f"outbound|{backend_port}||{HOST}"
    values = mesh.envoys[0].stats(filter=stat)
    return sum(v for k, v in values.items() if name in k and k.endswith("." + stat))


def test_max_connections_overflows_the_second_concurrent_connection(
    mesh: Mesh, tmp_path: Path, backends: list[Backend]
) -> None:
    backend = Backend("one")
    backends.append(backend)
    port = free_port()
    policy = "    connectionPool:\n      tcp: {maxConnections: 1}"
    start(mesh, tmp_path, gateway_config(port, backend.port, policy, static_entry(backend.port)), port)
    first_reply(port)
    # The probe connection's upstream side closes asynchronously; holding a new one before would overflow it.
    wait_until(
        lambda: cluster_stat(mesh, backend.port, "upstream_cx_active") == 0, timeout=10, what="no upstream connection"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as held:
        held.sendall(b"hold\n")
        assert held.makefile("rb").readline() == b"one hold\n"  # one upstream connection is now open
        before = cluster_stat(mesh, backend.port, "upstream_cx_overflow")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as second:
            second.sendall(b"second\n")
            assert closed_without_reply(second)  # the circuit breaker is open
        wait_until(
            lambda: cluster_stat(mesh, backend.port, "upstream_cx_overflow") > before,
            timeout=10,
            what="upstream_cx_overflow to move",
        )
    # Once the held connection is gone, a new one is accepted again.
    wait_until(
        lambda: exchange(port) == "one hello", timeout=10, what="a connection after the overflow", ignore=(OSError,)
    )


def test_outlier_detection_ejects_a_killed_backend(mesh: Mesh, tmp_path: Path, backends: list[Backend]) -> None:
    # Two endpoints of one ServiceEntry need two addresses and one port: 127.0.0.1 and 127.0.0.2.
    survivor = Backend("survivor")
    backends.append(survivor)
    victim = Backend("victim", host="127.0.0.2", port=survivor.port)
    backends.append(victim)
    port = free_port()
    policy = """    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 60s
      maxEjectionPercent: 100"""
    start(mesh, tmp_path, gateway_config(port, survivor.port, policy, static_entry(survivor.port, 2)), port)
    first_reply(port)
    seen = {exchange(port) for _ in range(10)}
    assert seen == {"survivor hello", "victim hello"}
    victim.kill()
    # Connect failures to the victim count as consecutive 5xx (locally originated errors): after the first
    # one it is ejected, and from then on every connection reaches the survivor.
    replies: list[str] = []
    deadline = time.monotonic() + 20
    while len(replies) < 20 or replies[-20:] != ["survivor hello"] * 20:
        assert time.monotonic() < deadline, f"traffic did not settle on the survivor: {replies[-20:]}"
        try:
            replies.append(exchange(port))
        except OSError as exc:
            replies.append(repr(exc))
    assert cluster_stat(mesh, survivor.port, "outlier_detection.ejections_enforced_total") >= 1


def test_idle_timeout_closes_an_idle_connection(mesh: Mesh, tmp_path: Path, backends: list[Backend]) -> None:
    backend = Backend("one")
    backends.append(backend)
    port = free_port()
    policy = "    connectionPool:\n      tcp: {idleTimeout: 1s}"
    start(mesh, tmp_path, gateway_config(port, backend.port, policy, static_entry(backend.port)), port)
    first_reply(port)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"hi\n")
        reader = sock.makefile("rb")
        assert reader.readline() == b"one hi\n"
        idle_since = time.monotonic()
        assert closed_without_reply(sock)  # Envoy closes it; the socket timeout (10s) bounds the wait
        idle = time.monotonic() - idle_since
    assert 0.8 <= idle < 5, f"closed after {idle:.2f}s idle, expected about 1s"


def test_dns_service_entry_resolves_localhost(mesh: Mesh, tmp_path: Path, backends: list[Backend]) -> None:
    backend = Backend("dns")
    backends.append(backend)
    port = free_port()
    entry = f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend, namespace: default}}
spec:
  hosts: [{HOST}]
  ports: [{{number: {backend.port}, name: tcp, protocol: TCP}}]
  resolution: DNS
  endpoints: [{{address: localhost}}]
"""
    policy = "    connectionPool:\n      tcp: {connectTimeout: 2s}"
    start(mesh, tmp_path, gateway_config(port, backend.port, policy, entry), port)
    assert first_reply(port) == "dns hello"
    clusters = mesh.envoys[0].admin_get("/clusters")
    assert f"outbound|{backend.port}||{HOST}::127.0.0.1:{backend.port}" in clusters
