"""Seed 001's first HTTP steps on a gateway through a real Envoy (SotW and delta): all of reviews to v1, 80/20
(binomial), ``end-user: jason`` → v2, an HTTP 500 abort for jason. Each step is applied live: the routes
change by RDS, and a kept-alive client connection opened before the first change serves every step; then the
7 s delay for jason, measured."""

from __future__ import annotations

import collections
import http.client
import json
import time
from pathlib import Path

import pytest

from tcpmesh.probe import http_probe

from .conftest import SAMPLES, Mesh
from .traffic import assert_split

pytestmark = pytest.mark.envoy

SAMPLE = SAMPLES / "bookinfo-reviews"
N = 400  # requests per split check
JASON = {"end-user": "jason"}


def versions(mesh: Mesh, count: int, headers: dict[str, str] | None = None) -> collections.Counter[str]:
    tally = http_probe("127.0.0.1", mesh.port(8080), count, headers=headers, timeout=5, budget=60)
    return collections.Counter({**tally.replies, **tally.failures})


def get(conn: http.client.HTTPConnection, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn.request("GET", "/reviews/0", headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    assert not response.will_close, "Envoy closed the kept-alive connection"
    return response.status, json.loads(body)["version"] if response.status == 200 else body.decode()


def apply(mesh: Mesh, name: str, generation: int) -> None:
    result = mesh.apply(SAMPLE / name)
    assert result["code"] == 200, result
    mesh.wait_synced(generation=generation)


def test_seed_001_steps_on_a_gateway(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(mesh.copy_samples([SAMPLE / "reviews-services.yaml", SAMPLE / "reviews-gateway.yaml"], tmp_path / "in"))
    envoy = mesh.envoys[0]
    kept = http.client.HTTPConnection("127.0.0.1", mesh.port(8080), timeout=15)
    try:
        # Step 1: every request to v1, the request's headers reaching the backend.
        assert_split(versions(mesh, 100), {"v1": 1.0})
        assert get(kept) == (200, "v1")
        listeners_before = envoy.admin_get("/config_dump?resource=dynamic_listeners")

        # Step 2: 80/20 by weight.
        apply(mesh, "reviews-80-20.yaml", 2)
        assert_split(versions(mesh, N), {"v1": 0.8, "v2": 0.2})

        # Step 3: jason to v2 by header, everyone else to v1.
        apply(mesh, "reviews-jason-v2.yaml", 3)
        assert_split(versions(mesh, 50, JASON), {"v2": 1.0})
        assert_split(versions(mesh, 50), {"v1": 1.0})
        assert get(kept, JASON) == (200, "v2")

        # Step 4: HTTP 500 for jason (fault abort, 100 %), 200 from v1 for the others.
        apply(mesh, "reviews-jason-abort.yaml", 4)
        assert versions(mesh, 50, JASON) == {"HTTP 500": 50}
        assert_split(versions(mesh, 50), {"v1": 1.0})
        status, body = get(kept, JASON)
        assert (status, body) == (500, "fault filter abort")
        assert get(kept) == (200, "v1")

        # Step 5: a 7 s delay for jason; istiod's routes have no timeout (0s), so the reply still comes, from v1.
        apply(mesh, "reviews-jason-delay.yaml", 5)
        started = time.monotonic()
        assert get(kept, JASON) == (200, "v1")
        assert 6.9 <= time.monotonic() - started < 9.5  # Envoy's timer may fire a few ms early
        started = time.monotonic()
        assert get(kept) == (200, "v1")
        assert time.monotonic() - started < 2.0

        # RDS carried every change: the listener is the one from before (same version, never drained).
        assert envoy.admin_get("/config_dump?resource=dynamic_listeners") == listeners_before
    finally:
        kept.close()
