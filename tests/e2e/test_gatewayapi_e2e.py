"""Gateway API (Gateway + TCPRoute / TLSRoute) through a real Envoy: each Gateway API Gateway gets its own Envoy,
labelled gateway.networking.k8s.io/gateway-name=<name>, and the routes' splits, refusals and SNI matching are
measured on real connections. The cases mirror the Gateway API conformance suite (conformance/tests/tcproute-*,
tlsroute-*), adapted to tcpmesh's echo pods and loopback ports."""

from __future__ import annotations

import collections
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tcpmesh.apiclient import request_json
from tcpmesh.cli import main
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports

from .backends import Backend, Pki, closed_without_reply, make_pki, tls_exchange
from .conftest import SAMPLES, Mesh, make_mesh
from .traffic import assert_split, exchange, replies

pytestmark = pytest.mark.envoy

NS = "gateway-conformance-infra"


@pytest.fixture
def gmesh(tmp_path: Path) -> Iterator[Mesh]:
    """A mesh with a SotW Envoy (the Istio-API tests already run both protocols over the same translator)."""
    m = make_mesh(tmp_path, "GRPC")
    try:
        yield m
    finally:
        m.stop()


def echo(name: str, namespace: str = NS, port: int = 3000) -> str:
    """A Service and a one-replica Deployment whose pod answers ``<name> <line>``."""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  selector: {{app: {name}}}
  ports: [{{name: tcp, port: {port}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers: [{{name: echo, image: docker.io/istio/tcp-echo-server:1.2, args: ["{port}", "{name}"]}}]
"""


def gateway(name: str, *listeners: tuple[str, int]) -> str:
    items = "\n".join(
        f"  - {{name: {ln}, protocol: TCP, port: {port}, allowedRoutes: {{kinds: [{{kind: TCPRoute}}]}}}}"
        for ln, port in listeners
    )
    return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: {NS}}}
spec:
  gatewayClassName: istio
  listeners:
{items}
"""


def tcp_route(name: str, parent: str, backends: list[str], *, section: str = "", port: int = 0) -> str:
    ref = f"name: {parent}" + (f", sectionName: {section}" if section else "") + (f", port: {port}" if port else "")
    return f"""---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: {name}, namespace: {NS}}}
spec:
  parentRefs: [{{{ref}}}]
  rules:
  - backendRefs: [{", ".join(backends)}]
"""


def start(mesh: Mesh, tmp_path: Path, text: str) -> None:
    path = tmp_path / "input" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    mesh.start([path])


def envoy_of(mesh: Mesh, gateway_name: str, namespace: str = NS) -> EnvoyProcess:
    return mesh.gateway_envoys[(namespace, gateway_name)]


def listening(envoy: EnvoyProcess, port: int) -> int:
    envoy.wait_for_listener(f"0.0.0.0_{port}")
    return port


def first_reply(port: int) -> str:
    """The first connection may race the last EDS update; later ones must not fail."""
    return wait_until(lambda: exchange(port), timeout=15, what=f"a reply on {port}", ignore=(OSError,))


def get_object(mesh: Mesh, kind: str, name: str, namespace: str = NS) -> dict[str, Any]:
    query = f"/api/resources?kind={kind}&name={name}&namespace={namespace}&content=1"
    code, payload = request_json(mesh.control_plane.http, query, token=mesh.control_plane.token)
    assert code == 200, payload
    (item,) = payload["items"]
    return dict(item["object"])


def conditions(entry: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in entry["conditions"]}


def refused(port: int) -> bool:
    """The connection is accepted by Envoy and closed without any reply (no cluster behind the route)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"hello\n")
        return closed_without_reply(sock)


# --- the seeds' tcp-echo shift in Gateway API form ------------------------------------------------------------


def test_tcp_echo_shift_as_gateway_and_tcproute(mesh: Mesh, tmp_path: Path) -> None:
    """Seed 000's 100/0 → 80/20 → 20/80, written as Gateway + TCPRoute (Istio's samples/tcp-echo/gateway-api):
    the same splits as the Istio-API version, on the Gateway's own Envoy, with a live connection kept open
    across both shifts (the connection-preserving ECDS mode serves the converted route unchanged)."""
    mesh.start(mesh.copy_samples([SAMPLES / "gateway-api-tcp-echo"], tmp_path / "in"))
    envoy = envoy_of(mesh, "tcp-echo-gateway", "default")
    port = listening(envoy, mesh.port(31400))
    assert first_reply(port) == "one hello"
    assert_split(replies(port, 100), {"one hello": 1.0})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as live:
        reader = live.makefile("rb")
        live.sendall(b"before\n")
        assert reader.readline() == b"one before\n"
        for generation, (sample, v1) in enumerate((("tcp-echo-20-v2.yaml", 0.8), ("tcp-echo-80-v2.yaml", 0.2)), 2):
            result = mesh.apply(SAMPLES / "gateway-api-tcp-echo-shift" / sample)
            assert result["code"] == 200, result
            mesh.wait_synced(generation=generation)
            assert_split(replies(port, 400), {"one hello": v1, "two hello": 1 - v1})
            live.sendall(b"still\n")
            assert reader.readline() == b"one still\n"  # the live connection stays on v1
    assert (
        envoy.admin.stats(filter="^listener_manager.listener_modified$").get("listener_manager.listener_modified", 0)
        == 0
    )


# --- TCPRoute conformance cases --------------------------------------------------------------------------------


def test_weighted_routing_70_30_0(gmesh: Mesh, tmp_path: Path) -> None:
    """tcproute-weighted-routing: 70/30/0 within ±5 % (and a binomial test) over 600 connections; the weight-0
    backend gets none."""
    port = gmesh.port(31400)
    backends = [f"{{name: tcp-backend-v{i}, port: 3000, weight: {w}}}" for i, w in ((1, 70), (2, 30), (3, 0))]
    text = (
        echo("tcp-backend-v1")
        + echo("tcp-backend-v2")
        + echo("tcp-backend-v3")
        + gateway("tcp-weighted-gateway", ("tcp", port))
        + tcp_route("tcp-weighted-route", "tcp-weighted-gateway", backends, section="tcp")
    )
    start(gmesh, tmp_path, text)
    listening(envoy_of(gmesh, "tcp-weighted-gateway"), port)
    first_reply(port)
    n = 600
    counts = replies(port, n)
    # assert_split bounds each share binomially (a fixed ±5 % at 600 connections failed 1 run in 150).
    assert_split(counts, {"tcp-backend-v1 hello": 0.7, "tcp-backend-v2 hello": 0.3, "tcp-backend-v3 hello": 0.0})
    route = get_object(gmesh, "tcproute", "tcp-weighted-route")
    (parent,) = route["status"]["parents"]
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}


def test_invalid_and_cross_namespace_backends_refuse_connections(gmesh: Mesh, tmp_path: Path) -> None:
    """tcproute-invalid-backendref-nonexistent, -invalid-cross-namespace-backend-ref and -reference-grant: a
    missing backend, or a cross-namespace one no ReferenceGrant allows, stays in the route and its connections are
    refused (ResolvedRefs False, BackendNotFound / RefNotPermitted); a grant lets the reference through, live."""
    p1, p2, p3 = gmesh.port(31400), gmesh.port(31401), free_ports_except(gmesh, 1)[0]
    web = "gateway-conformance-web-backend"
    text = (
        echo("tcp-reference-grant-backend", web)
        + echo("other-backend", web)
        + gateway("gw", ("missing", p1), ("cross", p2), ("granted", p3))
        + tcp_route("missing", "gw", ["{name: does-not-exist, port: 3000}"], section="missing")
        + tcp_route("cross", "gw", [f"{{name: other-backend, namespace: {web}, port: 3000}}"], section="cross")
        + tcp_route(
            "granted", "gw", [f"{{name: tcp-reference-grant-backend, namespace: {web}, port: 3000}}"], section="granted"
        )
        + grant("tcp-reference-grant", "tcp-reference-grant-backend")
    )
    start(gmesh, tmp_path, text)
    envoy = envoy_of(gmesh, "gw")
    for port in (p1, p2, p3):
        listening(envoy, port)
    assert first_reply(p3) == "tcp-reference-grant-backend hello"
    assert refused(p1)
    assert refused(p2)
    expected = {"missing": "BackendNotFound", "cross": "RefNotPermitted", "granted": "ResolvedRefs"}
    for name, reason in expected.items():
        (parent,) = get_object(gmesh, "tcproute", name)["status"]["parents"]
        assert conditions(parent)["Accepted"] == ("True", "Accepted")
        assert conditions(parent)["ResolvedRefs"] == ("True" if name == "granted" else "False", reason)
    # The grant for other-backend, applied while running: the refused listener now reaches it.
    path = tmp_path / "grant.yaml"
    path.write_text(grant("other", "other-backend"))
    assert gmesh.apply(path)["code"] == 200
    gmesh.wait_synced(generation=2)
    assert first_reply(p2) == "other-backend hello"
    (parent,) = get_object(gmesh, "tcproute", "cross")["status"]["parents"]
    assert conditions(parent)["ResolvedRefs"] == ("True", "ResolvedRefs")


def grant(name: str, service: str) -> str:
    return f"""---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: {name}, namespace: gateway-conformance-web-backend}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: {NS}}}]
  to: [{{group: "", kind: Service, name: {service}}}]
"""


def free_ports_except(mesh: Mesh, n: int) -> list[int]:
    """Free ports distinct from the mesh's own (free_ports holds its sockets only during one call)."""
    taken = set(mesh.gateway_ports.values()) | {mesh.ports.ads, mesh.ports.http}
    while True:
        ports = free_ports(n)
        if not taken & set(ports):
            return ports


def test_parent_ref_port_and_section_name(gmesh: Mesh, tmp_path: Path) -> None:
    """tcproute-parentref-port-and-section-name: a route by port only, by sectionName only, and by both, each on
    its own listener; a parentRef naming a port no listener has is NoMatchingParent and attaches nowhere."""
    p1, p2 = gmesh.port(31400), gmesh.port(31401)
    p3, p4 = free_ports_except(gmesh, 2)
    text = (
        echo("tcp-echo-one")
        + echo("tcp-echo-two")
        + echo("tcp-echo-three")
        + gateway("tcp-multi-listener-gateway", ("one", p1), ("two", p2), ("three", p3))
        + tcp_route("tcp-route-by-port", "tcp-multi-listener-gateway", ["{name: tcp-echo-one, port: 3000}"], port=p1)
        + tcp_route(
            "tcp-route-by-section", "tcp-multi-listener-gateway", ["{name: tcp-echo-two, port: 3000}"], section="two"
        )
        + tcp_route(
            "tcp-route-by-section-and-port",
            "tcp-multi-listener-gateway",
            ["{name: tcp-echo-three, port: 3000}"],
            section="three",
            port=p3,
        )
        + tcp_route("tcp-route-no-port", "tcp-multi-listener-gateway", ["{name: tcp-echo-one, port: 3000}"], port=p4)
    )
    start(gmesh, tmp_path, text)
    envoy = envoy_of(gmesh, "tcp-multi-listener-gateway")
    for port, reply in ((p1, "tcp-echo-one"), (p2, "tcp-echo-two"), (p3, "tcp-echo-three")):
        assert first_reply(listening(envoy, port)) == f"{reply} hello"
        assert_split(replies(port, 20), {f"{reply} hello": 1.0})
    (parent,) = get_object(gmesh, "tcproute", "tcp-route-no-port")["status"]["parents"]
    assert conditions(parent)["Accepted"] == ("False", "NoMatchingParent")
    assert parent["conditions"][0]["message"] == "; ".join([f"port {p4} not found"] * 3)
    status = get_object(gmesh, "gtw", "tcp-multi-listener-gateway")["status"]
    assert [(lst["name"], lst["attachedRoutes"]) for lst in status["listeners"]] == [
        ("one", 1),
        ("two", 1),
        ("three", 1),
    ]


def test_multiple_routes_on_one_listener_oldest_wins(gmesh: Mesh, tmp_path: Path) -> None:
    """tcproute-multiple-routes-attachment: both routes are Accepted and counted in attachedRoutes, and only the
    older one (created first) gets the listener's connections, before and after the newer one is applied."""
    port = gmesh.port(31400)
    text = (
        echo("tcp-attach-backend-1")
        + echo("tcp-attach-backend-2")
        + gateway("tcp-multi-route-attach-gateway", ("tcp", port))
        + tcp_route(
            "tcproute-attach-older", "tcp-multi-route-attach-gateway", ["{name: tcp-attach-backend-1, port: 3000}"]
        )
    )
    start(gmesh, tmp_path, text)
    assert (
        first_reply(listening(envoy_of(gmesh, "tcp-multi-route-attach-gateway"), port)) == "tcp-attach-backend-1 hello"
    )
    newer = tmp_path / "newer.yaml"
    newer.write_text(
        tcp_route(
            "tcproute-attach-newer", "tcp-multi-route-attach-gateway", ["{name: tcp-attach-backend-2, port: 3000}"]
        )
    )
    assert gmesh.apply(newer)["code"] == 200
    gmesh.wait_synced(generation=2)
    for name in ("tcproute-attach-older", "tcproute-attach-newer"):
        (parent,) = get_object(gmesh, "tcproute", name)["status"]["parents"]
        assert conditions(parent)["Accepted"] == ("True", "Accepted")
    (listener,) = get_object(gmesh, "gtw", "tcp-multi-route-attach-gateway")["status"]["listeners"]
    assert listener["attachedRoutes"] == 2
    assert listener["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TCPRoute"}]
    assert_split(replies(port, 100), {"tcp-attach-backend-1 hello": 1.0})


def test_all_zero_weights_and_invalid_kind_refuse(gmesh: Mesh, tmp_path: Path) -> None:
    """All backends weighted 0: connections go nowhere (Istio's zero-weight blackhole); an unsupported backend
    kind is kept with its share, so half the connections are refused and half served."""
    p1, p2 = gmesh.port(31400), gmesh.port(31401)
    text = (
        echo("tcp-backend")
        + gateway("gw", ("zero", p1), ("half", p2))
        + tcp_route("zero", "gw", ["{name: tcp-backend, port: 3000, weight: 0}"], section="zero")
        + tcp_route(
            "half",
            "gw",
            ["{name: tcp-backend, port: 3000, weight: 1}", "{group: example.com, kind: Widget, name: w, weight: 1}"],
            section="half",
        )
    )
    start(gmesh, tmp_path, text)
    envoy = envoy_of(gmesh, "gw")
    listening(envoy, p1)
    assert first_reply(listening(envoy, p2)) == "tcp-backend hello"
    for _ in range(5):
        assert refused(p1)
    n = 200
    served = sum(1 for _ in range(n) if not refused(p2))
    assert_split(collections.Counter(served=served, refused=n - served), {"served": 0.5, "refused": 0.5})
    (parent,) = get_object(gmesh, "tcproute", "half")["status"]["parents"]
    assert conditions(parent)["ResolvedRefs"] == ("False", "InvalidKind")


def service_entry(name: str, port: int) -> str:
    """A STATIC ServiceEntry for a loopback TLS backend (a TLSRoute reaches it by ``kind: Hostname``)."""
    return f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {NS}}}
spec:
  hosts: [{name}.internal]
  location: MESH_EXTERNAL
  ports: [{{number: {port}, name: tls-{name}, protocol: TLS}}]
  resolution: STATIC
  endpoints: [{{address: 127.0.0.1}}]
"""


def tls_route(name: str, hostnames: list[str], backend: str, port: int) -> str:
    return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{name: {name}, namespace: {NS}}}
spec:
  parentRefs: [{{name: tls-gateway}}]
  hostnames: [{", ".join(f'"{h}"' for h in hostnames)}]
  rules:
  - backendRefs: [{{group: networking.istio.io, kind: Hostname, name: {backend}.internal, port: {port}}}]
"""


def test_tlsroute_passthrough_by_sni_with_hostname_intersection(gmesh: Mesh, tmp_path: Path) -> None:
    """tlsroute-simple-same-namespace and tlsroute-hostname-intersection, Passthrough: an exact route hostname
    and a less specific one (*.com, narrowed to the listener's *.example.com) reach their TLS backends by SNI;
    other names are refused; a route whose hostnames miss the listener's is NoMatchingListenerHostname."""
    pki: Pki = make_pki(tmp_path / "pki", ["a.example.com", "b.example.com", "c.other.org"])
    a, b = Backend("backend-a", pki.server_context()), Backend("backend-b", pki.server_context())
    try:
        port = gmesh.port(31400)
        text = (
            f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: tls-gateway, namespace: {NS}}}
spec:
  gatewayClassName: istio
  listeners:
  - name: tls
    protocol: TLS
    port: {port}
    hostname: "*.example.com"
    tls: {{mode: Passthrough}}
"""
            + service_entry("backend-a", a.port)
            + service_entry("backend-b", b.port)
            + tls_route("exact", ["a.example.com"], "backend-a", a.port)
            + tls_route("less-specific", ["*.com"], "backend-b", b.port)
            + tls_route("elsewhere", ["c.other.org"], "backend-a", a.port)
        )
        start(gmesh, tmp_path, text)
        listening(envoy_of(gmesh, "tls-gateway"), port)
        client = pki.client_context()
        for name, backend in (("a.example.com", "backend-a"), ("b.example.com", "backend-b")):
            reply = wait_until(
                lambda n=name: tls_exchange(port, n, client), timeout=15, what=f"a reply via {name}", ignore=(OSError,)
            )
            assert reply == f"{backend} hello"
            for _ in range(5):
                assert tls_exchange(port, name, client) == f"{backend} hello"
        with pytest.raises((ssl.SSLError, OSError)):
            tls_exchange(port, "c.other.org", client)
        (parent,) = get_object(gmesh, "tlsroute", "elsewhere")["status"]["parents"]
        assert conditions(parent)["Accepted"] == ("False", "NoMatchingListenerHostname")
        (listener,) = get_object(gmesh, "gtw", "tls-gateway")["status"]["listeners"]
        assert listener["attachedRoutes"] == 2
        assert listener["supportedKinds"] == [{"group": "gateway.networking.k8s.io", "kind": "TLSRoute"}]
    finally:
        a.kill()
        b.kill()


def test_cli_get_status_and_dump(gmesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tcpmesh get tcproute NAME -o yaml` shows the route as stored with the Gateway API status, `get gtw` the
    Gateway's listeners, `status` one line per resource, and `dump --server --proxy <the Gateway's Envoy>` what
    that Envoy is served; offline `dump --labels gateway.networking.k8s.io/gateway-name=...` gives the same."""
    port = gmesh.port(31400)
    text = echo("tcp-backend") + gateway("gw", ("tcp", port))
    text += tcp_route("r", "gw", ["{name: tcp-backend, port: 3000}", "{name: gone, port: 3000}"], section="tcp")
    start(gmesh, tmp_path, text)
    listening(envoy_of(gmesh, "gw"), port)
    server = ["--server", gmesh.control_plane.http, "--token-file", str(gmesh.control_plane.token_file)]
    assert main(["get", "tcproute", "r", "-n", NS, "-o", "yaml", *server]) == 0
    got = yaml.safe_load(capsys.readouterr().out)
    assert got["kind"] == "TCPRoute"
    assert got["spec"]["rules"][0]["backendRefs"][1] == {"name": "gone", "port": 3000}
    (parent,) = got["status"]["parents"]
    assert parent["parentRef"] == {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw",
                                   "sectionName": "tcp"}  # fmt: skip
    assert conditions(parent) == {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("False", "BackendNotFound")}
    assert {c["observedGeneration"] for c in parent["conditions"]} == {got["metadata"]["generation"]}
    assert main(["get", "gtw", "gw", "-n", NS, "-o", "json", *server]) == 0
    gw = json.loads(capsys.readouterr().out)
    assert gw["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert conditions(gw["status"]) == {"Accepted": ("True", "Accepted"), "Programmed": ("True", "Programmed")}
    programmed = next(c for c in gw["status"]["conditions"] if c["type"] == "Programmed")
    assert programmed["message"] == "Resource programmed, served to 1 connected proxy"  # the Gateway's own Envoy
    assert gw["status"]["listeners"][0]["attachedRoutes"] == 1
    assert main(["status", *server]) == 0
    out = capsys.readouterr().out
    assert "GATEWAY API" in out
    assert f"TCPRoute {NS}/r -> gw/tcp: Accepted, ResolvedRefs=False BackendNotFound: backend(gone." in out
    proxy_id = f"router~127.0.0.1~gw-istio.{NS}~{NS}.svc.cluster.local"
    assert main(["dump", *server, "--proxy", proxy_id, "--type", "extension_configs", "-o", "json"]) == 0
    served = json.loads(capsys.readouterr().out)
    path = tmp_path / "input" / "config.yaml"
    labels = "gateway.networking.k8s.io/gateway-name=gw"
    assert main(["dump", str(path), "--labels", labels, "--type", "extension_configs", "-o", "json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    assert served == offline
    (config,) = [c for c in offline["extension_configs"] if c["name"].endswith("~tcp_proxy")]  # and the ~drain
    clusters = [c["name"] for c in config["typed_config"]["weighted_clusters"]["clusters"]]
    assert clusters == [
        f"outbound|3000||tcp-backend.{NS}.svc.cluster.local",
        f"outbound|3000||gone.{NS}.svc.cluster.local",
    ]


def test_terminate_serves_the_certificate_ref_over_sds_and_rotates_without_a_cut(gmesh: Mesh, tmp_path: Path) -> None:
    """tlsroute/gateway-tls-terminate: a TCPRoute on a Terminate listener. The Envoy presents the Secret that
    certificateRefs names (kubernetes-gateway://<ns>/<name>, served by SDS), forwards the decrypted stream, and
    a new Secret reaches new handshakes while a live connection keeps echoing (no listener change)."""
    from tests.pki import TestCA, secret_yaml

    from .test_sds_e2e import apply, client_context, first, handshake

    port = gmesh.port(31400)
    ca = TestCA()
    old, new = ca.issue(["gateway.example.com"]), ca.issue(["gateway.example.com"])
    gateway_text = f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: term, namespace: {NS}}}
spec:
  gatewayClassName: istio
  listeners:
  - name: tls
    protocol: TLS
    port: {port}
    hostname: gateway.example.com
    tls: {{mode: Terminate, certificateRefs: [{{name: gateway-cert}}]}}
    allowedRoutes: {{kinds: [{{kind: TCPRoute}}]}}
"""
    text = echo("tcp-backend") + gateway_text + secret_yaml("gateway-cert", NS, old)
    text += tcp_route("r", "term", ["{name: tcp-backend, port: 3000}"], section="tls")
    start(gmesh, tmp_path, text)
    envoy = envoy_of(gmesh, "term")
    listening(envoy, port)
    client = client_context(ca)
    der, reply = first(port, "gateway.example.com", client)
    assert (der, reply) == (old.der, "tcp-backend hello")
    (listener,) = get_object(gmesh, "gtw", "term")["status"]["listeners"]
    assert conditions(listener)["ResolvedRefs"] == ("True", "ResolvedRefs")
    modified = envoy.stats(filter="listener_manager.listener_modified").get("listener_manager.listener_modified", 0)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname="gateway.example.com") as live,
    ):
        reader = live.makefile("rb")
        live.sendall(b"before\n")
        assert reader.readline() == b"tcp-backend before\n"
        apply(gmesh, secret_yaml("gateway-cert", NS, new))
        wait_until(lambda: handshake(port, "gateway.example.com", client)[0] == new.der, timeout=15,
                   what="a handshake with the rotated certificate", ignore=(OSError,))  # fmt: skip
        live.sendall(b"after\n")
        assert reader.readline() == b"tcp-backend after\n"
    after = envoy.stats(filter="listener_manager.listener_modified").get("listener_manager.listener_modified", 0)
    assert after == modified
