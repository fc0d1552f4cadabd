"""Seed 001's HTTP steps through a client sidecar Envoy (SotW and delta): reviews by default to every version,
then all to v1, 80/20 (binomial), ``end-user: jason`` → v2, HTTP 500 and a 7 s delay for jason, each applied live
over RDS with a kept-alive client connection serving every step and the listener never changing; then the
external host edition.cnn.com (a local stand-in) through a ServiceEntry, and through an egress gateway Envoy,
proven by both Envoys' counters and the headers the stand-in saw."""

from __future__ import annotations

import collections
import http.client
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.echo_http import HttpEchoServer
from tcpmesh.probe import http_probe
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import MeshPorts
from tcpmesh.runtime.ports import free_ports

from .conftest import SAMPLES, Mesh
from .traffic import assert_split

pytestmark = pytest.mark.envoy

REVIEWS = SAMPLES / "bookinfo-reviews"
EGRESS = SAMPLES / "egress"
REVIEWS_HOST = "reviews.default.svc.cluster.local"
CNN = "edition.cnn.com"
EGRESS_CLUSTER = "outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local"
DIRECT_CLUSTER = f"outbound|80||{CNN}"
N = 400  # requests per split check, as in the gateway tests
JASON = {"end-user": "jason"}


@pytest.fixture(params=["GRPC", "DELTA_GRPC"], ids=["sotw", "delta"])
def sidecar_mesh(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Mesh]:
    # Pods and services in a /24 of their own: the sidecar binds <service address>:<port> itself.
    rnd = random.Random()
    a, b = rnd.randrange(100, 250), rnd.randrange(1, 250)
    m = Mesh(
        tmp_path / "state",
        MeshPorts.free(),
        ads_api_type=str(request.param),
        pod_network=f"127.{a}.{b}.0",
        service_network=f"127.{a}.{b}.128",
    )
    # The egress gateway's listener (targetPort 8080) binds 0.0.0.0 and the stand-in's port is a real one.
    egress_listener, stand_in = free_ports(2)
    m.gateway_ports = {8080: egress_listener, 18080: stand_in}
    try:
        yield m
    finally:
        m.stop()


def address_of(mesh: Mesh, hostname: str) -> str:
    return {s.hostname: s.address for s in mesh.service_addresses()}[hostname]


def start_sidecar(mesh: Mesh, listener: str) -> EnvoyProcess:
    sidecar = mesh.start_sidecar(name="sleep", labels={"app": "sleep"})
    mesh.wait_synced()
    sidecar.wait_for_listener(listener)
    return sidecar


def apply(mesh: Mesh, path: Path, generation: int) -> None:
    result = mesh.apply(path)
    assert result["code"] == 200, result
    mesh.wait_synced(generation=generation)


def versions(address: str, count: int, headers: dict[str, str] | None = None) -> collections.Counter[str]:
    tally = http_probe(address, 9080, count, path="/reviews/0", headers=headers, timeout=5, budget=60)
    return collections.Counter({**tally.replies, **tally.failures})


def get(conn: http.client.HTTPConnection, headers: dict[str, str], path: str = "/reviews/0") -> dict[str, Any]:
    """One request on a kept-alive connection: the echo's JSON (version, path, the headers it received)."""
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert response.status == 200, (response.status, body)
    assert not response.will_close, "Envoy closed the kept-alive connection"
    reply: dict[str, Any] = json.loads(body)
    return reply


def status(conn: http.client.HTTPConnection, headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request("GET", "/reviews/0", headers=headers)
    response = conn.getresponse()
    body = response.read()
    assert not response.will_close, "Envoy closed the kept-alive connection"
    return response.status, body


def test_seed_001_reviews_steps_through_a_sidecar(sidecar_mesh: Mesh) -> None:
    mesh = sidecar_mesh
    mesh.start([REVIEWS / "reviews-services.yaml"], with_envoy=False)
    address = address_of(mesh, REVIEWS_HOST)
    sidecar = start_sidecar(mesh, f"{address}_9080")
    kept = http.client.HTTPConnection(address, 9080, timeout=15)
    try:
        # No VirtualService: the service's default route spreads over every version (least request).
        spread = versions(address, 60)
        assert set(spread) == {"v1", "v2", "v3"}, spread
        assert get(kept, {"host": "reviews"})["version"] in ("v1", "v2", "v3")  # the short name is a domain
        listeners_before = sidecar.admin_get("/config_dump?resource=dynamic_listeners")

        # Step 1: all of reviews to v1.
        apply(mesh, REVIEWS / "mesh" / "reviews-all-v1.yaml", 2)
        assert_split(versions(address, 100), {"v1": 1.0})
        assert get(kept, {"host": "reviews"})["version"] == "v1"

        # Step 2: 80/20 by weight.
        apply(mesh, REVIEWS / "mesh" / "reviews-80-20.yaml", 3)
        assert_split(versions(address, N), {"v1": 0.8, "v2": 0.2})

        # Step 3: jason to v2 by header, everyone else to v1; on the connection opened before the first change.
        apply(mesh, REVIEWS / "mesh" / "reviews-jason-v2.yaml", 4)
        assert_split(versions(address, 50, JASON), {"v2": 1.0})
        assert_split(versions(address, 50), {"v1": 1.0})
        assert get(kept, {"host": f"{REVIEWS_HOST}:9080", **JASON})["version"] == "v2"
        assert get(kept, {"host": "reviews.default"})["version"] == "v1"

        # An unknown host gets block_all's 502, as under seed 001's REGISTRY_ONLY.
        assert status(kept, {"host": "unknown.example.com"}) == (502, b"")

        # Step 4: HTTP 500 for jason (fault abort, 100 %), v1 for the others.
        apply(mesh, REVIEWS / "mesh" / "reviews-jason-abort.yaml", 5)
        assert versions(address, 50, JASON) == {"HTTP 500": 50}
        assert_split(versions(address, 50), {"v1": 1.0})
        assert status(kept, {"host": "reviews", **JASON}) == (500, b"fault filter abort")

        # Step 5: a 7 s delay for jason; istiod's routes have no timeout (0s), so the reply still comes, from v1.
        apply(mesh, REVIEWS / "mesh" / "reviews-jason-delay.yaml", 6)
        started = time.monotonic()
        assert get(kept, {"host": "reviews", **JASON})["version"] == "v1"
        assert 6.9 <= time.monotonic() - started < 9.5  # Envoy's timer may fire a few ms early
        started = time.monotonic()
        assert get(kept, {"host": "reviews"})["version"] == "v1"
        assert time.monotonic() - started < 2.0

        # RDS carried every change: the listener is the one from before (same version, never drained).
        assert sidecar.admin_get("/config_dump?resource=dynamic_listeners") == listeners_before
        assert sidecar.stats(filter="listener_manager.listener_modified").get("listener_manager.listener_modified") == 0
    finally:
        kept.close()


def _hcm_stats(envoy: EnvoyProcess) -> tuple[int, int]:
    """(2xx replies, HTTP/2 connections) of the gateway's one HTTP connection manager (``outbound_<listener>``)."""
    stats = envoy.stats(filter=r"^http\.outbound_.*\.downstream_(rq_2xx|cx_http2_total)$")
    pick = {k.rpartition(".")[2]: v for k, v in stats.items()}
    return pick.get("downstream_rq_2xx", 0), pick.get("downstream_cx_http2_total", 0)


def rq_200(envoy: EnvoyProcess, cluster: str) -> int:
    """The cluster's 200 replies; its stats are named by alt_stat_name, istiod's ``<cluster>;``."""
    return envoy.stats(filter="upstream_rq_200$").get(f"cluster.{cluster};.upstream_rq_200", 0)


def _may_bind_port_80() -> bool:
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return os.geteuid() == 0 or start <= 80


@pytest.mark.skipif(not _may_bind_port_80(), reason="the sidecar binds the ServiceEntry's ports 80 and 443")
def test_external_host_through_a_service_entry_then_an_egress_gateway(sidecar_mesh: Mesh, tmp_path: Path) -> None:
    mesh = sidecar_mesh
    stand_in = HttpEchoServer("127.0.0.1", [mesh.port(18080)], version="cnn", pod="edition.cnn.com")
    stand_in.start()
    try:
        samples = mesh.copy_samples([EGRESS], tmp_path / "in")
        by_name = {p.name: p for p in samples}
        mesh.start([by_name["cnn-service-entry.yaml"]], with_envoy=False)
        address = address_of(mesh, CNN)
        sidecar = start_sidecar(mesh, f"{address}_80")
        cnn = {"host": CNN}

        # The ServiceEntry alone: the sidecar sends edition.cnn.com to the (stand-in) external host.
        kept = http.client.HTTPConnection(address, 80, timeout=15)
        try:
            reply = get(kept, cnn, "/politics")
            assert (reply["version"], reply["path"], reply["headers"]["host"]) == ("cnn", "/politics", CNN)
            assert "x-forwarded-for" not in reply["headers"]  # the sidecar does not use the remote address
            assert rq_200(sidecar, DIRECT_CLUSTER) == 1

            # The egress gateway: its Service and workload, the Gateway and DestinationRule, its Envoy.
            apply(mesh, EGRESS / "egressgateway.yaml", 2)
            apply(mesh, EGRESS / "cnn-egress-gateway.yaml", 3)
            egress = mesh.start_envoy(
                name="istio-egressgateway", namespace="istio-system", labels={"istio": "egressgateway"}, admin_port=0
            )
            mesh.wait_synced()
            egress.wait_for_listener(f"0.0.0.0_{mesh.port(8080)}")
            assert get(kept, cnn, "/politics")["version"] == "cnn"  # no VirtualService yet: still direct
            assert rq_200(sidecar, DIRECT_CLUSTER) == 2

            # The VirtualService: mesh → egress gateway → edition.cnn.com, on the connection from before.
            apply(mesh, EGRESS / "cnn-virtual.yaml", 4)
            for _ in range(5):
                reply = get(kept, cnn, "/politics")
                assert (reply["version"], reply["path"], reply["headers"]["host"]) == ("cnn", "/politics", CNN)
            # The egress gateway (use_remote_address) appended an x-forwarded-for (for a loopback peer Envoy
            # appends its own node address): the request passed it.
            assert reply["headers"].get("x-forwarded-for"), reply["headers"]
        finally:
            kept.close()
        assert rq_200(sidecar, DIRECT_CLUSTER) == 2  # nothing more went straight out
        assert rq_200(sidecar, EGRESS_CLUSTER) == 5
        # The egress gateway's own counters (polled: they are not the client's to order).
        egress.wait_for_stat(f"cluster.{DIRECT_CLUSTER};.upstream_rq_200", lambda v: v == 5)

        # Its HTTP connection manager (the gateway's one listener) answered them, over HTTP/2 from the sidecar (the
        # gateway Service's port is ``http2``), as the seed's access log shows.
        def five_replies() -> tuple[int, int] | None:
            hcm = _hcm_stats(egress)
            return hcm if hcm[0] == 5 else None

        hcm = egress.wait_for(five_replies, what="the egress gateway's 5 replies")
        assert hcm[1] >= 1, hcm
    finally:
        stand_in.stop()
