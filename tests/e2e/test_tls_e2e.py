"""Gateway TLS through a real Envoy: SNI passthrough to two TLS backends, SIMPLE and MUTUAL termination."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port, free_ports

from .backends import Backend, Pki, make_pki, tls_exchange
from .conftest import Mesh

pytestmark = pytest.mark.envoy

NAMES = ["a.example.com", "b.example.com", "gateway.example.com"]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki", NAMES)


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    started: list[Backend] = []
    yield started
    for b in started:
        b.kill()


def service_entry(name: str, port: int) -> str:
    """A STATIC ServiceEntry for a loopback backend: the cluster is outbound|<port>||<name>.internal."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{name}.internal]
  location: MESH_EXTERNAL
  ports: [{{number: {port}, name: tcp-{name}, protocol: TCP}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


def sni_passthrough(port: int, tls_routes: str, a: Backend, b: Backend) -> str:
    """A PASSTHROUGH Gateway for *.example.com on ``port``, a VirtualService with ``tls_routes`` (its ``tls:``
    list, flow style, one rule per line), and ServiceEntries for the two loopback backends."""
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: sni, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tls, protocol: TLS}}
    hosts: ["*.example.com"]
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: sni, namespace: default}}
spec:
  hosts: ["*.example.com"]
  gateways: [istio-system/sni]
  tls:
{tls_routes}{service_entry("backend-a", a.port)}{service_entry("backend-b", b.port)}"""


def start(mesh: Mesh, tmp_path: Path, text: str, *listener_ports: int) -> None:
    path = tmp_path / "input" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mesh.start([path])
    for port in listener_ports:
        mesh.envoys[0].wait_for_listener(f"0.0.0.0_{port}")


def first_reply(port: int, name: str, context: ssl.SSLContext) -> str:
    """The first exchange may race the last EDS update; later ones must not fail."""
    return wait_until(
        lambda: tls_exchange(port, name, context), timeout=15, what=f"a reply via {name}", ignore=(OSError,)
    )


def test_two_sni_names_on_one_passthrough_port_reach_two_tls_backends(
    mesh: Mesh, tmp_path: Path, pki: Pki, backends: list[Backend]
) -> None:
    a, b = Backend("backend-a", pki.server_context()), Backend("backend-b", pki.server_context())
    backends.extend([a, b])
    port = free_port()
    routes = f"""  - match: [{{sniHosts: [a.example.com]}}]
    route: [{{destination: {{host: backend-a.internal, port: {{number: {a.port}}}}}}}]
  - match: [{{sniHosts: [b.example.com]}}]
    route: [{{destination: {{host: backend-b.internal, port: {{number: {b.port}}}}}}}]
"""
    text = sni_passthrough(port, routes, a, b)
    start(mesh, tmp_path, text, port)
    client = pki.client_context()
    assert first_reply(port, "a.example.com", client) == "backend-a hello"
    assert first_reply(port, "b.example.com", client) == "backend-b hello"
    for _ in range(10):
        assert tls_exchange(port, "a.example.com", client) == "backend-a hello"
        assert tls_exchange(port, "b.example.com", client) == "backend-b hello"
    # No chain matches another name: Envoy closes the connection before any TLS handshake completes.
    with pytest.raises((ssl.SSLError, OSError)):
        tls_exchange(port, "c.example.com", client)


def test_terminated_tls_simple_and_mutual(mesh: Mesh, tmp_path: Path, pki: Pki, backends: list[Backend]) -> None:
    plain = Backend("plain")
    backends.append(plain)
    simple, mutual = free_ports(2)
    text = f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: terminate, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {simple}, name: tls-simple, protocol: TLS}}
    hosts: [gateway.example.com]
    tls: {{mode: SIMPLE, serverCertificate: {pki.server_cert}, privateKey: {pki.server_key}}}
  - port: {{number: {mutual}, name: tls-mutual, protocol: TLS}}
    hosts: ["*"]
    tls:
      mode: MUTUAL
      serverCertificate: {pki.server_cert}
      privateKey: {pki.server_key}
      caCertificates: {pki.ca}
      minProtocolVersion: TLSV1_2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: terminate, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [istio-system/terminate]
  tcp:
  - route: [{{destination: {{host: plain.internal, port: {{number: {plain.port}}}}}}}]
{service_entry("plain", plain.port)}"""
    start(mesh, tmp_path, text, simple, mutual)
    assert first_reply(simple, "gateway.example.com", pki.client_context()) == "plain hello"
    # The SIMPLE chain matches its host by SNI only.
    with pytest.raises((ssl.SSLError, OSError)):
        tls_exchange(simple, "a.example.com", pki.client_context())
    # A client that does not trust the test CA refuses the gateway's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_exchange(simple, "gateway.example.com", ssl.create_default_context())

    assert first_reply(mutual, "a.example.com", pki.client_context(with_cert=True)) == "plain hello"
    # Without a client certificate the gateway aborts the handshake (with TLS 1.3 the client learns on read).
    assert refused(mutual, "a.example.com", pki.client_context())


def refused(port: int, name: str, context: ssl.SSLContext) -> bool:
    """The handshake fails, or the connection closes without a reply."""
    try:
        return tls_exchange(port, name, context) == ""
    except (ssl.SSLError, OSError):
        return True
