"""Seed 001's timeout through a real Envoy gateway (SotW and delta): without a route timeout (istiod's default)
a reviews reply 7 s late still arrives, 200 after 7 s; with ``timeout: 6s`` (productpage's hard-coded 6 s) the
same request is Envoy's 504 after 6 s, counted as ``upstream_rq_timeout``, and a fast one is still 200.

The slow backend is the HTTP echo's ``/delay/<seconds>`` path (tcpmesh/echo_http.py)."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import pytest

from .conftest import SAMPLES, Mesh

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

SAMPLE = SAMPLES / "bookinfo-reviews"
V1_CLUSTER = "outbound|9080|v1|reviews.default.svc.cluster.local"


def v1_timeouts(mesh: Mesh) -> int:
    """The v1 cluster's upstream_rq_timeout (its stat name carries istiod's ``;`` alt-stat delimiter)."""
    stats = mesh.envoys[0].stats(filter="upstream_rq_timeout")
    (count,) = [v for k, v in stats.items() if k.startswith(f"cluster.{V1_CLUSTER}")]
    return count


def timed_get(mesh: Mesh, path: str) -> tuple[int, bytes, float]:
    """One request on a new connection: status, body and seconds it took."""
    conn = http.client.HTTPConnection("127.0.0.1", mesh.port(8080), timeout=15)
    try:
        started = time.monotonic()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        return response.status, body, time.monotonic() - started
    finally:
        conn.close()


def test_route_timeout_turns_a_slow_reply_into_504(mesh: Mesh, tmp_path: Path) -> None:
    mesh.start(mesh.copy_samples([SAMPLE / "reviews-services.yaml", SAMPLE / "reviews-gateway.yaml"], tmp_path / "in"))
    assert timed_get(mesh, "/reviews/0")[0] == 200

    # Envoy's default as istiod configures it (timeout: 0s, none): the 7 s reply arrives.
    status, _, took = timed_get(mesh, "/delay/7")
    assert status == 200
    assert 7.0 <= took < 9.5, took

    result = mesh.apply(SAMPLE / "reviews-timeout.yaml")
    assert result["code"] == 200, result
    mesh.wait_synced(generation=2)
    before = v1_timeouts(mesh)
    status, body, took = timed_get(mesh, "/delay/7")
    assert (status, body) == (504, b"upstream request timeout")
    assert 5.9 <= took < 7.0, took  # Envoy's timer may fire a few ms early
    assert v1_timeouts(mesh) == before + 1
    cut = took
    status, _, took = timed_get(mesh, "/delay/1")
    assert status == 200
    assert took < 3.0
    print(f"timeout: 7 s reply cut at {cut:.2f} s")
