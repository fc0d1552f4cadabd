"""The /ui page in a real headless Chromium: it renders the routes and proxies, and a weight change shows within
2 s. A screenshot is kept (test-artifacts/ui.png, or $TCPMESH_ARTIFACTS)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.polling import wait_until
from tests.e2e.conftest import ROOT, SAMPLES, Mesh, make_mesh
from tests.e2e.traffic import replies

from .cdp import Browser

pytestmark = [pytest.mark.browser, pytest.mark.envoy, pytest.mark.timeout(180)]

ARTIFACTS = Path(os.environ.get("TCPMESH_ARTIFACTS", ROOT / "test-artifacts"))


def test_ui_shows_routes_and_a_weight_change_within_two_seconds(tmp_path: Path) -> None:
    mesh: Mesh = make_mesh(tmp_path, "GRPC")
    browser: Browser | None = None
    try:
        mesh.start(mesh.copy_samples([SAMPLES / "tcp-echo"], tmp_path / "in"))
        browser = Browser(f"http://{mesh.control_plane.http}/ui#token={mesh.control_plane.token}")
        browser.wait_for_text("0.0.0.0_", timeout=20)
        text = browser.text()
        assert "outbound|9000|v1|tcp-echo.default.svc.cluster.local" in text
        assert "configured 100.0%" in text
        assert "SYNCED" in text
        assert "router~127.0.0.1~istio-ingressgateway" in text
        result = mesh.apply(SAMPLES / "tcp-echo-shift/tcp-echo-20-v2.yaml")
        assert result["code"] == 200, result
        applied = time.monotonic()
        browser.wait_for_text("configured 80.0%", timeout=10)
        assert time.monotonic() - applied <= 2.0
        assert "configured 20.0%" in browser.text()
        # The window of the new version opens at the first stats report after its ACK: count from there.
        wait_until(lambda: _window_open(mesh, "tcp"), timeout=15, what="the traffic window of the new version")
        replies(mesh.port(31400), 200)  # observed bars for the screenshot
        browser.wait_for_text("200 new connections", timeout=15)
        shot = browser.screenshot(ARTIFACTS / "ui.png")
        assert shot.stat().st_size > 10_000
    finally:
        if browser is not None:
            browser.close()
        mesh.stop()


def test_ui_shows_an_http_route_counted_in_requests(tmp_path: Path) -> None:
    from tcpmesh.probe import http_probe

    sample = SAMPLES / "bookinfo-reviews"
    mesh: Mesh = make_mesh(tmp_path, "GRPC")
    browser: Browser | None = None
    try:
        mesh.start(
            mesh.copy_samples([sample / "reviews-services.yaml", sample / "reviews-gateway.yaml"], tmp_path / "in")
        )
        result = mesh.apply(sample / "reviews-80-20.yaml")
        assert result["code"] == 200, result
        browser = Browser(f"http://{mesh.control_plane.http}/ui#token={mesh.control_plane.token}")
        browser.wait_for_text("(VirtualService default/reviews)", timeout=20)
        assert "configured 80.0%" in browser.text()
        wait_until(lambda: _window_open(mesh), timeout=15, what="the HTTP route's window to open")
        tally = http_probe("127.0.0.1", mesh.port(8080), 50, path="/reviews/0", timeout=5, budget=60)
        assert not tally.failures, tally.failures
        browser.wait_for_text("50 requests since version", timeout=15)
        assert "outbound|9080|v2|reviews.default.svc.cluster.local" in browser.text()
    finally:
        if browser is not None:
            browser.close()
        mesh.stop()


def _window_open(mesh: Mesh, protocol: str = "http") -> bool:
    """Every ``protocol`` route's window has opened: counting from now counts everything sent."""
    code, payload = request_json(mesh.control_plane.http, "/api/traffic", token=mesh.control_plane.token)
    assert code == 200, payload
    routes = [r for p in payload["proxies"] for r in p["routes"] if r["protocol"] == protocol]
    return bool(routes) and all(r["since"] for r in routes)
