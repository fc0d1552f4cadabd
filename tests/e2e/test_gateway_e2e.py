"""The seeds end to end: real control plane, real Envoy, real echo processes, real sockets."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from .conftest import SAMPLES, Mesh
from .live import live_connections
from .traffic import LoadLoop, assert_split, exchange, replies

pytestmark = pytest.mark.envoy

TCP_ECHO = SAMPLES / "tcp-echo"
SHIFT = SAMPLES / "tcp-echo-shift"
N = 400  # connections per split check: a 20% share then has a standard deviation of 2 points


def start(mesh: Mesh, tmp_path: Path, *paths: Path) -> None:
    mesh.start(mesh.copy_samples(list(paths), tmp_path / "input"))


def test_all_v1(mesh: Mesh, tmp_path: Path) -> None:
    start(mesh, tmp_path, TCP_ECHO)
    assert_split(replies(mesh.port(31400), 100), {"one hello": 1.0})


@pytest.mark.parametrize(("sample", "v1_share"), [("tcp-echo-20-v2.yaml", 0.8), ("tcp-echo-80-v2.yaml", 0.2)])
def test_weighted_split(mesh: Mesh, tmp_path: Path, sample: str, v1_share: float) -> None:
    start(mesh, tmp_path, TCP_ECHO, SHIFT / sample)
    counts = replies(mesh.port(31400), N)
    assert_split(counts, {"one hello": v1_share, "two hello": 1 - v1_share})


def test_two_gateways_route_each_port_to_its_subset(mesh: Mesh, tmp_path: Path) -> None:
    start(mesh, tmp_path, SAMPLES / "two-gateways")
    for sample_port, version in ((31400, "v1"), (31401, "v2")):
        with socket.create_connection(("127.0.0.1", mesh.port(sample_port)), timeout=5) as sock:
            reader = sock.makefile("rb")
            banner = [reader.readline().decode() for _ in range(5)]
            assert banner[0].startswith("Welcome, you are connected to node")
            assert f"Running on Pod tcp-echo-{version}-0." in banner[1]
            sock.sendall(b"hello, app\n")
            assert reader.readline() == b"hello, app\n"


def test_live_switch_to_80_20_without_restart(mesh: Mesh, tmp_path: Path) -> None:
    start(mesh, tmp_path, TCP_ECHO)
    envoy_pid = mesh.envoys[0].pid
    assert_split(replies(mesh.port(31400), 50), {"one hello": 1.0})
    result = mesh.apply(SHIFT / "tcp-echo-20-v2.yaml")
    assert result["code"] == 200, result
    mesh.wait_synced(generation=2)
    assert_split(replies(mesh.port(31400), N), {"one hello": 0.8, "two hello": 0.2})
    assert mesh.envoys[0].pid == envoy_pid


def test_invalid_apply_is_rejected_and_the_previous_config_keeps_serving(mesh: Mesh, tmp_path: Path) -> None:
    start(mesh, tmp_path, TCP_ECHO, SHIFT / "tcp-echo-20-v2.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text((SHIFT / "tcp-echo-20-v2.yaml").read_text().replace("weight: 20", "weight: -20"))
    with LoadLoop(mesh.port(31400)) as load:
        load.wait_for(50)
        result = mesh.apply(bad)
        assert result["code"] == 422
        assert any("weight -20 < 0" in p["text"] for p in result["problems"])  # type: ignore[union-attr]
        load.wait_for(200)
    assert load.failures == []
    assert mesh.control_plane.status()["generation"] == 1
    assert_split(load.ok, {"one hello": 0.8, "two hello": 0.2})


def test_envoy_restart_resyncs(mesh: Mesh, tmp_path: Path) -> None:
    start(mesh, tmp_path, TCP_ECHO)
    envoy = mesh.envoys[0]
    envoy.stop()
    with pytest.raises(ConnectionRefusedError):
        exchange(mesh.port(31400), timeout=1)
    envoy.start()
    mesh.wait_synced()
    envoy.wait_for_listener(f"0.0.0.0_{mesh.port(31400)}")
    assert_split(replies(mesh.port(31400), 50), {"one hello": 1.0})


def test_control_plane_restart_while_envoy_keeps_forwarding(mesh: Mesh, tmp_path: Path) -> None:
    start(mesh, tmp_path, TCP_ECHO, SHIFT / "tcp-echo-20-v2.yaml")
    before = {p["id"]: p["types"] for p in mesh.control_plane.status()["proxies"]}
    lds_updates = mesh.envoys[0].stats()["listener_manager.lds.update_success"]
    with LoadLoop(mesh.port(31400)) as load:
        load.wait_for(50)
        assert mesh.control_plane.process is not None
        os.kill(mesh.control_plane.process.pid, signal.SIGKILL)
        mesh.control_plane.process.wait(10)
        load.wait_for(100)  # forwarding goes on with no control plane at all
        mesh.control_plane.start()
        mesh.wait_synced()
        load.wait_for(100)
    assert load.failures == []
    after = {p["id"]: p["types"] for p in mesh.control_plane.status()["proxies"]}
    assert {k: {t: v["acked"] for t, v in types.items()} for k, types in after.items()} == {
        k: {t: v["acked"] for t, v in types.items()} for k, types in before.items()
    }
    # Same versions re-served: Envoy saw nothing new to apply, so no listener was rebuilt or drained.
    assert mesh.envoys[0].stats()["listener_manager.lds.update_success"] == lds_updates


def test_a_graceful_control_plane_restart_serves_its_saved_snapshots_and_cuts_nothing(
    mesh: Mesh, tmp_path: Path
) -> None:
    start(mesh, tmp_path, TCP_ECHO, SHIFT / "tcp-echo-20-v2.yaml")
    cp = mesh.control_plane
    assert cp.status()["restored_groups"] == 0  # the first start translated
    lds_updates = mesh.envoys[0].stats()["listener_manager.lds.update_success"]
    with live_connections(mesh.port(31400), 20) as live, LoadLoop(mesh.port(31400)) as load:
        load.wait_for(50)
        cp.stop()  # SIGTERM: the published snapshots are saved on the way out
        assert (cp.state_dir / "snapshots.bin").exists()
        load.wait_for(50)
        cp.start()
        assert cp.status()["restored_groups"] == 1  # served before the config was read again
        mesh.wait_synced()
        load.wait_for(100)
        assert live.check("after-restart") == []
    assert load.failures == []
    assert mesh.envoys[0].stats()["listener_manager.lds.update_success"] == lds_updates
