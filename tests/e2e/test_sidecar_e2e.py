"""Mesh routing end to end: a client sidecar Envoy binds each service address and routes by ``mesh``
VirtualServices (weights, sourceLabels), with a real control plane and real echo pods."""

from __future__ import annotations

import collections
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import MeshPorts

from .conftest import ROOT, Mesh
from .traffic import assert_split, exchange

pytestmark = pytest.mark.envoy

SERVICES = ROOT / "samples/tcp-echo/tcp-echo-services.yaml"
INPUTS = ROOT / "tests/testdata/inputs"
HOST = "tcp-echo.default.svc.cluster.local"
N = 400  # connections per split check, as in the gateway tests


@pytest.fixture(params=["GRPC", "DELTA_GRPC"], ids=["sotw", "delta"])
def sidecar_mesh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mesh]:
    # Pods at 127.a.b.1.. and services at 127.a.b.129..: a /24 of its own, so parallel runs never share an
    # address (the sidecar binds <service address>:9000 itself).
    rnd = random.Random()
    a, b = rnd.randrange(100, 250), rnd.randrange(1, 250)
    m = Mesh(
        tmp_path / "state",
        MeshPorts.free(),
        ads_api_type=str(request.param),
        pod_network=f"127.{a}.{b}.0",
        service_network=f"127.{a}.{b}.128",
    )
    m.gateway_ports = {}
    try:
        yield m
    finally:
        m.stop()


def service_address(mesh: Mesh) -> str:
    addresses = {s.hostname: s.address for s in mesh.service_addresses()}
    assert addresses[HOST] == mesh.service_network.rpartition(".")[0] + ".129"
    return addresses[HOST]


def start_sidecar(mesh: Mesh, address: str, **labels: str) -> EnvoyProcess:
    sidecar = mesh.start_sidecar(name=f"client-{labels.get('app', 'none')}", labels=labels)
    mesh.wait_synced()
    sidecar.wait_for_listener(f"{address}_9000")
    return sidecar


def replies(address: str, count: int) -> collections.Counter[str]:
    return collections.Counter(exchange(9000, host=address) for _ in range(count))


def test_sidecar_splits_connections_to_the_service_address_by_weight(sidecar_mesh: Mesh) -> None:
    sidecar_mesh.start([SERVICES, INPUTS / "mesh-20-80.yaml"], with_envoy=False)
    address = service_address(sidecar_mesh)
    start_sidecar(sidecar_mesh, address, app="sleep")
    assert_split(replies(address, N), {"one hello": 0.2, "two hello": 0.8})


def test_source_labels_pick_the_route_per_sidecar(sidecar_mesh: Mesh) -> None:
    sidecar_mesh.start([SERVICES, INPUTS / "mesh-source-labels.yaml"], with_envoy=False)
    address = service_address(sidecar_mesh)
    # One sidecar at a time: both would bind the same service address and port.
    sleep = start_sidecar(sidecar_mesh, address, app="sleep")
    assert_split(replies(address, 50), {"two hello": 1.0})
    sidecar_mesh.stop_envoy(sleep)
    start_sidecar(sidecar_mesh, address, app="curl")
    assert_split(replies(address, 50), {"one hello": 1.0})
    ids = {p["id"] for p in sidecar_mesh.control_plane.status()["proxies"]}
    assert "sidecar~127.0.0.1~client-curl.default~default.svc.cluster.local" in ids
