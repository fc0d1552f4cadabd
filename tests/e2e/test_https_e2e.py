"""Gateway HTTPS servers through a real Envoy (SotW and delta): SIMPLE termination from certificate files and
MUTUAL from a credentialName Secret on one port (one SNI chain and route config each), ``httpsRedirect`` on the
HTTP server, and a Secret rotation that leaves a kept-alive HTTPS connection serving.

The backend is the HTTP echo (tcpmesh/echo_http.py) on loopback behind a ServiceEntry; certificates are made in
the test (tests/pki.py)."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.echo_http import HttpEchoServer
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports
from tests.pki import Issued, TestCA, secret_yaml

from .conftest import Mesh
from .test_sds_e2e import GATEWAY_NS, apply, client_context, start

pytestmark = pytest.mark.envoy


@pytest.fixture
def echo() -> Iterator[HttpEchoServer]:
    with HttpEchoServer("127.0.0.1", [0], version="v1", pod="echo-v1") as server:
        yield server


class _Https(http.client.HTTPSConnection):
    """An HTTPS connection to the gateway on loopback, sending ``host`` as SNI and Host."""

    def connect(self) -> None:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def https(port: int, host: str, context: ssl.SSLContext) -> _Https:
    return _Https(host, port, context=context, timeout=10)


def get(conn: http.client.HTTPConnection, path: str = "/") -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    """One request on ``conn``: the status, the echo's JSON (empty otherwise) and the response."""
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    echoed = json.loads(body) if response.getheader("content-type") == "application/json" else {}
    return response.status, echoed, response


def gateway_yaml(http_port: int, https_port: int, files: Path, backend_port: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: web, namespace: {GATEWAY_NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {http_port}, name: http, protocol: HTTP}}
    hosts: [app.example.com, secure.example.com]
    tls: {{httpsRedirect: true}}
  - port: {{number: {https_port}, name: https-files, protocol: HTTPS}}
    hosts: [app.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {files}/app.pem, privateKey: {files}/app.key}}
  - port: {{number: {https_port}, name: https-cred, protocol: HTTPS}}
    hosts: [secure.example.com]
    tls: {{mode: MUTUAL, credentialName: secure-cred}}
{routes_yaml("web", backend_port)}"""


def routes_yaml(gateway: str, backend_port: int) -> str:
    """Every request for the two hosts on ``gateway`` to the echo, through a ServiceEntry."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {gateway}, namespace: default}}
spec:
  hosts: [app.example.com, secure.example.com]
  gateways: [{GATEWAY_NS}/{gateway}]
  http:
  - route: [{{destination: {{host: echo.internal, port: {{number: {backend_port}}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.internal]
  location: MESH_EXTERNAL
  ports: [{{number: {backend_port}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


def write_pair(directory: Path, name: str, issued: Issued) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.pem").write_bytes(issued.cert)
    (directory / f"{name}.key").write_bytes(issued.key)


def first_ok(port: int, host: str, context: ssl.SSLContext) -> dict[str, Any]:
    """The first request may race the Secret or routes reaching Envoy; later ones must not fail."""

    def attempt() -> dict[str, Any] | None:
        conn = https(port, host, context)
        try:
            status, echoed, _ = get(conn)
            return echoed if status == 200 else None
        finally:
            conn.close()

    return wait_until(attempt, timeout=20, what=f"HTTPS 200 from {host}", ignore=(OSError,))


def presented(port: int, host: str, context: ssl.SSLContext) -> bytes | None:
    """The certificate (DER) a new handshake with SNI ``host`` gets."""
    conn = https(port, host, context)
    try:
        conn.connect()
        assert conn.sock is not None
        return conn.sock.getpeercert(binary_form=True)
    finally:
        conn.close()


def refused(port: int, host: str, context: ssl.SSLContext) -> bool:
    conn = https(port, host, context)
    try:
        get(conn)
        return False
    except (ssl.SSLError, OSError, http.client.HTTPException):
        return True
    finally:
        conn.close()


def test_https_simple_from_files_mutual_from_credential_and_https_redirect(
    mesh: Mesh, tmp_path: Path, echo: HttpEchoServer
) -> None:
    http_port, https_port = free_ports(2)
    ca = TestCA()
    files = tmp_path / "certs"
    app = ca.issue(["app.example.com"])
    write_pair(files, "app", app)
    secure = ca.issue(["secure.example.com"])
    client = ca.issue(["client.example.com"], client=True)
    text = gateway_yaml(http_port, https_port, files, echo.ports[0])
    text += secret_yaml("secure-cred", GATEWAY_NS, secure, ca=ca.pem)
    start(mesh, tmp_path, text, http_port, https_port)

    # SIMPLE from files: the echo sees the request, forwarded as https.
    echoed = first_ok(https_port, "app.example.com", client_context(ca))
    assert echoed["version"] == "v1"
    assert echoed["headers"]["x-forwarded-proto"] == "https"
    assert echoed["headers"]["x-envoy-attempt-count"] == "1"  # istiod's include_request_attempt_count
    assert "x-forwarded-client-cert" not in echoed["headers"]  # no client certificate on SIMPLE

    # MUTUAL from the credential (its ca.crt validates clients): a client certificate is required, and the
    # gateway forwards its details (SANITIZE_SET).
    with_cert = client_context(ca, client, tmp_path / "client")
    echoed = first_ok(https_port, "secure.example.com", with_cert)
    xfcc = echoed["headers"]["x-forwarded-client-cert"]
    assert "DNS=client.example.com" in xfcc, xfcc
    assert 'Subject="CN=client.example.com"' in xfcc, xfcc
    assert refused(https_port, "secure.example.com", client_context(ca))
    # SNI picks the chain, and so the certificate: each server presents its own.
    assert presented(https_port, "app.example.com", client_context(ca)) == app.der
    assert presented(https_port, "secure.example.com", with_cert) == secure.der

    # httpsRedirect: the HTTP server answers 301 to https for both hosts, on a kept-alive connection.
    plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
    try:
        for host in ("app.example.com", "secure.example.com"):
            plain.putrequest("GET", "/reviews/1", skip_host=True)
            plain.putheader("Host", host)
            plain.endheaders()
            response = plain.getresponse()
            response.read()
            assert response.status == 301
            assert response.getheader("server") == "istio-envoy"
            assert response.getheader("location") == f"https://{host}/reviews/1"
    finally:
        plain.close()


def test_secret_rotation_keeps_a_kept_alive_https_connection(mesh: Mesh, tmp_path: Path, echo: HttpEchoServer) -> None:
    (port,) = free_ports(1)
    ca = TestCA()
    old, new = ca.issue(["secure.example.com"]), ca.issue(["secure.example.com"])
    text = f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: rotate, namespace: {GATEWAY_NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: https, protocol: HTTPS}}
    hosts: [secure.example.com]
    tls: {{mode: SIMPLE, credentialName: rotate-cred}}
"""
    text += routes_yaml("rotate", echo.ports[0])
    start(mesh, tmp_path, text + secret_yaml("rotate-cred", GATEWAY_NS, old), port)
    envoy = mesh.envoys[0]
    context = client_context(ca)
    first_ok(port, "secure.example.com", context)

    kept = https(port, "secure.example.com", context)
    try:
        assert get(kept)[0] == 200
        assert kept.sock is not None
        assert kept.sock.getpeercert(binary_form=True) == old.der
        listeners_before = mesh.wait_synced()["proxies"][0]["types"]["Listener"]["acked"]
        modified_before = envoy.stats(filter="listener_manager").get("listener_manager.listener_modified", 0)

        apply(mesh, secret_yaml("rotate-cred", GATEWAY_NS, new))
        started = time.monotonic()

        wait_until(
            lambda: presented(port, "secure.example.com", context) == new.der,
            timeout=15,
            what="new handshakes to present the rotated certificate",
        )
        rotated_after = time.monotonic() - started
        status = mesh.wait_synced()
        assert status["proxies"][0]["types"]["Listener"]["acked"] == listeners_before
        assert envoy.stats(filter="listener_manager").get("listener_manager.listener_modified", 0) == modified_before
        # The kept-alive connection still carries requests, on the session it started with.
        for _ in range(5):
            status_code, echoed, response = get(kept)
            assert (status_code, echoed["version"]) == (200, "v1")
            assert not response.will_close
        assert kept.sock.getpeercert(binary_form=True) == old.der
        print(f"https rotation: new certificate {rotated_after * 1000:.0f} ms after apply; kept connection served")
    finally:
        kept.close()
