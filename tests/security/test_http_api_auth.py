"""Issue 10's HTTP attacks replayed against a real `tcpmesh serve`: each is refused with a clear 4xx and changes
nothing; the CLI keeps working (token from --token-file, $TCPMESH_TOKEN or the local state dir)."""

from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_ports
from tests.security.conftest import SAMPLES, Server, raw_request, start_server
from tests.security.pki import make_ca, make_cert

SHIFT = (SAMPLES / "tcp-echo-shift" / "tcp-echo-20-v2.yaml").read_bytes()
PROTECTED = ("/debug/syncz", "/debug/config_dump", "/api/resources")


def _no_cors(headers: dict[str, str]) -> None:
    assert not [h for h in headers if h.startswith("access-control-")], headers


def test_public_paths_need_no_token(server: Server) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        reply = server.request("GET", path, {"Host": server.host})
        assert reply.status == 200, (path, reply)


@pytest.mark.parametrize("path", PROTECTED)
def test_missing_or_wrong_token_is_401(server: Server, path: str) -> None:
    missing = server.request("GET", path, {"Host": server.host})
    assert missing.status == 401
    assert "missing bearer token" in missing.json()["error"]
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = server.request("GET", path, {"Host": server.host, "Authorization": "Bearer not-the-token"})
    assert wrong.status == 401
    assert wrong.json()["error"] == "invalid bearer token"
    basic = server.request("GET", path, {"Host": server.host, "Authorization": f"Basic {server.cp.token}"})
    assert basic.status == 401


def test_csrf_simple_requests_are_refused_and_change_nothing(server: Server) -> None:
    before, generation = server.resources(), server.generation()
    # What a page on another site can send without a preflight: no token, a "simple" content type.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        for extra in ({}, {"Origin": "http://evil.example"}):
            reply = server.request(
                "POST", "/api/apply", {"Host": server.host, "Content-Type": content_type, **extra}, SHIFT
            )
            assert 400 <= reply.status < 500, reply
            assert reply.json()["error"]
            _no_cors(reply.headers)
    # Even with the token, a simple-request content type is refused (415), so a leaked cookie-less form cannot write.
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        headers = server.auth(**({"Content-Type": content_type} if content_type else {}))
        reply = server.request("POST", "/api/apply", headers, SHIFT)
        assert reply.status == 415, reply
        assert "unsupported Content-Type" in reply.json()["error"]
    assert server.resources() == before
    assert server.generation() == generation


def test_wrong_host_is_refused_even_with_the_token(server: Server) -> None:
    for host in (f"evil.example:{server.port}", "evil.example", f"127.0.0.1.nip.io:{server.port}"):
        reply = server.request("GET", "/api/resources", {**server.auth(), "Host": host})
        assert reply.status == 421, (host, reply)
        assert "does not name this server" in reply.json()["error"]
    assert server.request("GET", "/metrics", {"Host": f"evil.example:{server.port}"}).status == 421
    assert server.request("GET", "/api/resources", {"Authorization": f"Bearer {server.cp.token}"}).status == 400
    for host in (server.host, f"localhost:{server.port}"):
        assert server.request("GET", "/api/resources", {**server.auth(), "Host": host}).status == 200


def test_cross_origin_is_refused_even_with_the_token(server: Server) -> None:
    before = server.resources()
    for origin in ("http://evil.example", "null", f"http://localhost:{server.port + 1}", f"https://{server.host}"):
        headers = server.auth(Origin=origin, **{"Content-Type": "application/yaml"})
        reply = server.request("POST", "/api/apply", headers, SHIFT)
        assert reply.status == 403, (origin, reply)
        assert "cross-origin" in reply.json()["error"]
        _no_cors(reply.headers)
    reply = server.request("GET", "/api/resources", server.auth(**{"Sec-Fetch-Site": "cross-site"}))
    assert reply.status == 403
    assert server.resources() == before
    same = server.request("GET", "/api/resources", server.auth(Origin=f"http://{server.host}"))
    assert same.status == 200


def test_preflight_gets_no_cors_grant(server: Server) -> None:
    reply = server.request(
        "OPTIONS",
        "/api/apply",
        {
            "Host": server.host,
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert 400 <= reply.status < 500
    _no_cors(reply.headers)


def test_apply_with_token_and_yaml_works(server: Server) -> None:
    reply = server.request(
        "POST", "/api/apply?source=shift.yaml", server.auth(**{"Content-Type": "application/yaml"}), SHIFT
    )
    assert reply.status == 200, reply
    assert reply.json()["ok"] is True


def test_refusals_are_logged(server: Server) -> None:
    server.request("GET", "/debug/syncz", {"Host": server.host, "Authorization": "Bearer nope"})

    def logged() -> bool:
        return "refused GET /debug/syncz" in server.cp.log_path.read_text()

    wait_until(logged, timeout=10, interval=0.05, what="the refusal in the control-plane log")
    assert server.cp.token not in server.cp.log_path.read_text()


def test_token_file_is_private_and_kept_across_restarts(tmp_path: Path) -> None:
    cp = start_server(tmp_path)
    try:
        first = cp.token
        mode = stat.S_IMODE(cp.token_file.stat().st_mode)
        assert mode == 0o600
    finally:
        cp.stop()
    cp.start()
    try:
        assert cp.token == first
    finally:
        cp.stop()


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("TCPMESH_TOKEN", "TCPMESH_STATE_DIR", "TCPMESH_SERVER")}
    return subprocess.run(
        [sys.executable, "-m", "tcpmesh", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_finds_the_token_like_the_readme_says(tmp_path: Path) -> None:
    """`tcpmesh serve` without --token-file in a directory, then the README's commands there with no flags."""
    work = tmp_path / "work"
    work.mkdir()
    config = work / "config"
    shutil.copytree(SAMPLES / "tcp-echo", config)
    port, ads = free_ports(2)
    ready = work / "ready.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpmesh", "serve", "--seed", str(config), "--ads-address",
         f"127.0.0.1:{ads}", "--http-address", f"127.0.0.1:{port}", "--ready-file", str(ready)],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(ready.exists, timeout=30, interval=0.05, what="serve to be ready")
        token_file = work / ".tcpmesh" / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        server = f"127.0.0.1:{port}"
        got = _cli("get", "vs", "--server", server, cwd=work)
        assert got.returncode == 0, got.stderr
        assert "tcp-echo" in got.stdout
        applied = _cli(
            "apply", "-f", str(SAMPLES / "tcp-echo-shift" / "tcp-echo-20-v2.yaml"), "--server", server, cwd=work
        )
        assert applied.returncode == 0, applied.stderr
        assert _cli("status", "--server", server, cwd=work).returncode == 0
        assert _cli("dump", "--server", server, "--type", "listeners", cwd=work).returncode in (0, 1)
        # Elsewhere the local token is not there: a clear error, no traceback; $TCPMESH_TOKEN and --token-file work.
        refused = _cli("get", "vs", "--server", server, cwd=tmp_path)
        assert refused.returncode == 1
        assert "missing bearer token" in refused.stderr
        assert "--token-file" in refused.stderr
        assert "Traceback" not in refused.stderr
        token = token_file.read_text().strip()
        assert _cli("get", "vs", "--server", server, cwd=tmp_path, env={"TCPMESH_TOKEN": token}).returncode == 0
        assert _cli("get", "vs", "--server", server, "--token-file", str(token_file), cwd=tmp_path).returncode == 0
        missing = _cli("get", "vs", "--server", server, "--token-file", str(tmp_path / "nope"), cwd=tmp_path)
        assert missing.returncode == 1
        assert "cannot read the API token file" in missing.stderr
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make certificates")
def test_http_api_over_tls(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    ca = make_ca(pki)
    cert, key = make_cert(pki, "api", "IP:127.0.0.1,DNS:localhost")
    state = tmp_path / "state"
    cp = start_server(state, "--http-tls-cert", str(cert), "--http-tls-key", str(key))
    try:
        context = ssl.create_default_context(cafile=str(ca))
        host = f"127.0.0.1:{cp.ports.http}"
        ok = raw_request(
            cp.ports.http, "GET", "/api/resources", {"Host": host, "Authorization": f"Bearer {cp.token}"}, tls=context
        )
        assert ok.status == 200
        # The Origin must carry the https scheme now.
        plain = raw_request(
            cp.ports.http, "GET", "/api/resources",
            {"Host": host, "Authorization": f"Bearer {cp.token}", "Origin": f"http://{host}"}, tls=context,
        )  # fmt: skip
        assert plain.status == 403
        got = _cli(
            "get",
            "vs",
            "--server",
            f"https://{host}",
            "--cacert",
            str(ca),
            "--token-file",
            str(cp.token_file),
            cwd=tmp_path,
        )
        assert got.returncode == 0, got.stderr
        assert "tcp-echo" in got.stdout
    finally:
        cp.stop()


def test_half_tls_options_are_refused(tmp_path: Path) -> None:
    cp = ControlPlaneProcess(tmp_path / "c", tmp_path, MeshPorts.free(), ["--http-tls-cert", "x.pem"])
    with pytest.raises(RuntimeError, match="control plane exited"):
        cp.start(timeout=30)
    assert "--http-tls-cert and --http-tls-key go together" in cp.log_path.read_text()


def test_wildcard_bind_accepts_ip_literals_and_allowed_names_only(tmp_path: Path) -> None:
    """As in the compose file (0.0.0.0 in a container): IP literals cannot come from DNS rebinding, names must be
    listed with --http-allowed-hosts."""
    ads, port = free_ports(2)
    cp = ControlPlaneProcess(
        tmp_path / "config",
        tmp_path,
        MeshPorts(ads=ads, http=port),
        ["--http-address", f"0.0.0.0:{port}", "--http-allowed-hosts", "cp.example.internal,Other.Example."],
    )
    cp.start()
    try:
        auth = {"Authorization": f"Bearer {cp.token}"}
        for host, status in (
            (f"127.0.0.1:{port}", 200),
            (f"localhost:{port}", 200),
            (f"192.0.2.7:{port}", 200),
            (f"[::1]:{port}", 200),
            (f"cp.example.internal:{port}", 200),
            ("other.example", 200),
            (f"evil.example:{port}", 421),
            (f"127.0.0.1.evil.example:{port}", 421),
        ):
            reply = raw_request(port, "GET", "/api/resources", {**auth, "Host": host})
            assert reply.status == status, (host, reply)
        assert "beyond loopback" in cp.log_path.read_text()
    finally:
        cp.stop()
