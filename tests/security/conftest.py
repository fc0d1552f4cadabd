"""A real `tcpmesh serve` child process per test module, and a raw HTTP client that sends exactly the headers given."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None = None,
    *,
    tls: ssl.SSLContext | None = None,
    timeout: float = 20.0,
) -> Reply:
    """One request with only ``headers`` (no Host unless given): what a browser or an attacker's script sends."""
    conn: http.client.HTTPConnection = (
        http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls)
        if tls is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    )
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


@dataclass
class Server:
    cp: ControlPlaneProcess

    @property
    def port(self) -> int:
        return self.cp.ports.http

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def auth(self, **extra: str) -> dict[str, str]:
        return {"Host": self.host, "Authorization": f"Bearer {self.cp.token}", **extra}

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Reply:
        return raw_request(self.port, method, path, headers, body)

    def resources(self) -> list[dict[str, Any]]:
        reply = self.request("GET", "/api/resources", self.auth())
        assert reply.status == 200, reply
        return list(reply.json()["items"])

    def generation(self) -> int:
        return int(self.cp.status()["generation"])


def start_server(tmp_path: Path, *extra: str) -> ControlPlaneProcess:
    config = tmp_path / "config"
    config.mkdir(parents=True, exist_ok=True)
    for sample in sorted((SAMPLES / "tcp-echo").glob("*.yaml")):
        (config / sample.name).write_text(sample.read_text())
    # Seeded into the store (not a one-way --config-dir, whose resources the API may not change).
    cp = ControlPlaneProcess(None, tmp_path, MeshPorts.free(), ["--seed", str(config), *extra])
    cp.start()
    return cp


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cp = start_server(tmp_path_factory.mktemp("api"))
    try:
        yield Server(cp)
    finally:
        cp.stop()
