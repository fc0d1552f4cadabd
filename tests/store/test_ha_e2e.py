"""Two control-plane replicas on one 3-member etcd, a real Envoy bootstrapped with both (`tcpmesh bootstrap
--control-plane a,b`): kill -9 of the replica Envoy streams from moves it to the other with no failed connection,
no listener update, and the same config, byte for byte."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tcpmesh.apiclient import request_json
from tcpmesh.cli import main
from tcpmesh.echo import BackgroundEchoServer
from tcpmesh.runtime.bootstrap import gateway_bootstrap
from tcpmesh.runtime.envoy import EnvoyProcess
from tcpmesh.runtime.local import ControlPlaneProcess, MeshPorts
from tcpmesh.runtime.polling import wait_until
from tcpmesh.runtime.ports import free_port
from tests.e2e.traffic import LoadLoop, assert_split, replies

from .conftest import EtcdCluster

pytestmark = [pytest.mark.etcd, pytest.mark.envoy, pytest.mark.timeout(240)]

NODE = "router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local"


def config(gateway_port: int, v1: int, v2: int, weight_v1: int) -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: {gateway_port}, name: tcp, protocol: TCP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: echo, namespace: default}}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - route:
    - {{destination: {{host: echo.internal, port: {{number: 9000}}, subset: v1}}, weight: {weight_v1}}}
    - {{destination: {{host: echo.internal, port: {{number: 9000}}, subset: v2}}, weight: {100 - weight_v1}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: echo, namespace: default}}
spec:
  host: echo.internal
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: echo, namespace: default}}
spec:
  hosts: [echo.internal]
  location: MESH_INTERNAL
  ports: [{{number: 9000, name: tcp, protocol: TCP}}]
  resolution: STATIC
  workloadSelector: {{labels: {{app: echo}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v1, namespace: default}}
spec: {{address: 127.0.0.1, labels: {{app: echo, version: v1}}, ports: {{tcp: {v1}}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v2, namespace: default}}
spec: {{address: 127.0.0.1, labels: {{app: echo, version: v2}}, ports: {{tcp: {v2}}}}}
"""


def _apply(cp: ControlPlaneProcess, text: str) -> None:
    code, payload = request_json(cp.http, "/api/apply?source=ha.yaml", body=text.encode(), token=cp.token)
    assert code == 200, payload


def _dump(cp: ControlPlaneProcess) -> bytes:
    code, payload = request_json(cp.http, f"/debug/config_dump?proxy={NODE}", token=cp.token)
    assert code == 200, payload
    return repr(payload).encode()


def _serves_envoy(cp: ControlPlaneProcess) -> bool:
    proxies = cp.status()["proxies"]
    return bool(proxies) and all(t["state"] in ("SYNCED", "NOT_SENT") for p in proxies for t in p["types"].values())


def test_kill_9_of_envoys_replica_moves_it_to_the_other_without_a_cut(
    tmp_path: Path, etcd3: EtcdCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    url = etcd3.url()
    replicas = [ControlPlaneProcess(None, tmp_path / name, MeshPorts.free(), ["--store", url]) for name in ("a", "b")]
    v1, v2 = BackgroundEchoServer("127.0.0.1", [0], prefix="one"), BackgroundEchoServer("127.0.0.1", [0], prefix="two")
    (p1,), (p2,) = v1.start(), v2.start()
    gateway = free_port()
    envoy: EnvoyProcess | None = None
    try:
        for cp in replicas:
            cp.start()
        _apply(replicas[0], config(gateway, p1, p2, 80))
        # `tcpmesh bootstrap` is what a user runs for this; the test renders the same bootstrap to a file.
        planes = ",".join(f"127.0.0.1:{cp.ports.ads}" for cp in replicas)
        assert main(["bootstrap", "--control-plane", planes, "--admin-port", "0", "-o", "json"]) == 0
        assert planes.split(",")[1].split(":")[1] in capsys.readouterr().out
        bootstrap = gateway_bootstrap(control_planes=[("127.0.0.1", cp.ports.ads) for cp in replicas], admin_port=0)
        envoy = EnvoyProcess(bootstrap, work_dir=tmp_path / "envoy", admin_port=0)
        envoy.start()
        envoy.wait_for_listener(f"0.0.0.0_{gateway}")
        first = wait_until(
            lambda: next((cp for cp in replicas if _serves_envoy(cp)), None), timeout=30, what="Envoy to sync"
        )
        other = replicas[1] if first is replicas[0] else replicas[0]
        wait_until(lambda: replies(gateway, 1), timeout=15, what="a first reply", ignore=(OSError,))
        dump = _dump(first)
        listeners_before = envoy.stats(filter="listener_manager.listener_(modified|added|removed)")
        with LoadLoop(gateway, max_seconds=120) as load:
            load.wait_for(100)
            first.stop(kill=True)  # kill -9
            wait_until(lambda: _serves_envoy(other), timeout=60, what="Envoy on the other replica")
            load.wait_for(300)
        assert load.failures == [], load.failures[:5]
        assert envoy.stats(filter="listener_manager.listener_(modified|added|removed)") == listeners_before
        assert _dump(other) == dump  # the same content-hashed config, byte for byte
        # The surviving replica still applies, through the same etcd.
        _apply(other, config(gateway, p1, p2, 20))
        wait_until(lambda: replies(gateway, 40)["two hello"] > 20, timeout=30, what="the 20/80 split to take effect")
        assert_split(replies(gateway, 300), {"one hello": 0.2, "two hello": 0.8})
    finally:
        if envoy is not None:
            envoy.stop()
        for cp in replicas:
            cp.stop()
        v1.stop()
        v2.stop()


def _raw_dump(cp: ControlPlaneProcess) -> bytes:
    """The bytes /debug/config_dump answers for the gateway node (no re-encoding on our side)."""
    url = f"http://{cp.http}/debug/config_dump?proxy={NODE}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {cp.token}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return bytes(resp.read())


def _versions(cp: ControlPlaneProcess) -> dict[str, tuple[str, str]]:
    """What the replica sent and its Envoy ACKed, per type (content-hashed versions)."""
    (proxy,) = cp.status()["proxies"]
    return {url: (t["sent"], t["acked"]) for url, t in proxy["types"].items()}


EXTRA_ENDPOINT = """---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: echo-v2b, namespace: default}}
spec: {{address: 127.0.0.1, labels: {{app: echo, version: v2}}, ports: {{tcp: {port}}}}}
"""

CONNECT_TIMEOUT = """---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo.internal
  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 3s}}}
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""


def test_every_replicas_config_dump_is_byte_identical_after_each_change(tmp_path: Path, etcd3: EtcdCluster) -> None:
    """Two replicas on one 3-member etcd, a real Envoy on each (the same gateway node); changes go in through
    either replica. After each, once both Envoys ACKed it, the replicas' dumps are the same bytes and they sent
    the same versions."""
    url = etcd3.url()
    replicas = [ControlPlaneProcess(None, tmp_path / name, MeshPorts.free(), ["--store", url]) for name in ("a", "b")]
    v1, v2 = BackgroundEchoServer("127.0.0.1", [0], prefix="one"), BackgroundEchoServer("127.0.0.1", [0], prefix="two")
    (p1,), (p2,) = v1.start(), v2.start()
    gateway = free_port()
    envoys: list[EnvoyProcess] = []
    base = config(gateway, p1, p2, 80)
    apply, delete = "/api/apply?source=ha.yaml", "/api/delete"
    changes = [  # (the replica it goes in through, the endpoint, the change)
        (1, apply, config(gateway, p1, p2, 20)),
        (0, apply, EXTRA_ENDPOINT.format(port=p2)),
        (1, apply, CONNECT_TIMEOUT),
        (0, apply, config(gateway, p1, p2, 50)),
        (1, delete, EXTRA_ENDPOINT.format(port=p2)),
    ]
    try:
        for cp in replicas:
            cp.start()
        _apply(replicas[0], base)
        for i, cp in enumerate(replicas):  # Envoy i streams from replica i only
            bootstrap = gateway_bootstrap(control_planes=[("127.0.0.1", cp.ports.ads)], admin_port=0)
            envoys.append(EnvoyProcess(bootstrap, work_dir=tmp_path / f"envoy{i}", admin_port=0))
            envoys[-1].start()
            envoys[-1].wait_for_listener(f"0.0.0.0_{gateway}")  # both bind it: Envoy listeners use SO_REUSEPORT
        wait_until(lambda: all(_serves_envoy(cp) for cp in replicas), timeout=30, what="both Envoys to sync")
        previous = _raw_dump(replicas[0])
        assert _raw_dump(replicas[1]) == previous
        assert _versions(replicas[0]) == _versions(replicas[1])
        for n, (via, path, text) in enumerate(changes, start=1):
            code, payload = request_json(replicas[via].http, path, body=text.encode(), token=replicas[via].token)
            assert code == 200, payload
            # Each replica takes the change from etcd (the other one through its watch) and its Envoy ACKs it.
            wait_until(
                lambda before=previous: all(_raw_dump(cp) != before and _serves_envoy(cp) for cp in replicas) or None,
                timeout=30,
                interval=0.05,
                what=f"change {n} on both replicas",
            )
            dumps = [_raw_dump(cp) for cp in replicas]
            assert dumps[0] == dumps[1], f"change {n}: the replicas' config_dump differ"
            assert _versions(replicas[0]) == _versions(replicas[1]), f"change {n}"
            previous = dumps[0]
        assert_split(replies(gateway, 300), {"one hello": 0.5, "two hello": 0.5})
    finally:
        for envoy in envoys:
            envoy.stop()
        for cp in replicas:
            cp.stop()
        v1.stop()
        v2.stop()
