"""Certificates from Kubernetes Secrets through a real Envoy: credentialName → SDS over ADS (SotW and delta).

Certificates are made in the test (tests/pki.py). Termination (SIMPLE, MUTUAL with a ``-cacert`` Secret),
origination (DestinationRule MUTUAL), rotation under live connections, and a missing Secret applied later.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports
from tests.pki import Issued, TestCA, secret_yaml

from .backends import Backend
from .conftest import Mesh
from .test_tls_e2e import backends as backends  # a fixture: used by its name
from .test_tls_e2e import service_entry

pytestmark = pytest.mark.envoy

GATEWAY_NS = "istio-system"  # the gateway proxy's namespace: kubernetes://<name> reads Secrets from here


def route_all(gateway: str, host: str, port: int) -> str:
    return f"""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {gateway}, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [{GATEWAY_NS}/{gateway}]
  tcp:
  - route: [{{destination: {{host: {host}, port: {{number: {port}}}}}}}]
"""


def credential_gateway(name: str, port: int, backend: Backend, mode: str = "SIMPLE") -> str:
    """A Gateway terminating TLS on ``port`` with credentialName ``<name>-cred``, routing everything to
    ``backend`` (through a ServiceEntry)."""
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {GATEWAY_NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tls, protocol: TLS}}
    hosts: [gateway.example.com]
    tls: {{mode: {mode}, credentialName: {name}-cred}}
{route_all(name, f"{backend.name}.internal", backend.port)}{service_entry(backend.name, backend.port)}"""


def start(mesh: Mesh, tmp_path: Path, text: str, *listener_ports: int, timeout: float = 15) -> None:
    path = tmp_path / "input" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mesh.start([path], with_envoy=False)
    mesh.start_envoy()
    for port in listener_ports:
        mesh.envoys[0].wait_for_listener(f"0.0.0.0_{port}", timeout=timeout)


def apply(mesh: Mesh, text: str) -> None:
    code, payload = request_json(
        mesh.control_plane.http, "/api/apply?source=test", body=text.encode(), token=mesh.control_plane.token
    )
    assert code == 200, payload


def client_context(ca: TestCA, cert: Issued | None = None, tmp: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca.pem.decode())
    if cert is not None:
        assert tmp is not None
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "client.pem").write_bytes(cert.cert)
        (tmp / "client.key").write_bytes(cert.key)
        ctx.load_cert_chain(tmp / "client.pem", tmp / "client.key")
    return ctx


def connect(port: int, name: str, context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        return context.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


def exchange(sock: socket.socket, line: bytes = b"hello\n") -> str:
    sock.sendall(line)
    return sock.makefile("rb").readline().decode().strip()


def handshake(port: int, name: str, context: ssl.SSLContext) -> tuple[bytes, str]:
    """One new connection: the certificate the gateway presented (DER) and the reply to one line."""
    with connect(port, name, context) as sock:
        der = sock.getpeercert(binary_form=True)
        assert der is not None
        return der, exchange(sock)


def first(port: int, name: str, context: ssl.SSLContext, timeout: float = 20) -> tuple[bytes, str]:
    """The first handshake may race the Secret reaching Envoy; later ones must not fail."""
    return wait_until(
        lambda: (lambda r: r if r[1] else None)(handshake(port, name, context)),
        timeout=timeout,
        what=f"a TLS reply on port {port}",
        ignore=(OSError,),
    )


def refused(port: int, name: str, context: ssl.SSLContext) -> bool:
    try:
        return handshake(port, name, context)[1] == ""
    except (ssl.SSLError, OSError):
        return True


def test_simple_and_mutual_termination_from_credential_name(
    mesh: Mesh, tmp_path: Path, backends: list[Backend]
) -> None:
    plain = Backend("plain")
    backends.append(plain)
    simple, mutual = free_ports(2)
    ca = TestCA()
    server = ca.issue(["gateway.example.com"])
    client = ca.issue(["client.example.com"], client=True)
    text = f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: terminate, namespace: {GATEWAY_NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {simple}, name: tls-simple, protocol: TLS}}
    hosts: [gateway.example.com]
    tls: {{mode: SIMPLE, credentialName: simple-cred}}
  - port: {{number: {mutual}, name: tls-mutual, protocol: TLS}}
    hosts: ["*"]
    tls: {{mode: MUTUAL, credentialName: mutual-cred}}
{route_all("terminate", "plain.internal", plain.port)}{service_entry("plain", plain.port)}"""
    # SIMPLE: a kubernetes.io/tls Secret; MUTUAL: a generic one whose CA comes from the <name>-cacert Secret.
    text += secret_yaml("simple-cred", GATEWAY_NS, server)
    text += secret_yaml("mutual-cred", GATEWAY_NS, server, generic=True)
    text += secret_yaml("mutual-cred-cacert", GATEWAY_NS, ca=ca.pem, generic=True)
    start(mesh, tmp_path, text, simple, mutual)

    der, reply = first(simple, "gateway.example.com", client_context(ca))
    assert reply == "plain hello"
    assert der == server.der
    # A client that does not trust the test CA refuses the gateway's certificate.
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(simple, "gateway.example.com", ssl.create_default_context())

    with_cert = client_context(ca, client, tmp_path / "client")
    assert first(mutual, "gateway.example.com", with_cert)[1] == "plain hello"
    for _ in range(5):
        assert handshake(mutual, "gateway.example.com", with_cert)[1] == "plain hello"
    # Without a client certificate the gateway aborts the handshake (TLS 1.3: the client learns on read).
    assert refused(mutual, "gateway.example.com", client_context(ca))
    # A client certificate from another CA is refused too: the -cacert Secret is what validates clients.
    other = TestCA("another CA")
    assert refused(mutual, "gateway.example.com", client_context(ca, other.issue(["x"], client=True), tmp_path / "o"))


def test_upstream_mutual_from_destination_rule_credential_name(
    mesh: Mesh, tmp_path: Path, backends: list[Backend]
) -> None:
    ca = TestCA()
    backend_cert = ca.issue(["backend.internal"])
    gateway_client = ca.issue(["gateway.client"], client=True)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "s.pem").write_bytes(backend_cert.cert)
    (tmp_path / "b" / "s.key").write_bytes(backend_cert.key)
    server_ctx.load_cert_chain(tmp_path / "b" / "s.pem", tmp_path / "b" / "s.key")
    server_ctx.load_verify_locations(cadata=ca.pem.decode())
    server_ctx.verify_mode = ssl.CERT_REQUIRED  # only a client certificate of the test CA gets an answer
    backend = Backend("tls-backend", server_ctx)
    backends.append(backend)
    (port,) = free_ports(1)
    text = f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: plain, namespace: {GATEWAY_NS}}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tcp, protocol: TCP}}
    hosts: ["*"]
{route_all("plain", "backend.internal", backend.port)}{service_entry("backend", backend.port)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: backend, namespace: default}}
spec:
  host: backend.internal
  trafficPolicy:
    tls: {{mode: MUTUAL, credentialName: upstream-cred, sni: backend.internal}}
"""
    text += secret_yaml("upstream-cred", GATEWAY_NS, gateway_client, ca=ca.pem)
    start(mesh, tmp_path, text, port)

    def reply() -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            return exchange(sock)

    assert wait_until(reply, timeout=20, what="a reply through upstream mTLS", ignore=(OSError,)) == "tls-backend hello"
    for _ in range(5):
        assert reply() == "tls-backend hello"
    stats = mesh.envoys[0].stats(filter="outbound.*backend.internal.*ssl.handshake")
    assert sum(v for k, v in stats.items() if k.endswith("ssl.handshake")) >= 6, stats


def test_rotation_keeps_live_connections_and_new_handshakes_get_the_new_certificate(
    mesh: Mesh, tmp_path: Path, backends: list[Backend]
) -> None:
    plain = Backend("plain")
    backends.append(plain)
    (port,) = free_ports(1)
    ca = TestCA()
    old, new = ca.issue(["gateway.example.com"]), ca.issue(["gateway.example.com"])
    text = credential_gateway("rotate", port, plain)
    start(mesh, tmp_path, text + secret_yaml("rotate-cred", GATEWAY_NS, old), port)
    envoy = mesh.envoys[0]
    context = client_context(ca)
    assert first(port, "gateway.example.com", context)[0] == old.der

    live = [connect(port, "gateway.example.com", context) for _ in range(20)]
    try:
        for i, sock in enumerate(live):
            assert sock.getpeercert(binary_form=True) == old.der
            assert exchange(sock, f"before {i}\n".encode()) == f"plain before {i}"
        listeners_before = mesh.wait_synced()["proxies"][0]["types"]["Listener"]["acked"]
        modified_before = envoy.stats(filter="listener_manager").get("listener_manager.listener_modified", 0)

        apply(mesh, secret_yaml("rotate-cred", GATEWAY_NS, new))
        started = time.monotonic()
        wait_until(
            lambda: handshake(port, "gateway.example.com", context)[0] == new.der,
            timeout=15,
            what="a new handshake to present the rotated certificate",
            ignore=(OSError,),
        )
        rotated_after = time.monotonic() - started
        status = mesh.wait_synced()
        # Only the SDS resource changed: the listener's version (its content hash) did not, so no drain.
        assert status["proxies"][0]["types"]["Listener"]["acked"] == listeners_before
        stats = envoy.stats(filter="listener_manager")
        assert stats.get("listener_manager.listener_modified", 0) == modified_before
        for i, sock in enumerate(live):
            assert sock.getpeercert(binary_form=True) == old.der  # the session it started with
            assert exchange(sock, f"after {i}\n".encode()) == f"plain after {i}"
        for _ in range(5):
            der, reply = handshake(port, "gateway.example.com", context)
            assert (der, reply) == (new.der, "plain hello")
        print(f"rotation: new certificate on new handshakes {rotated_after * 1000:.0f} ms after apply; 20/20 kept")
    finally:
        for sock in live:
            sock.close()


def status_text(mesh: Mesh) -> str:
    cp = mesh.control_plane
    cmd = [sys.executable, "-m", "tcpmesh", "status", "--server", cp.http, "--token-file", str(cp.token_file)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def late_secret_config(backends: list[Backend]) -> tuple[int, TestCA, Issued, str]:
    """A SIMPLE server naming a Secret (late-cred) the config does not have yet: port, CA, certificate, YAML."""
    plain = Backend("plain")
    backends.append(plain)
    (port,) = free_ports(1)
    ca = TestCA()
    server = ca.issue(["gateway.example.com"])
    text = credential_gateway("late", port, plain)
    return port, ca, server, text


def test_missing_secret_is_reported_and_applying_it_completes_the_listener(
    mesh: Mesh, tmp_path: Path, backends: list[Backend]
) -> None:
    port, ca, server, text = late_secret_config(backends)
    path = tmp_path / "input" / "config.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    mesh.start([path], with_envoy=False)
    envoy = mesh.start_envoy()
    context = client_context(ca)

    def missing() -> list[dict[str, object]]:
        creds = mesh.control_plane.status().get("credentials", [])
        return [c for c in creds if c["name"] == "kubernetes://late-cred" and not c["served"]]

    (entry,) = wait_until(missing, timeout=15, what="status to report the missing Secret")
    assert entry["problem"] == f"secret {GATEWAY_NS}/late-cred not found"
    shown = status_text(mesh)
    assert (
        f"SECRET NOT SERVED to {entry['proxy']}: kubernetes://late-cred: secret {GATEWAY_NS}/late-cred not found"
        in shown
    )
    # The listener is there (istiod's behaviour: it names the secret, no chain is dropped) but serves no
    # certificate: Envoy waits for the secret, then refuses handshakes on the chain.
    envoy.wait_for(
        lambda: "kubernetes://late-cred" in str(envoy.config_dump(resource="dynamic_warming_secrets")),
        what="Envoy to wait for the secret its listener names",
    )
    assert refused(port, "gateway.example.com", context)

    apply(mesh, secret_yaml("late-cred", GATEWAY_NS, server))
    der, reply = first(port, "gateway.example.com", context, timeout=30)
    assert (der, reply) == (server.der, "plain hello")
    assert not missing()
    assert envoy.running  # nothing was restarted


@pytest.mark.slow
def test_missing_secret_past_the_initial_fetch_timeout_refuses_handshakes_until_applied(
    mesh: Mesh, tmp_path: Path, backends: list[Backend]
) -> None:
    """Envoy's side of istiod's behaviour: the listener warms for the SDS initial fetch timeout (15 s; the whole
    server stays INITIALIZING when it is an initial listener), then is active and resets every handshake on the
    chain (downstream_context_secrets_not_ready) until the Secret arrives; no listener change is needed."""
    port, ca, server, text = late_secret_config(backends)
    start(mesh, tmp_path, text, port, timeout=40)
    envoy = mesh.envoys[0]
    stat = f"listener.0.0.0.0_{port}.server_ssl_socket_factory.downstream_context_secrets_not_ready"
    context = client_context(ca)

    def reset_by_envoy() -> bool:
        # Connection refused while the listener warms; afterwards the handshake is reset and counted.
        assert refused(port, "gateway.example.com", context)
        return envoy.stats(filter="downstream_context_secrets_not_ready").get(stat, 0) >= 1

    envoy.wait_for(reset_by_envoy, timeout=40, interval=0.5, what="handshakes refused for the missing secret")
    assert envoy.server_state() == "LIVE"  # warming ended at the initial fetch timeout, without the secret
    listener_version = mesh.wait_synced()["proxies"][0]["types"]["Listener"]["acked"]

    apply(mesh, secret_yaml("late-cred", GATEWAY_NS, server))
    assert first(port, "gateway.example.com", context)[1] == "plain hello"
    assert mesh.wait_synced()["proxies"][0]["types"]["Listener"]["acked"] == listener_version
