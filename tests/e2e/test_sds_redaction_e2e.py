"""No output surface shows a private key: a Secret served to a real Envoy, then every way tcpmesh prints things.

Surfaces: `tcpmesh dump` (offline and --server), `tcpmesh get -o yaml/json` (server and --state-dir), `tcpmesh
status`, /debug/syncz, /debug/config_dump, /metrics, `validate`/`analyze`, the answer to a rejected apply, and
the control plane's log. The certificate is still shown where it belongs (dump, get).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tcpmesh.apiclient import request_json
from tcpmesh.runtime.ports import free_ports
from tests.pki import TestCA, secret_yaml

from .backends import Backend
from .conftest import Mesh, make_mesh
from .test_sds_e2e import GATEWAY_NS, client_context, credential_gateway, first

pytestmark = pytest.mark.envoy


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    m = make_mesh(tmp_path, "GRPC")
    try:
        yield m
    finally:
        m.stop()


def key_fragments(key_pem: bytes) -> list[str]:
    """Forms the key could leak in: PEM body lines, base64 of the PEM (as in data: and inline_bytes), the DER."""
    body = [line for line in key_pem.decode().splitlines() if line and not line.startswith("-----")]
    b64_pem = base64.b64encode(key_pem).decode()
    key = serialization.load_pem_private_key(key_pem, password=None)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    b64_der = base64.b64encode(der).decode()
    return [
        *body,
        "".join(body),
        *(b64_pem[i : i + 32] for i in range(0, len(b64_pem) - 32, 16)),
        b64_der[8:40],
        der.hex()[40:80],
    ]


def cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tcpmesh", *args], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout + done.stderr


def test_no_surface_prints_the_private_key(mesh: Mesh, tmp_path: Path) -> None:
    plain = Backend("plain")
    try:
        (port,) = free_ports(1)
        ca = TestCA()
        served = ca.issue(["gateway.example.com"])
        text = credential_gateway("gw", port, plain, "MUTUAL")
        config = tmp_path / "input" / "config.yaml"
        config.parent.mkdir(parents=True)
        config.write_text(text)
        mesh.start([config], with_envoy=False)
        envoy = mesh.start_envoy()
        http, token = mesh.control_plane.http, mesh.control_plane.token
        secret = secret_yaml("gw-cred", GATEWAY_NS, served, ca=ca.pem)
        code, answer = request_json(http, "/api/apply?source=secret.yaml", body=secret.encode(), token=token)
        assert code == 200, answer
        assert first(port, "gateway.example.com", client_context(ca, ca.issue(["c"], client=True), tmp_path / "c"))
        # A rejected Secret (its key belongs to another certificate) must not echo the key either.
        wrong = ca.issue(["gateway.example.com"])
        mismatched = secret.replace(base64.b64encode(served.key).decode(), base64.b64encode(wrong.key).decode())
        code, rejected = request_json(http, "/api/apply?source=bad.yaml", body=mismatched.encode(), token=token)
        assert code == 422, rejected
        assert "private key does not match the certificate in tls.crt" in str(rejected)

        token_file = mesh.control_plane.token_file
        offline = tmp_path / "offline.yaml"
        offline.write_text(text + secret)
        server = ("--server", http, "--token-file", str(token_file))
        proxy_id = mesh.control_plane.status()["proxies"][0]["id"]
        outputs = {
            "answer to a rejected apply": str(rejected),
            "dump (offline)": cli("dump", str(offline)),
            "dump --server": cli("dump", *server, "--proxy", proxy_id),
            "get -o yaml": cli("get", "secret", "gw-cred", "-n", GATEWAY_NS, "-o", "yaml", *server),
            "get -o json": cli("get", "secret", "-n", GATEWAY_NS, "-o", "json", *server),
            "get --state-dir": cli(
                "get", "secret", "gw-cred", "-n", GATEWAY_NS, "-o", "yaml", "--state-dir", str(mesh.state_dir)
            ),
            "status": cli("status", *server),
            "/debug/syncz": str(request_json(http, "/debug/syncz", token=token)),
            "/debug/config_dump": str(request_json(http, "/debug/config_dump", token=token)),
            "/metrics": urllib.request.urlopen(f"http://{http}/metrics", timeout=10).read().decode(),
            "validate": cli("validate", str(offline)),
            "analyze": cli("analyze", str(offline)),
        }
        outputs["control plane log"] = mesh.control_plane.log_path.read_text()
        fragments = [f for issued in (served, wrong) for f in key_fragments(issued.key)]
        # The check can see a key: the applied Secret's own text holds its fragments.
        assert sum(f in secret for f in key_fragments(served.key)) >= 3
        for surface, output in outputs.items():
            leaked = [f for f in fragments if f in output]
            assert not leaked, f"{surface} shows key material: {leaked[:2]}"
        # The certificate itself is shown where resources are printed, the key as redacted.
        cert_b64 = base64.b64encode(served.cert).decode()
        for surface in ("dump (offline)", "dump --server", "get -o yaml", "get --state-dir"):
            assert cert_b64 in outputs[surface], surface
        assert "[redacted]" in outputs["dump --server"]
        assert "[redacted]" in outputs["get -o json"]
        assert "kubernetes://gw-cred" in outputs["/debug/syncz"]
        assert envoy.running
    finally:
        plain.kill()
