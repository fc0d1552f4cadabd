"""Proxy identity on ADS mutual TLS (issue 10): a proxy may only claim the namespace (SPIFFE URI SAN) or workload
(DNS SAN) of its client certificate; a certificate claiming another namespace is refused with PERMISSION_DENIED.
Duplicate node ids are reported as such in status."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tcpmesh.xds.identity import PeerIdentity, authorize
from tcpmesh.xds.types import CLUSTER_TYPE, Node
from tests.security.conftest import start_server
from tests.security.pki import make_ca, make_cert
from tests.xds.ads_testkit import run

GATEWAY_ID = "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"


def gateway(node_id: str = GATEWAY_ID, namespace: str | None = "istio-system") -> Node:
    metadata: dict[str, Any] = {"LABELS": {"istio": "ingressgateway"}}
    if namespace is not None:
        metadata["NAMESPACE"] = namespace
    return Node(id=node_id, cluster="istio-ingressgateway.istio-system", metadata=metadata)


@pytest.mark.parametrize(
    ("peer", "node", "allowed"),
    [
        (PeerIdentity(uris=("spiffe://cluster.local/ns/istio-system/sa/gw",)), gateway(), True),
        (PeerIdentity(uris=("spiffe://cluster.local/ns/default/sa/sleep",)), gateway(), False),
        (PeerIdentity(uris=("spiffe://cluster.local/ns/istio-system",)), gateway(), False),
        (PeerIdentity(dns=("istio-ingressgateway.istio-system",)), gateway(), True),
        (PeerIdentity(dns=("istio-ingressgateway.istio-system.svc.cluster.local",)), gateway(namespace=None), True),
        (PeerIdentity(dns=("other.istio-system",)), gateway(), False),
        # The id says istio-system but the metadata claims default (or the reverse): refused whatever the cert.
        (PeerIdentity(uris=("spiffe://cluster.local/ns/default/sa/x",)), gateway(namespace="default"), False),
        (PeerIdentity(), gateway(), False),
    ],
)
def test_identity_rule(peer: PeerIdentity, node: Node, allowed: bool) -> None:
    denied = authorize(node, peer)
    assert (denied is None) == allowed, denied
    if not allowed:
        assert denied is not None
        assert denied.startswith("authorization failed: ")


async def _first_answer(port: int, ca: Path, cert: Path, key: Path, node: Node) -> Any:
    """The first CDS response, or the AioRpcError that ended the stream."""
    creds = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)

        async def requests() -> AsyncIterator[Any]:
            req = discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE)
            req.node.CopyFrom(node.to_proto())
            yield req
            await asyncio.sleep(30)

        call = stub.StreamAggregatedResources(requests())
        try:
            async for resp in call:
                return resp
        except grpc.aio.AioRpcError as exc:
            return exc
        finally:
            call.cancel()
    raise AssertionError("stream ended without an answer")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make certificates")
def test_certificate_claiming_another_namespace_is_refused(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    server_cert, server_key = make_cert(pki, "server", "IP:127.0.0.1,DNS:localhost")
    certs = {
        "gateway-spiffe": make_cert(pki, "gw", "URI:spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway"),
        "sleep-spiffe": make_cert(pki, "sleep", "URI:spiffe://cluster.local/ns/default/sa/sleep"),
        "gateway-dns": make_cert(pki, "gwdns", "DNS:istio-ingressgateway.istio-system"),
        "other-dns": make_cert(pki, "otherdns", "DNS:other.istio-system"),
    }
    cp = start_server(
        tmp_path / "state",
        "--ads-tls-cert", str(server_cert), "--ads-tls-key", str(server_key), "--ads-tls-client-ca", str(ca),
    )  # fmt: skip
    try:

        async def body() -> dict[str, Any]:
            return {
                name: await asyncio.wait_for(_first_answer(cp.ports.ads, ca, cert, key, gateway()), 20)
                for name, (cert, key) in certs.items()
            }

        answers = run(body(), timeout=90)
        log = cp.log_path.read_text()
    finally:
        cp.stop()
    for name in ("gateway-spiffe", "gateway-dns"):
        assert not isinstance(answers[name], grpc.aio.AioRpcError), answers[name]
        assert answers[name].type_url == CLUSTER_TYPE
        assert len(answers[name].resources) >= 1  # the gateway's clusters
    for name in ("sleep-spiffe", "other-dns"):
        exc = answers[name]
        assert isinstance(exc, grpc.aio.AioRpcError), exc
        assert exc.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "authorization failed: no identities" in (exc.details() or "")
        assert "matched istio-system/istio-ingressgateway" in (exc.details() or "")
    assert "ADS mutual TLS: each proxy may only claim" in log
    assert "refused: node" in log


def test_plaintext_ads_warns_at_start(tmp_path: Path) -> None:
    cp = start_server(tmp_path)
    try:
        assert "any process that reaches" in cp.log_path.read_text()
    finally:
        cp.stop()


def test_duplicate_node_ids_are_reported(tmp_path: Path) -> None:
    cp = start_server(tmp_path)
    try:

        async def body() -> dict[str, Any]:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{cp.ports.ads}") as channel:
                stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
                calls = []
                for _ in range(2):
                    req = discovery_pb2.DiscoveryRequest(type_url=CLUSTER_TYPE)
                    req.node.CopyFrom(gateway().to_proto())

                    async def one(r: Any = req) -> AsyncIterator[Any]:
                        yield r
                        await asyncio.sleep(30)

                    call = stub.StreamAggregatedResources(one())
                    await asyncio.wait_for(call.read(), 20)
                    calls.append(call)
                status = await asyncio.to_thread(cp.status)
                out = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "tcpmesh", "status", "--server", cp.http,
                     "--token-file", str(cp.token_file)],
                    capture_output=True, text=True, timeout=30,
                )  # fmt: skip
                for call in calls:
                    call.cancel()
                return {"status": status, "cli": out.stdout}

        result = run(body(), timeout=60)
    finally:
        cp.stop()
    assert result["status"]["duplicate_ids"] == [GATEWAY_ID]
    assert all(p["duplicate"] for p in result["status"]["proxies"])
    assert f"DUPLICATE node id {GATEWAY_ID}: 2 streams claim it" in result["cli"]
