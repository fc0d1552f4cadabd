"""compose/docker-compose.ha.yml for real: a 3-member etcd, two control planes and the gateway Envoy bootstrapped
with both (`tcpmesh bootstrap --control-plane a,b`), in containers, checked from the host.

An apply through one replica reaches the gateway (through etcd, whichever replica Envoy streams from); stopping
the replica Envoy streams from moves it to the other with no failed connection and no listener update, and an
apply through the remaining replica still reaches the gateway. Same engine and images as test_compose.py, plus
the etcd image (compose/etcd.Dockerfile: Debian's etcd-server on the registry-free base image).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tcpmesh.apiclient import request_json
from tests.docker import dockerenv
from tests.docker.test_compose import (
    CONFIG_DIR,
    V1,
    V2,
    admin_json,
    assert_split,
    cli,
    envoy_tcp_proxies,
    exchange,
    prefix_counts,
    served_tcp_proxies,
    shifted_virtualservice,
    wait_for,
    weights,
)
from tests.e2e.traffic import LoadLoop

pytestmark = [pytest.mark.docker, pytest.mark.etcd, pytest.mark.timeout(1800)]

CONNECTIONS = 300
REPLICAS = {"control-plane-a": "TCPMESH_HTTP_PORT", "control-plane-b": "TCPMESH_HTTP2_PORT"}
SERVICES = ("etcd-1", "etcd-2", "etcd-3", *REPLICAS, "envoy", "echo-v1", "echo-v2")


@pytest.fixture(scope="module")
def ha_images() -> tuple[str, str]:
    try:
        dockerenv.ensure_engine()
    except dockerenv.EngineUnavailable as exc:
        pytest.skip(f"Docker cannot run on this machine: {exc}")
    base = dockerenv.ensure_base_image()
    return dockerenv.build_project_image(base), dockerenv.build_etcd_image(base)


@pytest.fixture
def ha_stack(
    ha_images: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dockerenv.ComposeProject]:
    # The first replica writes the API token there; the second and the host CLI read it.
    monkeypatch.setenv("TCPMESH_STATE_DIR", str(tmp_path / "state"))
    config = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config)
    image, etcd_image = ha_images
    project = dockerenv.ComposeProject.create(
        image=image,
        config_dir=config,
        compose_file=dockerenv.HA_COMPOSE_FILE,
        more_ports=("TCPMESH_ADS2_PORT", "TCPMESH_HTTP2_PORT"),
        more_env={"TCPMESH_ETCD_IMAGE": etcd_image, "TCPMESH_ETCD_BASE_IMAGE": dockerenv.BASE_IMAGE},
    )
    try:
        with dockerenv.TIMINGS.step("compose HA up (to healthy)") as notes:
            try:
                project.up()
                project.wait_healthy(SERVICES, deadline_s=240)
            except BaseException:
                print(f"--- docker-compose logs ({project.name}) ---\n{project.logs()}")
                raise
            notes.append(project.name)
        yield project
    finally:
        project.down()


def test_ha_stack_survives_a_stopped_control_plane(ha_stack: dockerenv.ComposeProject, tmp_path: Path) -> None:
    try:
        check_ha_stack(ha_stack, tmp_path)
    except BaseException:
        print(f"--- docker-compose logs ({ha_stack.name}) ---\n{ha_stack.logs()}")
        raise


def _servers(stack: dockerenv.ComposeProject) -> dict[str, str]:
    return {service: f"127.0.0.1:{stack.port(var)}" for service, var in REPLICAS.items()}


def _syncz(server: str, token: str) -> dict[str, Any]:
    code, payload = request_json(server, "/debug/syncz", token=token, timeout=5)
    assert code == 200, payload
    return dict(payload)


def _streams_envoy(server: str, token: str) -> bool:
    proxies = _syncz(server, token)["proxies"]
    return bool(proxies) and all(t["state"] in ("SYNCED", "NOT_SENT") for p in proxies for t in p["types"].values())


def _acked(server: str, token: str) -> dict[str, str]:
    """The versions Envoy ACKed on this replica, per type (content-hashed: the same on every replica)."""
    (proxy,) = _syncz(server, token)["proxies"]
    return {url: str(t["acked"]) for url, t in proxy["types"].items()}


def check_ha_stack(stack: dockerenv.ComposeProject, tmp_path: Path) -> None:
    gateway = stack.port("TCPMESH_GATEWAY_PORT")
    admin = stack.port("TCPMESH_ENVOY_ADMIN_PORT")
    servers = _servers(stack)
    token = (tmp_path / "state" / "token").read_text().strip()  # one token, shared by both replicas

    wait_for("gateway answers", lambda: exchange(gateway) in (b"one hello\n", b"two hello\n"), 90)
    with dockerenv.TIMINGS.step(f"HA {CONNECTIONS} connections 80/20"):
        assert_split(prefix_counts(gateway, CONNECTIONS), CONNECTIONS, 0.8)
    # Envoy streams from one replica; a change goes in through the other and reaches it through etcd.
    streaming = [s for s, server in servers.items() if _streams_envoy(server, token)]
    assert len(streaming) == 1, streaming
    (serving,) = streaming
    (other,) = set(servers) - {serving}
    assert weights(served_tcp_proxies(servers[serving])["0.0.0.0_31400"]) == {V1: 80, V2: 20}
    with dockerenv.TIMINGS.step("HA apply via other replica"):
        cli("apply", "-f", str(shifted_virtualservice(tmp_path / "vs-10-90.yaml", 10, 90)), "--server", servers[other])
        wait_for(
            "Envoy serves the 10/90 weights",
            lambda: weights(envoy_tcp_proxies(admin).get("0.0.0.0_31400", {})) == {V1: 10, V2: 90},
            30,
        )
    served, acked = served_tcp_proxies(servers[serving]), _acked(servers[serving], token)
    listeners = "listener_manager.listener_(added|modified|removed)"
    before = admin_json(admin, f"/stats?format=json&filter={listeners}")

    # Stop the replica Envoy streams from, under load: Envoy moves to the other, no connection fails.
    with dockerenv.TIMINGS.step("HA stop serving replica"), LoadLoop(gateway, max_seconds=180) as load:
        load.wait_for(100)
        stack.compose("stop", "--timeout", "10", serving, timeout=60)
        wait_for("Envoy on the other replica", lambda: _streams_envoy(servers[other], token), 60)
        load.wait_for(200)
    assert load.failures == [], load.failures[:5]
    assert set(load.ok) <= {"one hello", "two hello"}, load.ok
    assert stack.states()[serving][0] == "exited"
    # The same config and versions on the other replica: Envoy added, changed and removed no listener.
    assert served_tcp_proxies(servers[other]) == served

    # Known gap, found here: after a failover the new replica neither re-sends the ECDS configs Envoy holds
    # (correct: Envoy has them) nor records them as held, so its status shows them unACKed until the next
    # change, which does reach Envoy (checked below). The other types are recorded as held at their version.
    def held(versions: dict[str, str]) -> dict[str, str]:
        return {url: v for url, v in versions.items() if url != "TypedExtensionConfig"}

    assert held(_acked(servers[other], token)) == held(acked)
    assert admin_json(admin, f"/stats?format=json&filter={listeners}") == before

    # The remaining replica still takes changes, through the same etcd.
    with dockerenv.TIMINGS.step("HA apply via remaining one"):
        cli("apply", "-f", str(shifted_virtualservice(tmp_path / "vs-50-50.yaml", 50, 50)), "--server", servers[other])
        wait_for(
            "Envoy serves the 50/50 weights",
            lambda: weights(envoy_tcp_proxies(admin).get("0.0.0.0_31400", {})) == {V1: 50, V2: 50},
            30,
        )
    assert_split(prefix_counts(gateway, CONNECTIONS), CONNECTIONS, 0.5)
    assert prefix_counts(stack.port("TCPMESH_GATEWAY2_PORT"), 10) == Counter({"two": 10})
    # The change closed the status gap above: the new ECDS version is sent and ACKed on this replica.
    wait_for(
        "the ECDS ACK recorded after the change",
        lambda: _acked(servers[other], token)["TypedExtensionConfig"] not in ("None", acked["TypedExtensionConfig"]),
        30,
    )

    with dockerenv.TIMINGS.step("compose HA down"):
        stack.down()
    assert stack.containers() == []
    assert stack.networks() == []
