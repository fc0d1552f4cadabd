"""A ``delegate`` VirtualService, ``corsPolicy`` and per-destination headers through a real Envoy gateway (SotW
and delta): the delegate's rules serve under the root's match, a change to the delegate alone re-routes a
kept-alive connection by RDS (the listener untouched), CORS preflights are answered by Envoy's cors filter.

Backends are two HTTP echoes (tcpmesh/echo_http.py) on loopback behind ServiceEntries."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.echo_http import HttpEchoServer
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports

from .conftest import Mesh
from .test_sds_e2e import apply, start

pytestmark = pytest.mark.envoy

ORIGIN = "https://bookinfo.example.com"


@pytest.fixture
def echoes() -> Iterator[dict[str, HttpEchoServer]]:
    with (
        HttpEchoServer("127.0.0.1", [0], version="v1") as v1,
        HttpEchoServer("127.0.0.1", [0], version="v2") as v2,
    ):
        yield {"v1": v1, "v2": v2}


def service_entry(version: str, port: int) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews-{version}, namespace: default}}
spec:
  hosts: [reviews-{version}.internal]
  location: MESH_EXTERNAL
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


def root_yaml(port: int, echoes: dict[str, HttpEchoServer]) -> str:
    """A gateway on ``port``; the root VirtualService delegates /reviews to reviews-team/reviews with a CORS
    policy, and routes the rest to v1 with per-destination headers."""
    v1 = echoes["v1"].ports[0]
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [web]
  http:
  - name: reviews
    match: [{{uri: {{prefix: /reviews}}}}]
    delegate: {{name: reviews, namespace: reviews-team}}
    corsPolicy:
      allowOrigins: [{{exact: "{ORIGIN}"}}]
      allowMethods: [GET, POST]
      allowHeaders: [x-user]
      maxAge: 1h
  - name: rest
    route:
    - destination: {{host: reviews-v1.internal, port: {{number: {v1}}}}}
      headers:
        request: {{set: {{x-dest: v1}}}}
        response: {{add: {{x-served-by: rest}}}}
{service_entry("v1", v1)}{service_entry("v2", echoes["v2"].ports[0])}"""


def delegate_yaml(echoes: dict[str, HttpEchoServer], special: str, other: str) -> str:
    """The delegate: /reviews/special to ``special``, the rest of /reviews to ``other``."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: reviews-team}}
spec:
  http:
  - name: special
    match: [{{uri: {{prefix: /reviews/special}}}}]
    route: [{{destination: {{host: reviews-{special}.internal, port: {{number: {echoes[special].ports[0]}}}}}}}]
  - route: [{{destination: {{host: reviews-{other}.internal, port: {{number: {echoes[other].ports[0]}}}}}}}]
"""


def request(
    conn: http.client.HTTPConnection, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    body = response.read()
    assert not response.will_close, "Envoy closed the kept-alive connection"
    echoed = json.loads(body) if response.getheader("content-type") == "application/json" else {}
    return response.status, echoed, response


def version(conn: http.client.HTTPConnection, path: str) -> str:
    status, echoed, _ = request(conn, path)
    assert status == 200, (path, status)
    return str(echoed["version"])


def test_delegate_cors_and_destination_headers(mesh: Mesh, tmp_path: Path, echoes: dict[str, HttpEchoServer]) -> None:
    (port,) = free_ports(1)
    start(mesh, tmp_path, root_yaml(port, echoes) + delegate_yaml(echoes, "v2", "v1"), port)
    envoy = mesh.envoys[0]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        # The delegate's rules, under the root's /reviews match (the first request may race RDS/EDS).
        def delegated() -> bool:
            try:
                return request(conn, "/reviews/special/1")[1].get("version") == "v2"
            except OSError:
                conn.close()  # a refused or reset request leaves the connection mid-request: reconnect next time
                raise

        wait_until(
            delegated,
            timeout=15,
            what="the delegate's route",
            ignore=(OSError,),  # Envoy lists the listener before it accepts (a CI run was refused once)
        )
        assert version(conn, "/reviews/1") == "v1"
        # Per-destination headers: the request header reaches the backend, the response header the client.
        status, echoed, response = request(conn, "/productpage")
        assert (status, echoed["version"], echoed["headers"].get("x-dest")) == (200, "v1", "v1")
        assert response.getheader("x-served-by") == "rest"

        # CORS: Envoy answers an allowed preflight itself; a simple request gets the allow-origin header.
        preflight = {"origin": ORIGIN, "access-control-request-method": "POST"}
        status, echoed, response = request(conn, "/reviews/1", "OPTIONS", preflight)
        assert (status, echoed) == (200, {})  # not forwarded: no echo body
        assert response.getheader("access-control-allow-origin") == ORIGIN
        assert response.getheader("access-control-allow-methods") == "GET,POST"
        assert response.getheader("access-control-max-age") == "3600"
        status, echoed, response = request(conn, "/reviews/1", headers={"origin": ORIGIN})
        assert (status, response.getheader("access-control-allow-origin")) == (200, ORIGIN)
        # Another origin gets no CORS headers; its preflight goes on to the backend (forward_not_matching).
        status, echoed, response = request(conn, "/reviews/1", "OPTIONS", {**preflight, "origin": "https://evil.test"})
        assert (status, echoed.get("method")) == (200, "OPTIONS")
        assert response.getheader("access-control-allow-origin") is None
        # Outside the root's match there is no CORS policy at all.
        status, _, response = request(conn, "/productpage", headers={"origin": ORIGIN})
        assert (status, response.getheader("access-control-allow-origin")) == (200, None)

        # Changing only the delegate re-routes, by RDS, on the same connection; the listener is not touched.
        listeners = envoy.admin_get("/config_dump?resource=dynamic_listeners")
        apply(mesh, delegate_yaml(echoes, "v1", "v2"))
        wait_until(
            lambda: request(conn, "/reviews/special/1")[1].get("version") == "v1",
            timeout=15,
            what="the changed delegate",
        )
        assert version(conn, "/reviews/1") == "v2"
        assert version(conn, "/productpage") == "v1"
        mesh.wait_synced()
        assert envoy.admin_get("/config_dump?resource=dynamic_listeners") == listeners
    finally:
        conn.close()
